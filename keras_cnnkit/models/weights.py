"""Pretrained weights: fetching keras.applications' files, loading, input-conv adaptation.

ImageNet files are fetched with ``keras.utils.get_file`` from the same URLs, with the same
file names and hashes as keras.applications, so the Keras cache (``~/.keras/models``) is
shared with it.  Weight files load by layer order (the legacy ``.h5`` format), which is why
the builders reproduce keras.applications' layer order exactly.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np

KERAS_APPS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


class WeightsUnavailableError(OSError):
    """Raised when pretrained weights cannot be downloaded (for instance offline)."""


@dataclasses.dataclass(frozen=True)
class WeightsFile:
    """One downloadable weights file: cache name, URL and md5 hash (``None``: unchecked)."""

    fname: str
    origin: str
    file_hash: str | None = None


def keras_apps_file(subdir: str, fname: str, file_hash: str | None = None) -> WeightsFile:
    """A file under keras.applications' storage bucket (``KERAS_APPS_URL + subdir/fname``)."""
    return WeightsFile(fname, f"{KERAS_APPS_URL}{subdir}/{fname}", file_hash)


def fetch(weights_file: WeightsFile) -> str:
    """Download (or find in the Keras cache) ``weights_file``; return its local path.

    Raises:
        WeightsUnavailableError: the download failed; the message says how to pass a
            local copy instead.
    """
    import keras

    try:
        return keras.utils.get_file(
            weights_file.fname, weights_file.origin, cache_subdir="models",
            file_hash=weights_file.file_hash,
        )
    except Exception as err:  # pylint: disable=broad-exception-caught
        # get_file raises a bare Exception on network errors and ValueError on bad hashes.
        cache = os.path.join(os.path.expanduser("~"), ".keras", "models", weights_file.fname)
        raise WeightsUnavailableError(
            f"could not download the ImageNet weights {weights_file.fname!r} from "
            f"{weights_file.origin} ({err}). If this machine is offline, download that file "
            f"elsewhere and either pass its local path as `weights='/path/to/"
            f"{weights_file.fname}'` or copy it to {cache}."
        ) from err


def check_weights_arg(weights) -> None:
    """``weights`` must be ``None``, ``"imagenet"`` or the path of an existing file."""
    if weights is None or weights == "imagenet":
        return
    if not isinstance(weights, (str, os.PathLike)) or not os.path.exists(weights):
        raise ValueError(
            "`weights` must be None (random initialisation), 'imagenet' (pre-trained "
            f"weights, downloaded) or the path to an existing weights file; got {weights!r}"
        )


def adapt_input_conv(kernel: np.ndarray, in_channels: int) -> np.ndarray:
    """Adapt a first-conv kernel ``(kh, kw, 3, out)`` to ``in_channels`` input channels.

    timm's ``adapt_input_conv``: for one channel, sum the RGB kernels; otherwise repeat
    them cyclically and rescale by ``3 / in_channels`` so activations keep their scale.
    """
    kernel = np.asarray(kernel)
    src = kernel.shape[-2]
    if in_channels == src:
        return kernel
    if in_channels == 1:
        return kernel.sum(axis=-2, keepdims=True)
    if src != 3:
        raise ValueError(f"cannot adapt a kernel with {src} input channels to {in_channels}")
    reps = math.ceil(in_channels / 3)
    tiled = np.concatenate([kernel] * reps, axis=-2)[..., :in_channels, :]
    return (tiled * (3.0 / in_channels)).astype(kernel.dtype)


def transfer_weights(source, target) -> None:
    """Copy weights from ``source`` into ``target`` layer by layer name.

    ``target`` may be a sub-graph of ``source`` (``features_only``) and may take a
    different number of input channels: a kernel that differs only in its input-channel
    axis is adapted with :func:`adapt_input_conv`.
    """
    for layer in target.layers:
        if not layer.weights:
            continue
        values = source.get_layer(layer.name).get_weights()
        new = []
        for var, value in zip(layer.weights, values):
            shape = tuple(var.shape)
            if shape != value.shape:
                if len(shape) == 4 and shape[:2] + shape[3:] == value.shape[:2] + value.shape[3:]:
                    value = adapt_input_conv(value, shape[2])
                else:
                    raise ValueError(
                        f"cannot transfer weight {var.path} of shape {value.shape} to {shape}"
                    )
            new.append(value)
        layer.set_weights(new)
