"""What the console scripts (``cnnkit-lint``, ``cnnkit-export``) share.

* :func:`require`: check, before any work, that the optional packages a command needs are
  installed; if not, a :class:`~keras_cnnkit.errors.MissingDependencyError` names the
  extra to install (one line, exit status 2), never a traceback.
* :func:`missing_dependency`: the same error for an ``ImportError`` met later.
* :func:`import_keras`: import Keras (and so its backend) with TensorFlow's C++ start-up
  lines (``oneDNN custom operations are on``, ``cudart_stub``, ``absl::InitializeLog``),
  which ``TF_CPP_MIN_LOG_LEVEL`` does not silence, kept off stderr.  Any other line
  written during the import is passed through.

Pure Python: importing this module imports neither Keras nor TensorFlow.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import sys
import tempfile
from typing import Iterable, Optional

from keras_cnnkit.errors import EXTRAS, MissingDependencyError

#: The lines TensorFlow's C++ runtime writes to stderr while it loads.
STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+\] "                       # absl INFO / WARNING lines
    r"|E\d{4} [\d:.]+\s+\d+ \S+\] (Unable to register cu|computation placer already)"
    r"|To enable the following instructions: )")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def keras_backend() -> str:
    """The Keras backend that ``import keras`` will load: ``KERAS_BACKEND``, else the one
    in Keras' config file, else ``tensorflow`` (Keras' own order)."""
    backend = os.environ.get("KERAS_BACKEND")
    if backend:
        return backend
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as handle:
            return str(json.load(handle).get("backend") or "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def require(what: str, modules: Iterable[str] = (), keras: bool = False) -> None:
    """Raise :class:`MissingDependencyError` unless ``modules`` (and, with ``keras``, the
    Keras backend package) can be imported.  Nothing is imported."""
    needed = list(modules)
    if keras:
        needed.insert(0, keras_backend())
    missing = [m for m in dict.fromkeys(needed) if not _installed(m)]
    if missing:
        raise MissingDependencyError(what, missing)


def missing_dependency(exc: BaseException, what: str) -> Optional[MissingDependencyError]:
    """The one-line error for an ``ImportError`` of an optional package (or of the Keras
    backend); ``None`` when ``exc`` is anything else."""
    if not isinstance(exc, ImportError):
        return None
    if isinstance(exc, MissingDependencyError):
        return exc
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name in EXTRAS or name == keras_backend():
        return MissingDependencyError(what, [name])
    return None


@contextlib.contextmanager
def _startup_lines_filtered():
    """Send file descriptor 2 (where TensorFlow's C++ code writes) to a temporary file,
    then replay what was written without the start-up noise."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode("utf-8", "replace").splitlines(True)
                    if not STARTUP_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_keras():
    """``import keras`` without TensorFlow's start-up lines on stderr; returns the module.

    Also sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless the user set it), which keeps the
    runtime's later info and warning lines (``cuInit`` failures on a machine without a
    GPU) quiet.  Importing Keras registers ``keras_cnnkit``'s blocks (see
    :mod:`keras_cnnkit`).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "keras" not in sys.modules:
        with _startup_lines_filtered():
            import keras  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    return sys.modules["keras"]
