"""``attention``: attention layers (``MultiHeadAttention``, ``GroupQueryAttention``,
``Attention``, ``AdditiveAttention``).

Inputs ``query (Tq, dq)``, ``value (Tv, dv)`` and, if given, ``key (Tv, dk)`` (else the
value).  Multi-head (``H`` heads of ``kd``/``vd``; grouped-query: ``Hkv`` key/value
heads of ``kd = vd``), output ``(Tq, do)``:

* parameters: ``dq·H·kd + dk·Hkv·kd + dv·Hkv·vd + H·vd·do`` (+ their biases
  ``H·kd + Hkv·kd + Hkv·vd + do``), with ``Hkv = H`` for multi-head;
* MACs: the four projections ``Tq·dq·H·kd + Tv·dk·Hkv·kd + Tv·dv·Hkv·vd + Tq·H·vd·do``,
  the scores ``H·Tq·Tv·kd`` and the weighted sum ``H·Tq·Tv·vd``.

Dot-product (``Attention``) and additive (``AdditiveAttention``) attention project
nothing: MACs ``Tq·Tv·d`` for dot-product scores and ``Tq·Tv·dv`` for the sum; additive
scores (and dot-product attention's ``score_mode="concat"``) are ``3·Tq·Tv·d`` FLOPs
(add, tanh, scale-and-sum) instead.  Their
weights: a learned scale (``use_scale``: 1, additive: ``d``), and 1 more for dot-product
attention's ``score_mode="concat"``.  FLOPs ``2 × MACs`` + biases + the softmax (5 per
score).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ops.attrs import OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.ops.registry import register

ATTENTION = "attention"


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttentionAttrs(OpAttrs):
    """Attributes of an attention layer.

    Attributes:
        variant: ``"multi_head"``, ``"grouped_query"``, ``"dot"`` or ``"additive"``.
        num_heads, key_dim, value_dim: ``H``, ``kd``, ``vd`` (multi-head kinds).
        kv_heads: ``Hkv`` (grouped-query; multi-head: ``H``).
        output_dim: ``do`` (``None``: the query's width).
        use_bias: the projections' biases.
        use_scale, concat_score: the dot/additive kinds' learned scale and concat score.
    """

    variant: str = choice("multi_head", "grouped_query", "dot", "additive")
    num_heads: int = 1
    kv_heads: Optional[int] = None
    key_dim: Optional[int] = None
    value_dim: Optional[int] = None
    output_dim: Optional[int] = None
    use_bias: bool = True
    use_scale: bool = False
    concat_score: bool = False


def _dims(node_shapes: list) -> tuple:
    """``(Tq, dq, Tv, dv, dk)`` from the query, value and (optional) key shapes."""
    if len(node_shapes) < 2 or any(len(s) < 2 for s in node_shapes[:3]):
        raise ShapeError("attention reads (time, features) query, value and key")
    query, value = node_shapes[0], node_shapes[1]
    key = node_shapes[2] if len(node_shapes) > 2 else value
    return prod(query[:-1]), query[-1], prod(value[:-1]), value[-1], key[-1]


def _heads(a: AttentionAttrs) -> tuple:
    heads = a.num_heads
    kv_heads = a.kv_heads if a.variant == "grouped_query" and a.kv_heads else heads
    key_dim = a.key_dim or 0
    return heads, kv_heads, key_dim, a.value_dim or key_dim


@register
class Attention(OpDef):
    """An attention layer (rebuilt as the Keras layer it came from: not from the IR)."""

    kind = ATTENTION
    attrs = AttentionAttrs
    latency = LatencyClass.DENSE
    rebuildable = False
    not_rebuildable = "an attention layer is rebuilt as the Keras layer it came from"

    def infer_shape(self, a: AttentionAttrs, shapes: list) -> tuple:
        query, value = tuple(shapes[0]), tuple(shapes[1])
        if a.variant in ("dot", "additive"):
            return (*query[:-1], value[-1])
        return (*query[:-1], a.output_dim or query[-1])

    def weights(self, node, a: AttentionAttrs) -> Optional[int]:
        _, dq, _, dv, dk = _dims(node.input_shapes)
        if a.variant == "dot":
            return int(a.use_scale) + int(a.concat_score)
        if a.variant == "additive":
            return dq if a.use_scale else 0
        if None in (dq, dv, dk):
            return None
        heads, kv_heads, kd, vd = _heads(a)
        out = a.output_dim or dq
        bias = (heads * kd + kv_heads * kd + kv_heads * vd + out) if a.use_bias else 0
        return dq * heads * kd + dk * kv_heads * kd + dv * kv_heads * vd + heads * vd * out \
            + bias

    def macs(self, node, a: AttentionAttrs, sizes: Sizes) -> int:
        tq, dq, tv, dv, dk = _dims(node.input_shapes)
        if None in (tq, dq, tv, dv, dk):
            return 0
        if a.variant == "dot" and not a.concat_score:
            return tq * tv * dq + tq * tv * dv
        if a.variant in ("dot", "additive"):
            return tq * tv * dv
        heads, kv_heads, kd, vd = _heads(a)
        out = a.output_dim or dq
        return (tq * dq * heads * kd + tv * dk * kv_heads * kd + tv * dv * kv_heads * vd
                + tq * heads * vd * out + heads * tq * tv * (kd + vd))

    def flops(self, node, a: AttentionAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        tq, dq, tv, _, _ = _dims(node.input_shapes)
        if None in (tq, tv, dq):
            return None
        heads = 1 if a.variant in ("dot", "additive") else a.num_heads
        scores = 5 * heads * tq * tv
        extra = 3 * tq * tv * dq if a.variant == "additive" or a.concat_score else 0
        return 2 * macs + scores + extra + (sizes.out if a.use_bias else 0)
