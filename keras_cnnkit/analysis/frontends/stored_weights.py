"""The stored weights of a ``.keras`` or legacy ``.h5`` model file, read one at a time.

:func:`open_stored_weights` yields ``layer path → [h5py.Dataset, ...]`` (the layer's
weights in Keras' variable order), keyed like :attr:`keras_cnnkit.analysis.ir.Node.name`
for the layer's node.  The datasets' contents are read only when the caller reads them
(``dataset[()]``), so a caller that writes each weight before reading the next holds one
weight in memory at a time.  The file is walked as the static frontend walks it
(:mod:`.h5_reader`: hard links only, within the budgets); nothing is imported from it and
Keras and TensorFlow are not imported.
"""
from __future__ import annotations

import contextlib
import os
import zipfile
from typing import Iterator

from keras_cnnkit.analysis.frontends import budget_checks, h5_reader
from keras_cnnkit.analysis.frontends.containers import (FORMAT_H5, FORMAT_KERAS,
                                                        detect_format, read_model_file)
from keras_cnnkit.analysis.frontends.keras_config import ConfigFormatError, normalise_model
from keras_cnnkit.analysis.frontends.static_file import archive_layer_shapes
from keras_cnnkit.errors import ModelFileError


@contextlib.contextmanager
def open_stored_weights(path) -> Iterator[dict]:
    """``{layer path: [dataset, ...]}`` of model file ``path``, open for the ``with`` body.

    Raises:
        ModelFileError: the file is not a ``.keras``/``.h5`` model file or is damaged.
    """
    import h5py

    path = os.fspath(path)
    fmt = detect_format(path)
    if fmt not in (FORMAT_KERAS, FORMAT_H5):
        raise ModelFileError(path, f"a {fmt} file holds no stored weights")
    with contextlib.ExitStack() as stack:
        try:
            if fmt == FORMAT_H5:
                h5 = stack.enter_context(h5py.File(path, "r"))
                found = h5_reader.legacy_weight_shapes(h5, path, datasets=True) or {}
            else:
                found = _archive_datasets(path, stack)
        except ModelFileError:
            raise
        except h5_reader.H5FormatError as exc:
            raise ModelFileError(path, f"weights: {exc}") from None
        except zipfile.BadZipFile as exc:
            raise ModelFileError(path, f"damaged zip archive ({exc})") from None
        except h5_reader.H5_ERRORS as exc:
            raise ModelFileError(path, f"weights: damaged or truncated HDF5 ({exc})") \
                from None
        yield found


def _archive_datasets(path: str, stack: contextlib.ExitStack) -> dict:
    """The weights of a ``.keras`` archive by layer path, their file kept open on
    ``stack``."""
    import h5py

    model_file = read_model_file(path)
    try:
        spec = normalise_model(model_file.config)
    except ConfigFormatError as exc:
        raise ModelFileError(path, str(exc)) from None
    # closed by ``stack``:
    raw = stack.enter_context(open(path, "rb"))  # pylint: disable=consider-using-with
    archive = stack.enter_context(zipfile.ZipFile(raw))  # pylint: disable=consider-using-with
    if "model.weights.h5" not in archive.namelist():
        return {}
    info = archive.getinfo("model.weights.h5")
    stream = stack.enter_context(budget_checks.member_stream(path, archive, raw, info))
    h5 = stack.enter_context(h5py.File(stream, "r"))
    return archive_layer_shapes(h5_reader.archive_weight_shapes(h5, path, datasets=True),
                                spec)
