"""``state``: weights a layer holds that take no part in its inference computation
(``SpectralNormalization``'s power-iteration vector, ``ReversibleEmbedding``'s untied
output table).

Keras counts them in ``count_params()``, so the IR does: a ``state`` node passes its
input through unchanged (a view: 0 FLOPs, no bytes moved) and carries ``size``
parameters.
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, first_shape, no_flops
from keras_cnnkit.analysis.ops.registry import register

STATE = "state"


@dataclasses.dataclass(frozen=True, kw_only=True)
class StateAttrs(OpAttrs):
    """``size``: the number of weights; ``what``: what they are."""

    size: int
    what: str = ""


@register
class State(OpDef):
    """Weights held beside the computation (rebuilt with the layer that holds them)."""

    kind = STATE
    attrs = StateAttrs
    traits = frozenset({Trait.TRANSPARENT, Trait.VIEW})
    latency = LatencyClass.NONE
    infer_shape = first_shape
    flops = no_flops
    rebuildable = False
    not_rebuildable = "held by the layer it belongs to (rebuild that layer)"

    def weights(self, node, a: StateAttrs) -> int:
        return a.size
