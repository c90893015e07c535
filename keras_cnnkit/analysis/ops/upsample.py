"""``upsample``: repetition (``"nearest"``) or interpolation of the spatial axes by
integer factors (``UpSampling1D/2D/3D``; ONNX ``Resize``/``Upsample``).

FLOPs: nearest 0; bilinear 7 per output element (4 multiplies, 3 adds); other
interpolations unknown.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import Ints, OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.geometry import per_spatial
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class UpsampleAttrs(OpAttrs):
    """``size``: factor per spatial axis; ``interpolation``: ``"nearest"``,
    ``"bilinear"``..."""

    size: Ints
    interpolation: str = "nearest"


@register
class Upsample(OpDef):
    """An up-sampling → ``keras.layers.UpSampling{rank}D``."""

    kind = OpKind.UPSAMPLE
    attrs = UpsampleAttrs
    latency = LatencyClass.MOVEMENT

    def infer_shape(self, a: UpsampleAttrs, shapes: list) -> tuple:
        return per_spatial(shapes[0], a.data_format, a.size, lambda n, f: n * f)

    def flops(self, node, a: UpsampleAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        if a.interpolation == "nearest":
            return 0
        return 7 * sizes.out if a.interpolation == "bilinear" else None

    def latency_class(self, a: UpsampleAttrs) -> str:
        """Nearest: movement; interpolation: element-wise arithmetic."""
        if a.interpolation == "nearest":
            return LatencyClass.MOVEMENT
        return LatencyClass.ELEMENTWISE

    def keras_layers(self, node, a: UpsampleAttrs, common: dict) -> list:
        rank = kc.spatial_rank(node)
        size = kc.ints(a.size, rank)
        cls = kc.keras_layer(f"UpSampling{rank}D")
        if rank == 2:
            return [cls(size=size, data_format=node.data_format,
                        interpolation=a.interpolation, **common)]
        return [cls(size=size if rank == 3 else size[0], **common)]
