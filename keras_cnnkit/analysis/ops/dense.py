"""``dense``: a fully connected layer over the last axis (``Dense``; ONNX ``Gemm``, or
``MatMul`` with constant weights).

Parameters ``in · units`` (+ ``units``); MACs ``in · units`` per row; FLOPs ``2 × MACs``
+ 1 per output element for the bias + the fused activation's count.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes, Trait
from keras_cnnkit.analysis.ops.formulas import weighted_flops
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class DenseAttrs(OpAttrs):
    """``in_features`` → ``units``, with or without a bias, and a fused ``activation``."""

    in_features: int
    units: int
    use_bias: bool
    activation: Optional[str] = None


@register
class Dense(OpDef):
    """A dense layer → ``keras.layers.Dense``."""

    kind = OpKind.DENSE
    attrs = DenseAttrs
    traits = frozenset({Trait.WEIGHTED})
    latency = LatencyClass.DENSE

    def infer_shape(self, a: DenseAttrs, shapes: list) -> tuple:
        return (*shapes[0][:-1], a.units)

    def weights(self, node, a: DenseAttrs) -> int:
        return a.in_features * a.units + (a.units if a.use_bias else 0)

    def macs(self, node, a: DenseAttrs, sizes: Sizes) -> int:
        return sizes.out * a.in_features

    def flops(self, node, a: DenseAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        return weighted_flops(a.use_bias, a.activation, sizes, macs)

    def keras_layers(self, node, a: DenseAttrs, common: dict) -> list:
        return [kc.keras_layer("Dense")(int(a.units), use_bias=bool(a.use_bias),
                                        activation=kc.activation_arg(a.activation),
                                        **common)]
