"""``global_pool``: max or average over all spatial positions (``GlobalMaxPooling``/
``GlobalAveragePooling`` 1D/2D/3D; ONNX ``GlobalAveragePool``, ``ReduceMean`` over the
spatial axes...).

Output ``(C,)``, or 1 per spatial axis with ``keepdims``.  FLOPs 1 per input element.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.geometry import join, split
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class GlobalPoolAttrs(OpAttrs):
    """``pool_type`` (``"avg"``/``"max"``), ``keepdims``, and the spatial ``rank``."""

    pool_type: str = choice("avg", "max")
    keepdims: bool = False
    rank: Optional[int] = None


@register
class GlobalPool(OpDef):
    """A global pooling → ``keras.layers.Global{Max,Average}Pooling{rank}D``."""

    kind = OpKind.GLOBAL_POOL
    attrs = GlobalPoolAttrs
    latency = LatencyClass.REDUCTION

    def infer_shape(self, a: GlobalPoolAttrs, shapes: list) -> tuple:
        spatial, channels = split(shapes[0], a.data_format)
        if a.keepdims:
            return join((1,) * len(spatial), channels, a.data_format)
        return (channels,)

    def flops(self, node, a: GlobalPoolAttrs, sizes: Sizes, macs: int) -> int:
        return sizes.ins[0]

    def keras_layers(self, node, a: GlobalPoolAttrs, common: dict) -> list:
        shape = node.input_shapes[0] if node.input_shapes else ()
        rank = a.rank or (len(shape) - 1 if shape else 2)
        kind = "Max" if a.pool_type == "max" else "Average"
        cls = kc.keras_layer(f"Global{kind}Pooling{rank}D")
        return [cls(data_format=node.data_format, keepdims=bool(a.keepdims), **common)]
