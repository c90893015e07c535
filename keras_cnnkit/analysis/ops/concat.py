"""``concat``: concatenation along ``axis`` (``Concatenate``; ONNX ``Concat``).

Output: the inputs' shape with the ``axis`` sizes summed.  0 FLOPs (data movement).
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, no_flops
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConcatAttrs(OpAttrs):
    """``axis``: the joined axis (batch excluded)."""

    axis: int


@register
class Concat(OpDef):
    """A concatenation → ``keras.layers.Concatenate``."""

    kind = OpKind.CONCAT
    attrs = ConcatAttrs
    traits = frozenset({Trait.MERGE})
    latency = LatencyClass.MOVEMENT
    flops = no_flops

    def infer_shape(self, a: ConcatAttrs, shapes: list) -> tuple:
        out = list(shapes[0])
        sizes = [s[a.axis] for s in shapes]
        out[a.axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def keras_layers(self, node, a: ConcatAttrs, common: dict) -> list:
        return [kc.keras_layer("Concatenate")(axis=kc.keras_axis(node, a.axis), **common)]
