"""``crop``: cropping of the spatial axes (``Cropping1D/2D/3D``; ONNX ``Slice`` of
spatial axes).

0 FLOPs (data movement).
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, no_flops
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.geometry import per_spatial
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class CropAttrs(OpAttrs):
    """``cropping``: ``(begin, end)`` per spatial axis."""

    cropping: tuple


def _cropped(n: int, crop: tuple) -> int:
    begin, end = crop
    if n - begin - end < 1:
        raise ShapeError(f"cropping {(begin, end)} leaves nothing of length {n}")
    return n - begin - end


@register
class Crop(OpDef):
    """A cropping → ``keras.layers.Cropping{rank}D``."""

    kind = OpKind.CROP
    attrs = CropAttrs
    latency = LatencyClass.MOVEMENT
    flops = no_flops

    def infer_shape(self, a: CropAttrs, shapes: list) -> tuple:
        return per_spatial(shapes[0], a.data_format, a.cropping, _cropped)

    def keras_layers(self, node, a: CropAttrs, common: dict) -> list:
        return kc.spatial_layer(node, "Cropping", "cropping", a.cropping, common)
