"""``dense``: a fully connected layer over the last axis (``Dense``; ONNX ``Gemm``, or
``MatMul`` with constant weights), or over another axis (``axis``: an ONNX ``MatMul``
over the channels of a tensor whose logical layout is channels-first, as PyTorch's
ConvNeXt writes its pointwise convs: ``permute → Linear → permute``).

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
from keras_cnnkit.analysis.ops.errors import ShapeError, UnsupportedNodeError
from keras_cnnkit.analysis.ops.formulas import weighted_flops
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class DenseAttrs(OpAttrs):
    """``in_features`` → ``units``, with or without a bias, and a fused ``activation``;
    ``axis``: the (logical, batch-excluded) axis it maps, ``None`` for the last."""

    in_features: int
    units: int
    use_bias: bool
    activation: Optional[str] = None
    axis: Optional[int] = None


@register
class Dense(OpDef):
    """A dense layer → ``keras.layers.Dense``."""

    kind = OpKind.DENSE
    attrs = DenseAttrs
    traits = frozenset({Trait.WEIGHTED})
    latency = LatencyClass.DENSE

    def infer_shape(self, a: DenseAttrs, shapes: list) -> tuple:
        if a.axis is None:
            return (*shapes[0][:-1], a.units)
        if not -len(shapes[0]) <= a.axis < len(shapes[0]):
            raise ShapeError(f"axis {a.axis} of an input of shape {shapes[0]}")
        out = list(shapes[0])
        out[a.axis] = a.units
        return tuple(out)

    def weights(self, node, a: DenseAttrs) -> int:
        return a.in_features * a.units + (a.units if a.use_bias else 0)

    def macs(self, node, a: DenseAttrs, sizes: Sizes) -> int:
        return sizes.out * a.in_features

    def flops(self, node, a: DenseAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        return weighted_flops(a.use_bias, a.activation, sizes, macs)

    def keras_layers(self, node, a: DenseAttrs, common: dict) -> list:
        rank = len(node.input_shapes[0]) if node.input_shapes and node.input_shapes[0] else 1
        if a.axis is not None and a.axis % rank != rank - 1:
            raise UnsupportedNodeError(node.name, "a dense layer over a non-last axis (Keras' "
                                       "Dense maps the last one)")
        return [kc.keras_layer("Dense")(int(a.units), use_bias=bool(a.use_bias),
                                        activation=kc.activation_arg(a.activation),
                                        **common)]
