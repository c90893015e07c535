"""``flatten``: all axes into one (``Flatten``; ONNX ``Flatten``/``Reshape`` to one axis).

A view: 0 FLOPs, no bytes moved.
"""
from __future__ import annotations

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, no_flops
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.ops.registry import register


@register
class Flatten(OpDef):
    """A flatten → ``keras.layers.Flatten``."""

    kind = OpKind.FLATTEN
    traits = frozenset({Trait.VIEW})
    latency = LatencyClass.NONE
    flops = no_flops

    def infer_shape(self, a: OpAttrs, shapes: list) -> tuple:
        return (prod(shapes[0]),)

    def keras_layers(self, node, a: OpAttrs, common: dict) -> list:
        return [kc.keras_layer("Flatten")(data_format=node.data_format, **common)]
