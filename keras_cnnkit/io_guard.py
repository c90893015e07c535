"""File I/O guards: the one place where keras-cnnkit opens a user's file or writes one.

Every command that reads a model, a configuration or a baseline, and every command that
writes (``cnnkit-lint -o``, ``--write-baseline``, ``--fix -o``, ``cnnkit-export -o``),
goes through these functions, so that they follow the same rules:

* **Inputs are regular files.**  A path is ``stat``-ed before it is opened; a directory,
  a FIFO, a device (``/dev/zero``) or a socket is refused with one line naming what it
  is, and is never opened (opening a FIFO blocks; ``/dev/zero`` never ends).  The open
  itself is non-blocking and re-checked with ``fstat``, and reads are capped
  (:data:`MAX_TEXT_BYTES` for configuration and baseline files).
* **No output replaces an input.**  :func:`check_output_path` refuses any output that
  resolves to one of the run's inputs, by name (relative paths, ``..``), through a
  symbolic link or as a hard link (same device and inode), whatever ``force`` says.
* **Writes are atomic.**  :func:`write_atomic` writes a temporary file beside the
  output, gives it the permissions the umask allows (``0o666 & ~umask``, like ``open``),
  then links it into place (without ``force``: fails if the output appeared meanwhile)
  or renames it over the output (with ``force``).  A failed write leaves no temporary
  file behind and the old output untouched.  An existing output that is not a regular
  file (``/dev/null``, a pipe) is written to directly, since it cannot be replaced.
* **Models load safely.**  :func:`load_keras_model` loads with ``safe_mode=True``: a
  ``Lambda`` or an unknown class is refused, nothing in the file runs.
* :func:`functional_graph` decides "is this a graph model": the Functional model behind
  a Keras model (itself, or a built Sequential's), or ``None`` for a subclassed model.

Pure Python at import: Keras is imported only by the functions that need it.
"""
from __future__ import annotations

import os
import re
import stat
import tempfile
import warnings
from typing import Callable, Iterable, Optional, Union

from keras_cnnkit.errors import ModelFileError, PathLike

__all__ = [
    "MAX_TEXT_BYTES", "OutputFileError", "check_output_path", "current_umask",
    "file_kind", "functional_graph", "load_keras_model", "read_regular_file",
    "read_text_file", "require_regular_file", "same_file", "write_atomic",
]

#: Largest configuration or baseline file read, in bytes.
MAX_TEXT_BYTES = 16 * 2 ** 20

#: ``error(path, problem)``: the exception class a guard raises (``ModelFileError``,
#: ``ConfigError``: both take the path or source, then a one-line problem).
ErrorFactory = Callable[[str, str], Exception]


class OutputFileError(ModelFileError):
    """An output cannot be written where asked (an input, exists, unwritable, bad suffix).

    ``str(error)`` is ``"<output path>: <problem>"``, like :class:`ModelFileError`.
    """


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: ``"a regular file"``, ``"a FIFO (named pipe)"``..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def require_regular_file(path: PathLike, what: str = "file",
                         error: ErrorFactory = ModelFileError) -> os.stat_result:
    """``os.stat(path)`` (symbolic links followed) after checking it is a regular file.

    Nothing is opened.  Raises ``error(path, problem)``: ``"no such <what>"``,
    ``"not a file but a FIFO (named pipe)"`` and the like, or ``"cannot access: ..."``.
    """
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except FileNotFoundError:
        raise error(name, f"no such {what}") from None
    except (OSError, ValueError) as exc:
        raise error(name, f"cannot access: {getattr(exc, 'strerror', None) or exc}") \
            from None
    if not stat.S_ISREG(info.st_mode):
        raise error(name, f"not a file but {file_kind(info.st_mode)}")
    return info


