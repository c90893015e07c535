"""Keras' image preprocessing layers and keras.applications' own layers → IR: their
entries in the layer table of :mod:`keras_cnnkit.analysis.keras_layers`
(:data:`HANDLERS`).

Resizing and cropping (``Resizing``, ``CenterCrop``, ``RandomCrop`` at inference), the
layers that are the identity at inference (data augmentation: :data:`INFERENCE_IDENTITY`),
per-pixel adjustments (``AutoContrast``, histogram equalisation), adaptive pooling, and
InceptionResNetV2's ``CustomScaleLayer``.  Same conventions as the main table.  Pure
Python.
"""
from __future__ import annotations

from typing import Callable

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.layer_config import (
    LayerConfigError,
    data_format_of,
    positive,
    positive_ints,
    value_of,
)
from keras_cnnkit.analysis.ops.adaptive_pool import ADAPTIVE_POOL
from keras_cnnkit.analysis.ops.resize import RESIZE
from keras_cnnkit.analysis.ops.unary import UNARY

# All handlers share one signature, so some ignore an argument.
# pylint: disable=unused-argument

Handler = Callable[[dict, list], list]


def _custom_scale(config: dict, shapes: list) -> list:
    """InceptionResNetV2's ``CustomScaleLayer(scale)``: ``inputs[0] + inputs[1] · scale``
    (a scalar rescale of the residual branch, then the residual add)."""
    scale = config.get("scale")
    if not isinstance(scale, (int, float)) or isinstance(scale, bool):
        raise LayerConfigError(f"`scale` must be a number, got {scale!r}")
    if len(shapes) != 2:
        raise LayerConfigError(f"takes two inputs, got {len(shapes)}")
    return [("scale", OpKind.RESCALE, {"mode": "scalar", "params": 0, "scale": float(scale)},
             (1,)),
            ("", OpKind.ADD, {}, (0, "scale"))]


def _target_size(config: dict) -> tuple:
    return (positive(config.get("height"), "height"), positive(config.get("width"), "width"))


def _resizing(config: dict, shapes: list) -> list:
    """``Resizing(height, width)``: the image resized (cropped or padded to the aspect
    ratio first when asked: the output size is the same)."""
    return [("", RESIZE, {"size": _target_size(config), "data_format": data_format_of(config),
                          "interpolation": str(value_of(config, "interpolation", "bilinear"))},
             None)]


def _center_crop(config: dict, shapes: list) -> list:
    """``CenterCrop(height, width)``: a crop of the centre; an input smaller than the
    target is resized to it instead (what Keras does)."""
    fmt = data_format_of(config)
    size = _target_size(config)
    spatial = shapes[0][1:] if fmt == "channels_first" else shapes[0][:-1]
    if len(spatial) == 2 and all(n is not None and n >= t for n, t in zip(spatial, size)):
        cropping = tuple(((n - t) // 2, n - t - (n - t) // 2) for n, t in zip(spatial, size))
        return [("", OpKind.CROP, {"cropping": cropping, "data_format": fmt}, None)]
    return _resizing(dict(config, interpolation="bilinear"), shapes)


def _adaptive_pool(kind: str, rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", ADAPTIVE_POOL, {
            "pool_type": kind,
            "output_size": positive_ints(config.get("output_size"), rank, "output_size"),
            "data_format": data_format_of(config)}, None)]
    return handler


def _unary(function: str) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", UNARY, {"function": function}, None)]
    return handler


def _identity(config: dict, shapes: list) -> list:
    return [("", OpKind.IDENTITY, {}, None)]


#: Layers that return their input unchanged at inference (data augmentation, masks, the
#: bounding-box limit): the identity.  ``tests/test_keras_layer_coverage.py`` runs each
#: at inference to check it.
INFERENCE_IDENTITY = (
    "AugMix", "CutMix", "MixUp", "RandAugment", "RandomBrightness",
    "RandomColorDegeneration", "RandomColorJitter", "RandomContrast",
    "RandomElasticTransform", "RandomErasing", "RandomFlip", "RandomGaussianBlur",
    "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective",
    "RandomPosterization", "RandomRotation", "RandomSaturation", "RandomSharpness",
    "RandomShear", "RandomTranslation", "RandomZoom", "Solarization", "Equalization",
    "MaxNumBoundingBoxes", "Masking")



HANDLERS = {
    "CustomScaleLayer": _custom_scale,
    "Resizing": _resizing,
    "CenterCrop": _center_crop,
    # At inference, RandomCrop returns the largest centred window of the target
    # aspect ratio, resized to the target size.
    "RandomCrop": _resizing,
    "AutoContrast": _unary("autocontrast"),
    "ContrastLimitedAdaptiveHistogramEqualization": _unary("clahe"),
    **{name: _identity for name in INFERENCE_IDENTITY},
    **{f"Adaptive{kind}Pooling{rank}D": _adaptive_pool(pool, rank)
       for rank in (1, 2, 3) for kind, pool in (("Average", "avg"), ("Max", "max"))},
}
