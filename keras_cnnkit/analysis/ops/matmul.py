"""``matmul``: a matrix product of two tensors (``keras.ops.matmul``, Keras 2
``tf.linalg.matmul`` layers): ``(…, M, K) · (…, K, N) → (…, M, N)``, leading axes
broadcast (numpy rules; a rank-1 operand is a vector).

MACs ``∏(leading axes) · M · K · N`` per sample; FLOPs ``2 × MACs``; no parameters (both
operands are tensors of the graph).
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.geometry import broadcast, prod
from keras_cnnkit.analysis.ops.registry import register

MATMUL = "matmul"


@dataclasses.dataclass(frozen=True, kw_only=True)
class MatmulAttrs(OpAttrs):
    """``transpose_a``/``transpose_b``: the last two axes of an operand swapped first."""

    transpose_a: bool = False
    transpose_b: bool = False


def _operands(a: MatmulAttrs, shapes: list) -> tuple:
    """``(leading axes, M, K, N)`` of the product (``M``/``N`` ``None`` for vectors)."""
    left, right = (list(s) for s in shapes[:2])
    if not left or not right:
        raise ShapeError("matmul of a scalar")
    if a.transpose_a and len(left) > 1:
        left[-1], left[-2] = left[-2], left[-1]
    if a.transpose_b and len(right) > 1:
        right[-1], right[-2] = right[-2], right[-1]
    rows = left[-2] if len(left) > 1 else 1
    cols = right[-1] if len(right) > 1 else 1
    inner, other = left[-1], right[-2] if len(right) > 1 else right[-1]
    if inner is not None and other is not None and inner != other:
        raise ShapeError(f"matmul of {tuple(shapes[0])} and {tuple(shapes[1])}: inner "
                         f"sizes {inner} and {other} differ")
    lead = broadcast([left[:-2], right[:-2]]) if len(left) > 2 or len(right) > 2 else ()
    return tuple(lead), rows, inner if inner is not None else other, cols


@register
class Matmul(OpDef):
    """A matrix product (not rebuildable: codegen makes layers, not ``keras.ops`` calls)."""

    kind = MATMUL
    attrs = MatmulAttrs
    latency = LatencyClass.DENSE
    rebuildable = False
    not_rebuildable = "a matrix product of two graph tensors is a keras.ops call, not a layer"

    def infer_shape(self, a: MatmulAttrs, shapes: list) -> tuple:
        lead, rows, _, cols = _operands(a, shapes)
        out = list(lead)
        if len(shapes[0]) > 1:
            out.append(rows)
        if len(shapes[1]) > 1:
            out.append(cols)
        return tuple(out)

    def macs(self, node, a: MatmulAttrs, sizes: Sizes) -> int:
        lead, rows, inner, cols = _operands(a, node.input_shapes)
        count = prod((*lead, rows, inner, cols))
        return 0 if count is None else count

    def flops(self, node, a: MatmulAttrs, sizes: Sizes, macs: int) -> int:
        return 2 * macs