def read_regular_file(path: PathLike, limit: int = MAX_TEXT_BYTES, what: str = "file",
                      error: ErrorFactory = ModelFileError) -> bytes:
    """The bytes of regular file ``path``, at most ``limit`` of them.

    The file is checked with :func:`require_regular_file`, opened non-blocking (a FIFO
    swapped in after the check cannot hang the read) and checked again with ``fstat``.

    Raises:
        ``error(path, problem)``: not a regular file, unreadable, or larger than ``limit``.
    """
    name = os.fspath(path)
    require_regular_file(name, what, error)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(name, f"cannot read: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise error(name, f"not a file but {file_kind(mode)}")
        try:
            data = handle.read(limit + 1)
        except OSError as exc:
            raise error(name, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(name, f"larger than {limit:,} bytes; not read")
    return data


def read_text_file(path: PathLike, limit: int = MAX_TEXT_BYTES, what: str = "file",
                   error: ErrorFactory = ModelFileError) -> str:
    """:func:`read_regular_file` decoded as UTF-8 (a byte-order mark is dropped)."""
    data = read_regular_file(path, limit, what, error)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(os.fspath(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from None


def same_file(first: PathLike, second: PathLike) -> bool:
    """True when both paths name one file: the same device and inode (so hard links and
    symbolic links count), or, where either cannot be ``stat``-ed, the same real path."""
    try:
        return os.path.samefile(first, second)
    except (OSError, ValueError):
        return os.path.realpath(first) == os.path.realpath(second)


def current_umask() -> int:
    """The process umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _existing_kind(path: str) -> Optional[int]:
    try:
        return os.stat(path).st_mode
    except (OSError, ValueError):
        return None


def check_output_path(path: PathLike, inputs: Iterable[PathLike] = (), force: bool = False,
                      suffixes: Optional[tuple] = None) -> str:
    """Check that ``path`` may be written; returns it as a string.

    Args:
        path: the output.
        inputs: every file the run reads; the output may resolve to none of them.
        force: an existing regular file may be replaced.
        suffixes: the endings the output must have (``(".keras", ".h5")``), if any.

    Raises:
        OutputFileError: the output is an input (even with ``force``), a directory, an
            existing file without ``force``, has the wrong suffix, or its directory is
            missing or not writable.
    """
    out = os.fspath(path)
    for source in inputs:
        if same_file(out, source):
            raise OutputFileError(out, f"is the input file {os.fspath(source)}; no command "
                                       "ever writes over its input")
    if suffixes and not out.endswith(tuple(suffixes)):
        raise OutputFileError(out, f"the output must end in {' or '.join(suffixes)}")
    mode = _existing_kind(out)
    if mode is not None:
        if stat.S_ISDIR(mode):
            raise OutputFileError(out, "is a directory")
        if stat.S_ISREG(mode) and not force:
            raise OutputFileError(out, "already exists (use --force to overwrite it)")
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise OutputFileError(out, f"cannot write: directory {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputFileError(out, f"cannot write: directory {folder} is not writable")
    return out


Content = Union[bytes, str, Callable[[str], None]]


def write_atomic(path: PathLike, content: Content, inputs: Iterable[PathLike] = (),
                 force: bool = False, suffixes: Optional[tuple] = None) -> str:
    """Write ``content`` to ``path`` atomically (see the module docstring); returns the path.

    Args:
        path: the output (checked with :func:`check_output_path`).
        content: bytes, text (written as UTF-8), or ``write(tmp_path)``, a function that
            writes the file itself (``model.save``).
        inputs / force / suffixes: as for :func:`check_output_path`.

    Raises:
        OutputFileError: the output may not or cannot be written.
    """
    inputs = [os.fspath(p) for p in inputs]
    out = check_output_path(path, inputs, force, suffixes)
    data = content.encode("utf-8") if isinstance(content, str) else content
    mode = _existing_kind(out)
    if mode is not None and not stat.S_ISREG(mode):
        return _write_stream(out, data)
    folder, base = os.path.split(os.path.abspath(out))
    stem, suffix = os.path.splitext(base)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=folder)
    except OSError as exc:
        raise OutputFileError(out, f"cannot write: {exc.strerror or exc}") from None
    try:
        if callable(data):
            os.close(fd)
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        check_output_path(out, inputs, force=True)   # nothing swapped in meanwhile
        _move_into_place(tmp, out, force)
    except OSError as exc:
        raise OutputFileError(out, f"cannot write: {exc.strerror or exc}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
    return out


def _move_into_place(tmp: str, out: str, force: bool) -> None:
    """``os.replace`` with ``force``; otherwise a hard link, which fails if ``out`` exists."""
    if force:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)
    except FileExistsError:
        raise OutputFileError(out, "already exists (use --force to overwrite it)") from None
    except OSError:  # no hard links on this file system: check, then rename
        if os.path.lexists(out):
            raise OutputFileError(out, "already exists (use --force to overwrite it)") \
                from None
        os.replace(tmp, out)


def _write_stream(out: str, data) -> str:
    """Write to an existing non-regular output (``/dev/null``, a pipe): it cannot be
    replaced, so it is written in place; a model (a ``write`` function) is refused."""
    if callable(data):
        raise OutputFileError(out, f"not a file but {file_kind(os.stat(out).st_mode)}")
    try:
        with open(out, "wb") as handle:
            handle.write(data)
    except OSError as exc:
        raise OutputFileError(out, f"cannot write: {exc.strerror or exc}") from None
    return out


def load_keras_model(path: PathLike):
    """``keras.models.load_model(path, compile=False, safe_mode=True)`` with clear errors.

    ``path`` must be a readable regular file (see :func:`require_regular_file`);
    ``keras_cnnkit``'s layers are registered first.  A file with a ``Lambda`` layer or an
    unknown class is refused (nothing from it is executed).

    Raises:
        ModelFileError: the file is missing, not a regular file, or cannot be loaded
            safely.
    """
    path = os.fspath(path)
    require_regular_file(path)
    if not os.access(path, os.R_OK):
        raise ModelFileError(path, "not readable")
    import keras

    import keras_cnnkit.layers  # noqa: F401  pylint: disable=unused-import
    # Keras warns while it loads a damaged file ("Skipping nested container ...") and
    # then raises: the refusal is the one line, and a load it completed only in part
    # (layers left at fresh initial weights) is refused too, never used or written.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            model = keras.models.load_model(path, compile=False, safe_mode=True)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # Keras raises many types for a bad file; every one is bad input.
            raise ModelFileError(path, _load_problem(exc)) from None
    for warning in caught:
        if _PARTIAL_LOAD.search(str(warning.message)):
            raise ModelFileError(path, "Keras loaded its weights only in part ("
                                       f"{' '.join(str(warning.message).split())[:200]}); "
                                       "it is not used")
        warnings.warn_explicit(warning.message, warning.category, warning.filename,
                               warning.lineno)
    return model


#: Keras' warnings that a load left weights unread.
_PARTIAL_LOAD = re.compile(r"Skipping|freshly[- ]initiali[sz]ed|could not be loaded|"
                           r"not (?:be )?loaded")


def _load_problem(exc: Exception) -> str:
    """What Keras' refusal means, in one line: the layer it names, not a guess."""
    text = " ".join(str(exc).split())
    refused = re.search(r"deserialization of a `(\w+)`", text)
    if refused and refused.group(1) != "Lambda":
        return (f"holds a {refused.group(1)} layer, which Keras' safe mode refuses "
                f"({_reason_of(text)}): it is not loaded and nothing in it is run")
    if "vocabulary file outside" in text:
        found = re.search(r"Vocabulary file: (.*)$", text)
        where = f" {found.group(1)[:120]}" if found else ""
        return (f"holds a lookup layer that reads the vocabulary file{where} from outside "
                "the model file; Keras' safe mode refuses it: it is not loaded")
    if "Lambda" in text:
        return ("holds a Lambda layer (arbitrary Python code); Keras' safe mode refuses "
                "it: it is not loaded and nothing in it is run")
    if "safe_mode" in text:
        return f"Keras' safe mode refuses to load it ({text[:200]})"
    if "Could not locate" in text or "Unknown layer" in text:
        return f"uses a layer class that is not available here: {text[:200]}"
    return (f"cannot be loaded as a Keras model (Keras cannot load it: "
            f"{type(exc).__name__}: {text[:200]})")


def _reason_of(text: str) -> str:
    """Keras' reason for a safe-mode refusal (``"loads an external SavedModel"``)."""
    found = re.search(r"`\w+`, which ([^.]*)\.", text)
    return found.group(1) if found else "it reaches outside the file"


def functional_graph(model):
    """The Functional model behind ``model``, or ``None``.

    A Functional model (``keras.Model(inputs, outputs)``) is its own graph; a built
    ``Sequential`` runs one internally.  A subclassed model (Python ``call``) has none.
    """
    from keras.src.models.functional import Functional

    if isinstance(model, Functional):
        return model
    inner = getattr(model, "_functional", None)
    return inner if isinstance(inner, Functional) else None
