"""``identity``: no computation (``Identity``, ``ActivityRegularization``...).

A view: 0 FLOPs, no bytes moved.
"""
from __future__ import annotations

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, first_shape, no_flops
from keras_cnnkit.analysis.ops.registry import register


@register
class Identity(OpDef):
    """An identity → ``keras.layers.Identity``."""

    kind = OpKind.IDENTITY
    traits = frozenset({Trait.TRANSPARENT, Trait.VIEW})
    latency = LatencyClass.NONE
    infer_shape = first_shape
    flops = no_flops

    def keras_layers(self, node, a: OpAttrs, common: dict) -> list:
        return [kc.keras_layer("Identity")(**common)]
