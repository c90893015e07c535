"""``reduce``: a sum, mean, maximum, minimum or product over some axes that are not a
global pooling (ONNX ``ReduceSum``/``ReduceMean``/``ReduceMax``/``ReduceMin``/
``ReduceProd`` over, e.g., ResNeSt's radix axis: Zhang et al., "ResNeSt: Split-Attention
Networks", 2020, https://arxiv.org/abs/2004.08955).

A reduction over exactly the spatial axes is a ``global_pool``; this kind is every
other one.  Output: the input with ``axes`` dropped (or 1 with ``keepdims``).  FLOPs
1 per input element (an add or compare), plus 1 per output element for a mean (the
division); 0 MACs, no parameters.
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ops.attrs import Ints, OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.registry import register

REDUCE = "reduce"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReduceAttrs(OpAttrs):
    """``reduce_type``: what is computed; ``axes``: the reduced axes (batch excluded,
    non-negative); ``keepdims``: reduced axes stay, of length 1."""

    axes: Ints
    reduce_type: str = choice("sum", "mean", "max", "min", "prod")
    keepdims: bool = False


@register
class Reduce(OpDef):
    """A reduction over some axes (not rebuilt: Keras has no layer for it)."""

    kind = REDUCE
    attrs = ReduceAttrs
    latency = LatencyClass.REDUCTION
    rebuildable = False
    not_rebuildable = ("a reduction over arbitrary axes has no keras.layers class (only "
                       "keras.ops, which would need a Lambda layer)")

    def infer_shape(self, a: ReduceAttrs, shapes: list) -> tuple:
        shape = shapes[0]
        if not a.axes or any(not 0 <= axis < len(shape) for axis in a.axes):
            raise ShapeError(f"cannot reduce axes {a.axes} of shape {shape}")
        if a.keepdims:
            return tuple(1 if i in a.axes else d for i, d in enumerate(shape))
        return tuple(d for i, d in enumerate(shape) if i not in a.axes)

    def flops(self, node, a: ReduceAttrs, sizes: Sizes, macs: int) -> int:
        return sizes.ins[0] + (sizes.out if a.reduce_type == "mean" else 0)
