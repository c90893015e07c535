"""``pad``: zero padding of the spatial axes (``ZeroPadding1D/2D/3D``; ONNX ``Pad``).

0 FLOPs (data movement).
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, no_flops
from keras_cnnkit.analysis.ops.errors import UnsupportedNodeError
from keras_cnnkit.analysis.ops.geometry import per_spatial
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class PadAttrs(OpAttrs):
    """``padding``: ``(begin, end)`` per spatial axis; ``mode``: the pad mode
    (``"constant"``, ``"reflect"``, ``"symmetric"``, ``"edge"``); ``value``: the constant
    (``keras.ops.pad``'s ``constant_values``; ``-inf`` before a max pooling)."""

    padding: tuple
    mode: str = "constant"
    value: float = 0.0


@register
class Pad(OpDef):
    """A padding → ``keras.layers.ZeroPadding{rank}D``."""

    kind = OpKind.PAD
    attrs = PadAttrs
    latency = LatencyClass.MOVEMENT
    flops = no_flops

    def infer_shape(self, a: PadAttrs, shapes: list) -> tuple:
        return per_spatial(shapes[0], a.data_format, a.padding,
                           lambda n, pads: n + pads[0] + pads[1])

    def keras_layers(self, node, a: PadAttrs, common: dict) -> list:
        if a.mode != "constant" or a.value != 0:
            raise UnsupportedNodeError(node.name, f"ZeroPadding pads with zeros, not "
                                       f"{a.mode} padding with value {a.value}")
        return kc.spatial_layer(node, "ZeroPadding", "padding", a.padding, common)
