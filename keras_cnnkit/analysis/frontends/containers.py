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
naming the file.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import zipfile
from typing import Optional

from keras_cnnkit.errors import ModelFileError
from keras_cnnkit.io_guard import require_regular_file

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
#: Largest ``config.json`` (or bare JSON config) read, in bytes.
MAX_JSON_BYTES = 512 * 1024 * 1024

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
    """Decode architecture JSON; the top level must be an object with ``class_name``."""
    prefix = f"{where}: " if where else ""
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
    with open(path, "rb") as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ModelFileError(path, f"JSON config larger than {MAX_JSON_BYTES:,} bytes")
    return ModelFile(path, FORMAT_JSON, parse_config(path, data),
                     config_text=data.decode("utf-8-sig", "replace"))


def _read_h5_file(path: str) -> ModelFile:
    import h5py

    from keras_cnnkit.analysis.frontends import h5_reader

    try:
        with h5py.File(path, "r") as h5:
            text = h5_reader.read_model_config(h5)
            shapes = h5_reader.legacy_weight_shapes(h5)
            version = h5.attrs.get("keras_version")
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


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``[start, start + size)`` of an open binary file.

    Lets h5py read a zip member stored uncompressed in place, touching only the
    metadata pages it needs instead of copying the whole member.
    """

    def __init__(self, fh, start: int, size: int):
        super().__init__()
        self._fh, self._start, self._size, self._pos = fh, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._size - self._pos))
        if count == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(count)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def _member_stream(archive: zipfile.ZipFile, raw, info: zipfile.ZipInfo):
    """A seekable stream over one archive member, in place when it is stored."""
    if info.compress_type == zipfile.ZIP_STORED:
        raw.seek(info.header_offset)
        header = raw.read(30)
        if len(header) == 30 and header[:4] == b"PK\x03\x04":
            name_len = int.from_bytes(header[26:28], "little")
            extra_len = int.from_bytes(header[28:30], "little")
            return _Window(raw, info.header_offset + 30 + name_len + extra_len, info.file_size)
    return archive.open(info)


def _read_keras_archive(path: str) -> ModelFile:
    import h5py

    from keras_cnnkit.analysis.frontends import h5_reader

    try:
        with open(path, "rb") as raw, zipfile.ZipFile(raw) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelFileError(path, "zip archive without 'config.json' (not a "
                                           ".keras model file)")
            info = archive.getinfo("config.json")
            if info.file_size > MAX_JSON_BYTES:
                raise ModelFileError(path, f"config.json is {info.file_size:,} bytes, over "
                                           f"the {MAX_JSON_BYTES:,}-byte limit")
            with archive.open(info) as member:
                text = member.read(MAX_JSON_BYTES + 1)
            if len(text) > MAX_JSON_BYTES:
                raise ModelFileError(path, "config.json larger than its declared size")
            config = parse_config(path, text, "config.json")
            version = None
            if "metadata.json" in names and archive.getinfo("metadata.json").file_size < 65536:
                try:
                    version = json.loads(archive.read("metadata.json")).get("keras_version")
                except (ValueError, AttributeError):
                    version = None
            shapes = None
            if "model.weights.h5" in names:
                stream = _member_stream(archive, raw, archive.getinfo("model.weights.h5"))
                try:
                    with h5py.File(stream, "r") as h5:
                        shapes = h5_reader.archive_weight_shapes(h5)
                except h5_reader.H5FormatError as exc:
                    raise ModelFileError(path, f"model.weights.h5: {exc}") from None
                except h5_reader.H5_ERRORS as exc:
                    raise ModelFileError(path, "model.weights.h5: damaged or truncated HDF5 "
                                               f"({_h5_reason(exc)})") from None
    except zipfile.BadZipFile as exc:
        raise ModelFileError(path, f"damaged zip archive ({exc})") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise ModelFileError(path, f"unreadable zip archive ({exc})") from None
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
