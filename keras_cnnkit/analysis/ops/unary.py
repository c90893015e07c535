"""``unary``: an element-wise math function that is not an activation (``keras.ops``
``Sqrt``, ``Abs``, ``Square``..., Keras 2 ``tf.math.*`` layers; ``clip`` with bounds
other than ReLU's).

FLOPs per element (one FLOP per elementary operation or transcendental, as the
activation table counts): ``abs``, ``negative``, ``square``, ``sqrt``, ``exp``,
``log``, ``reciprocal``, ``sign``, ``floor``, ``ceil``, ``round``, ``erf``, ``sin``,
``cos`` 1; ``rsqrt`` 2; ``clip`` 2 (two compares); ``autocontrast`` (``AutoContrast``: a
per-image min and max, an affine map, a clip) 6; others (``clahe``: histogram
equalisation per tile) unknown.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes, first_shape
from keras_cnnkit.analysis.ops.registry import register

UNARY = "unary"

#: FLOPs per element of each function.
FLOPS_PER_ELEMENT = {name: 1 for name in (
    "abs", "negative", "square", "sqrt", "exp", "log", "reciprocal", "sign", "floor",
    "ceil", "round", "erf", "sin", "cos")}
FLOPS_PER_ELEMENT.update(rsqrt=2, clip=2, autocontrast=6, clahe=None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class UnaryAttrs(OpAttrs):
    """``function``: the function's name (``"sqrt"``); ``low``/``high``: ``clip``'s
    bounds."""

    function: str
    low: Optional[float] = None
    high: Optional[float] = None


@register
class Unary(OpDef):
    """An element-wise function (not rebuildable: a ``keras.ops`` call, not a layer)."""

    kind = UNARY
    attrs = UnaryAttrs
    latency = LatencyClass.ELEMENTWISE
    infer_shape = first_shape
    rebuildable = False
    not_rebuildable = "an element-wise math function is a keras.ops call, not a layer"

    def flops(self, node, a: UnaryAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        per = FLOPS_PER_ELEMENT.get(a.function)
        return None if per is None else per * sizes.out
