"""``reduce``: a reduction over some axes (``keras.ops.mean``/``sum``/``max``/``min``/
``prod``; Keras 2 ``tf.math.reduce_*`` layers).

A mean or max over exactly the spatial axes is a global pooling, and the frontends map
it to ``global_pool`` instead (rules see the head).  FLOPs: 1 per input element (the
divide of a mean per output element is folded, as for global pooling); 0 MACs.
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
    """``reduction``: what is computed; ``axes``: the reduced axes (batch excluded,
    0-based, non-negative); ``keepdims``: reduced axes kept with size 1."""

    axes: Ints
    reduction: str = choice("mean", "sum", "max", "min", "prod")
    keepdims: bool = False


@register
class Reduce(OpDef):
    """A reduction over ``axes`` (no Keras layer computes one: not rebuildable)."""

    kind = REDUCE
    attrs = ReduceAttrs
    latency = LatencyClass.REDUCTION
    rebuildable = False
    not_rebuildable = "no Keras layer reduces over arbitrary axes (only global pooling)"

    def infer_shape(self, a: ReduceAttrs, shapes: list) -> tuple:
        shape = tuple(shapes[0])
        if any(not 0 <= axis < len(shape) for axis in a.axes):
            raise ShapeError(f"reduction axes {tuple(a.axes)} out of range for {shape}")
        if a.keepdims:
            return tuple(1 if i in a.axes else d for i, d in enumerate(shape))
        return tuple(d for i, d in enumerate(shape) if i not in a.axes)

    def flops(self, node, a: ReduceAttrs, sizes: Sizes, macs: int) -> int:
        return sizes.ins[0]
