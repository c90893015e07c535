"""The package's exception hierarchy.

Every error a user can cause by what they pass in (a file, a config, a flag) derives from
:class:`CnnkitError`, so a command line can catch that one class and print one line
instead of a traceback.  Pure Python; importing this module imports nothing heavy.
"""
from __future__ import annotations

import os
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


class CnnkitError(Exception):
    """Base class of the errors keras-cnnkit raises on bad input."""


class ModelFileError(CnnkitError, ValueError):
    """A model file (or a model config) cannot be read or analysed.

    Attributes:
        path: the file, as the user named it.
        problem: what is wrong, as one line without the path (``"not an HDF5, zip
            or JSON model file"``).

    ``str(error)`` is ``"<path>: <problem>"``, the form ``cnnkit-lint`` prints.
    """

    def __init__(self, path: PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())  # one line, always
        super().__init__(f"{self.path}: {self.problem}")


class ConfigError(CnnkitError, ValueError):
    """A linter configuration (``pyproject.toml``, ``setup.cfg``, a flag) is invalid.

    Attributes:
        source: where the setting came from (a file path, or ``"command line"``).
        problem: what is wrong, as one line.
    """

    def __init__(self, source: str, problem: str):
        self.source = source
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{source}: {self.problem}")
