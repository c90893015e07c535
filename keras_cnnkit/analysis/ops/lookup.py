"""``lookup``: table look-ups and encodings of categorical data (``IntegerLookup``,
``StringLookup``, ``Hashing``, ``HashedCrossing``, ``Discretization``,
``CategoryEncoding``, ``TextVectorization``).

No parameters (their vocabularies and bin boundaries are not weights); FLOPs: one per
input element (a hash, a search or a look-up), plus one per output element for the
count and TF-IDF encodings.  Output shape by ``mode``: ``"map"`` keeps the input's;
``"one_hot"`` adds an axis of ``size`` (replacing a last axis of 1);
``"multi_hot"``/``"count"``/``"tf_idf"`` replace the last axis by ``size``;
``"sequence"`` gives ``(size,)`` (``TextVectorization``'s token ids; ``None``: any
length).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ops.attrs import OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.registry import register

LOOKUP = "lookup"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LookupAttrs(OpAttrs):
    """``mode`` (see the module docstring) and the encoding's ``size``."""

    mode: str = choice("map", "one_hot", "multi_hot", "count", "tf_idf", "sequence")
    size: Optional[int] = None


@register
class Lookup(OpDef):
    """A look-up or encoding (rebuilt as the Keras layer it came from)."""

    kind = LOOKUP
    attrs = LookupAttrs
    latency = LatencyClass.MOVEMENT
    rebuildable = False
    not_rebuildable = "a look-up table is rebuilt as the Keras layer that holds it"

    def infer_shape(self, a: LookupAttrs, shapes: list) -> tuple:
        shape = tuple(shapes[0])
        if a.mode == "map":
            return shape
        if a.mode == "sequence":
            return (a.size,)
        if a.mode == "one_hot":
            return (*shape[:-1], a.size) if shape and shape[-1] == 1 else (*shape, a.size)
        return (*shape[:-1], a.size)

    def flops(self, node, a: LookupAttrs, sizes: Sizes, macs: int) -> int:
        return sum(sizes.ins) + (sizes.out if a.mode in ("count", "tf_idf") else 0)
