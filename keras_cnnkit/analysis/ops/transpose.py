"""``transpose``: a permutation of the (batch-excluded) axes (``Permute``).

0 FLOPs; the data is copied (not a view).
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import Ints, OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, no_flops
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransposeAttrs(OpAttrs):
    """``perm``: output axis ``i`` is input axis ``perm[i]`` (0-based, batch excluded)."""

    perm: Ints


@register
class Transpose(OpDef):
    """A transpose → ``keras.layers.Permute``."""

    kind = OpKind.TRANSPOSE
    attrs = TransposeAttrs
    latency = LatencyClass.MOVEMENT
    flops = no_flops

    def infer_shape(self, a: TransposeAttrs, shapes: list) -> tuple:
        return tuple(shapes[0][p] for p in a.perm)

    def keras_layers(self, node, a: TransposeAttrs, common: dict) -> list:
        return [kc.keras_layer("Permute")(tuple(int(p) + 1 for p in a.perm), **common)]
