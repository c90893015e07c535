"""Open a model file by its magic bytes and return its architecture config and weight shapes.

Three containers are recognised, by content and never by suffix:

==================  =============================  ====================================
format              magic                          what is read
==================  =============================  ====================================
``keras`` archive   ``PK\\x03\\x04`` (zip)          ``config.json``; shapes from
                                                   ``model.weights.h5``
``h5`` (legacy)     ``\\x89HDF\\r\\n\\x1a\\n``         root attribute ``model_config``;
                                                   shapes from ``model_weights/``
``json`` config     first byte ``{``               the file itself (no weights)
==================  =============================  ====================================

Only JSON text and HDF5 metadata are read; nothing in the file is imported, unpickled,
unmarshalled or executed.  Every problem raises :class:`~keras_cnnkit.errors.ModelFileError`
naming the file.  What a file may ask for is bounded before it is done (see
:mod:`keras_cnnkit.budgets` and :mod:`.budget_checks`): JSON bytes, depth and values
before parsing; the member count of an archive before its directory is read; each
member's inflated bytes, counted as they are inflated; HDF5 links and path depths.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from typing import Optional

from keras_cnnkit.analysis.frontends import budget_checks
from keras_cnnkit.budgets import BudgetError, current
from keras_cnnkit.errors import ModelFileError
from keras_cnnkit.io_guard import require_regular_file

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
#: Largest ``metadata.json`` of an archive read (bytes); a bigger one is ignored.
MAX_METADATA_BYTES = 65536

FORMAT_KERAS = "keras"
FORMAT_H5 = "h5"
FORMAT_JSON = "json"
FORMAT_ONNX = "onnx"


@dataclasses.dataclass
class ModelFile:
    """What a model file holds, before any interpretation of the architecture.

    Attributes:
        path: the file as the user named it.
        format: ``"keras"``, ``"h5"`` or ``"json"``.
        config: the decoded architecture (``{"class_name": ..., "config": ...}``).
        weight_shapes: for ``h5``, layer path (``"conv1"``, ``"subseq/sc"``) → the
            shapes of that layer's weights; for ``keras``, the weights file's groups as
            :func:`.h5_reader.archive_weight_shapes` returns them; ``None`` when the file
            holds no weights.
        keras_version: the Keras version that wrote the file, where recorded.
        config_text: the architecture JSON as written (a JSON config file, a ``.keras``
            archive's ``config.json``), for :func:`name_lines`; ``None`` for ``h5``.
    """

    path: str
    format: str
    config: dict
    weight_shapes: Optional[dict] = None
    keras_version: Optional[str] = None
    config_text: Optional[str] = None


_NAME_KEY = re.compile(r'"name"\s*:\s*("(?:[^"\\]|\\.)*")')


def name_lines(text: Optional[str]) -> dict:
    """``{name: line}``: the 1-based line of the first ``"name": "<name>"`` of a JSON
    text (where a Keras config defines each layer); empty for ``None``."""
    lines: dict = {}
    if not text:
        return lines
    line, counted = 1, 0            # the line at offset ``counted``: one pass over the text
    for match in _NAME_KEY.finditer(text):
        line += text.count("\n", counted, match.start())
        counted = match.start()
        try:
            name = json.loads(match.group(1))
        except ValueError:
            continue
        lines.setdefault(name, line)
    return lines


def detect_format(path: str) -> str:
    """``"keras"``, ``"h5"``, ``"json"`` or ``"onnx"`` from the first bytes of ``path``.

    Raises:
        ModelFileError: missing path, a directory, an empty or unrecognised file.
    """
    if os.path.isdir(path):
        raise ModelFileError(path, "is a directory, not a model file (TensorFlow "
                                   "SavedModel directories are not supported; save as "
                                   ".keras or .h5)")
    info = require_regular_file(path)
    if info.st_size == 0:
        raise ModelFileError(path, "empty file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from None
    if head.startswith(HDF5_MAGIC):
        return FORMAT_H5
    if head.startswith(ZIP_MAGICS):
        return FORMAT_KERAS
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return FORMAT_JSON
    from keras_cnnkit.analysis.frontends.onnx_frontend import looks_like_onnx
    if looks_like_onnx(head):
        return FORMAT_ONNX
    raise ModelFileError(path, "not a model file (expected a .keras zip archive, an HDF5 "
                               ".h5 file, a JSON model config or an ONNX model)")


def parse_config(path: str, text, where: str = "") -> dict:
    """Decode architecture JSON; the top level must be an object with ``class_name``.

    Its bytes, depth and values are checked against the budgets first
    (:func:`.budget_checks.check_json`).
    """
    prefix = f"{where}: " if where else ""
    budget_checks.check_json(path, text, where)
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8-sig")
        config = json.loads(text)
    except UnicodeDecodeError as exc:
        raise ModelFileError(path, f"{prefix}not UTF-8 text ({exc.reason} at byte "
                                   f"{exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(path, f"{prefix}invalid JSON: {exc.msg} at line {exc.lineno} "
                                   f"column {exc.colno}") from None
    except RecursionError:
        raise ModelFileError(path, f"{prefix}JSON nested too deeply") from None
    except ValueError as exc:  # e.g. integers longer than Python's digit limit
        raise ModelFileError(path, f"{prefix}invalid JSON: {exc}") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelFileError(path, f"{prefix}not a Keras model config (no top-level "
                                   "'class_name')")
    return config


def _read_json_file(path: str) -> ModelFile:
    limit = current().max_json_bytes
    with open(path, "rb") as fh:
        data = fh.read(min(limit, os.fstat(fh.fileno()).st_size) + 1)
    if len(data) > limit:
        size = max(os.path.getsize(path), len(data))
        raise BudgetError(path, "max-json-bytes", size, limit,
                          f"the JSON config is {size:,} bytes")
    return ModelFile(path, FORMAT_JSON, parse_config(path, data),
                     config_text=data.decode("utf-8-sig", "replace"))


def _read_h5_file(path: str) -> ModelFile:
    import h5py

    from keras_cnnkit.analysis.frontends import h5_reader

    try:
        with h5py.File(path, "r") as h5:
            text = h5_reader.read_model_config(h5, path)
            shapes = h5_reader.legacy_weight_shapes(h5, path)
            version = h5.attrs.get("keras_version")
    except ModelFileError:
        raise
    except h5_reader.H5FormatError as exc:
        raise ModelFileError(path, str(exc)) from None
    except h5_reader.H5_ERRORS as exc:
        raise ModelFileError(path, f"damaged or truncated HDF5 file ({_h5_reason(exc)})") \
            from None
    return ModelFile(path, FORMAT_H5, parse_config(path, text, "model_config"), shapes,
                     _version_text(version))


def _h5_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    match = re.search(r"\(([^()]*)\)\s*$", text)  # libhdf5 puts the cause last
    return match.group(1) if match else text[:200]


def _version_text(value) -> Optional[str]:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _read_keras_archive(path: str) -> ModelFile:
    try:
        with open(path, "rb") as raw:
            budget_checks.check_archive(path, raw)
            with zipfile.ZipFile(raw) as archive:
                return _read_archive_members(path, raw, archive)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(path, f"damaged zip archive ({exc})") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise ModelFileError(path, f"unreadable zip archive ({exc})") from None


def _archive_version(path: str, archive: zipfile.ZipFile, names: set) -> Optional[str]:
    """``keras_version`` from ``metadata.json``, when it is small and well-formed."""
    if "metadata.json" not in names:
        return None
    info = archive.getinfo("metadata.json")
    if info.file_size >= MAX_METADATA_BYTES:
        return None
    try:
        return json.loads(budget_checks.read_member(path, archive, info)).get("keras_version")
    except (ValueError, AttributeError):
        return None


def _read_archive_members(path: str, raw, archive: zipfile.ZipFile) -> ModelFile:
    import h5py

    from keras_cnnkit.analysis.frontends import h5_reader

    names = set(archive.namelist())
    if "config.json" not in names:
        raise ModelFileError(path, "zip archive without 'config.json' (not a "
                                   ".keras model file)")
    text = budget_checks.read_member(path, archive, archive.getinfo("config.json"),
                                     "max-json-bytes")
    config = parse_config(path, text, "config.json")
    version = _archive_version(path, archive, names)
    shapes = None
    if "model.weights.h5" in names:
        with budget_checks.member_stream(path, archive, raw,
                                         archive.getinfo("model.weights.h5")) as stream:
            try:
                with h5py.File(stream, "r") as h5:
                    shapes = h5_reader.archive_weight_shapes(h5, path)
            except ModelFileError:
                raise
            except h5_reader.H5FormatError as exc:
                raise ModelFileError(path, f"model.weights.h5: {exc}") from None
            except h5_reader.H5_ERRORS as exc:
                raise ModelFileError(path, "model.weights.h5: damaged or truncated HDF5 "
                                           f"({_h5_reason(exc)})") from None
    return ModelFile(path, FORMAT_KERAS, config, shapes, _version_text(version),
                     text.decode("utf-8-sig", "replace"))


def read_model_file(path) -> ModelFile:
    """Read ``path`` (a ``.keras`` archive, a legacy ``.h5`` or a JSON config).

    The :attr:`ModelFile.weight_shapes` of a ``.keras`` archive are keyed by the weights
    file's group paths, as :func:`.h5_reader.archive_weight_shapes` returns them;
    :func:`.static_file.archive_layer_shapes` maps them to layer paths.

    Raises:
        ModelFileError: for every unreadable, damaged or non-model file.
    """
    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt == FORMAT_ONNX:
        raise ModelFileError(path, "an ONNX model, not a Keras file (static_file.load_graph "
                                   "reads both)")
    reader = {FORMAT_KERAS: _read_keras_archive, FORMAT_H5: _read_h5_file,
              FORMAT_JSON: _read_json_file}[fmt]
    try:
        return reader(path)
    except MemoryError:
        raise ModelFileError(path, "out of memory while reading the file") from None
    except OSError as exc:
        raise ModelFileError(path, f"cannot read: {exc.strerror or exc}") from None
