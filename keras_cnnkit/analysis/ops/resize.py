"""``resize``: an image resized to a fixed spatial size (``Resizing``; ``keras.ops.image.
resize``; Keras 2 ``tf.image.resize`` layers).

Output: the input's channels at ``size``.  FLOPs per output element by interpolation
(taps · 2 − 1: one multiply per tap, adds between them): nearest 0; bilinear 7 (as
``upsample``); bicubic and Mitchell-cubic 31 (4×4 taps); Lanczos-3 71 (6×6), Lanczos-5
199 (10×10); area and Gaussian depend on the scale: unknown.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import Ints, OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import ShapeError, UnsupportedNodeError
from keras_cnnkit.analysis.ops.geometry import join, split
from keras_cnnkit.analysis.ops.registry import register

RESIZE = "resize"

#: FLOPs per output element of each interpolation (``None``: depends on the scale).
FLOPS_PER_ELEMENT = {"nearest": 0, "bilinear": 7, "bicubic": 31, "mitchellcubic": 31,
                     "lanczos3": 71, "lanczos5": 199, "area": None, "gaussian": None}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResizeAttrs(OpAttrs):
    """``size``: the output's spatial dims; ``interpolation``: Keras' (or TF's) method
    name, lower case."""

    size: Ints
    interpolation: str = "bilinear"


@register
class Resize(OpDef):
    """A resize → ``keras.layers.Resizing`` (two spatial axes)."""

    kind = RESIZE
    attrs = ResizeAttrs

    def infer_shape(self, a: ResizeAttrs, shapes: list) -> tuple:
        spatial, channels = split(shapes[0], a.data_format)
        if len(spatial) != len(a.size):
            raise ShapeError(f"a resize to {tuple(a.size)} of an input of shape {shapes[0]}")
        return join(tuple(a.size), channels, a.data_format)

    def flops(self, node, a: ResizeAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        per = FLOPS_PER_ELEMENT.get(a.interpolation)
        return None if per is None else per * sizes.out

    def latency_class(self, a: ResizeAttrs) -> str:
        """Nearest: movement; interpolation: element-wise arithmetic."""
        if a.interpolation == "nearest":
            return LatencyClass.MOVEMENT
        return LatencyClass.ELEMENTWISE

    def keras_layers(self, node, a: ResizeAttrs, common: dict) -> list:
        if len(a.size) != 2:
            raise UnsupportedNodeError(node.name, "Resizing resizes two spatial axes only")
        return [kc.keras_layer("Resizing")(int(a.size[0]), int(a.size[1]),
                                           interpolation=a.interpolation,
                                           data_format=node.data_format, **common)]
