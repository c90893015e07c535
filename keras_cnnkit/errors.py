"""The package's exception hierarchy.

Every error a user can cause by what they pass in (a file, a config, a flag) derives from
:class:`CnnkitError`, so a command line can catch that one class and print one line
instead of a traceback.  Pure Python; importing this module imports nothing heavy.
"""
from __future__ import annotations

import os
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc``'s message on one line (its class name when it has none), cut to
    ``limit`` characters: how an error from a library is quoted in a one-line error."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


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


#: The ``setup.cfg`` extra that installs each optional top-level module (a test checks
#: this table against ``[options.extras_require]``).
EXTRAS = {"tensorflow": "tensorflow", "tf2onnx": "export", "onnx": "export",
          "onnxruntime": "export"}


class MissingDependencyError(CnnkitError, ImportError):
    """What the user asked for needs an optional package that is not installed.

    Attributes:
        what: the capability (``"cnnkit-export"``, ``"--fix"``, ``"an ONNX model"``).
        modules: the missing top-level modules.

    ``str(error)`` is one line naming the extra to install:
    ``cnnkit-export needs tensorflow, which is not installed: pip install
    "keras-cnnkit[tensorflow]"``.
    """

    def __init__(self, what: str, modules):
        self.what = what
        self.modules = list(dict.fromkeys(modules))
        extras = list(dict.fromkeys(EXTRAS[m] for m in self.modules if m in EXTRAS))
        others = [m for m in self.modules if m not in EXTRAS]
        names = ", ".join(self.modules)
        verb = "is" if len(self.modules) == 1 else "are"
        fixes = ([f'pip install "keras-cnnkit[{",".join(extras)}]"'] if extras else []) + \
            ([f"pip install {' '.join(others)}"] if others else [])
        super().__init__(f"{what} needs {names}, which {verb} not installed: "
                         + " and ".join(fixes))
