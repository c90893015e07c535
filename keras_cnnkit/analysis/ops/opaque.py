"""``opaque``: an op that cannot be analysed (``Lambda``, a class nobody knows, an ONNX
op without a mapping or with computed weights).

No shape rule applies (its output shape is what the frontend observed, else ``None``),
its parameters are the frontend's observed count, and its costs are unknown: listed by
the summary, never counted as 0.  Its MACs and FLOPs are those of the known layers it
calls where the live frontend observed them (``inner_macs``, ``inner_flops``: lower
bounds), else unknown.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes, Trait
from keras_cnnkit.analysis.ops.registry import register


#: The ``reason`` of a known layer made opaque only because its input shape is unknown
#: (downstream of another opaque op): ``opaque-layer`` reports it with that op.
INPUT_SHAPE_UNKNOWN = "input shape unknown"


@dataclasses.dataclass(frozen=True, kw_only=True)
class OpaqueAttrs(OpAttrs):
    """``class_name``: the layer class or ONNX op; ``reason``: why it is opaque;
    ``output_index``: which output of a multi-output layer the node stands for (a node per
    output, all with the layer's name in ``Node.layer``); ``inner_macs`` /
    ``inner_flops``: the MACs and FLOPs of the known layers it calls, where a live
    frontend could run it (its other work stays unknown: lower bounds)."""

    class_name: str = ""
    reason: str = ""
    output_index: int = 0
    inner_macs: Optional[int] = None
    inner_flops: Optional[int] = None


@register
class Opaque(OpDef):
    """An op nobody analyses."""

    kind = OpKind.OPAQUE
    attrs = OpaqueAttrs
    traits = frozenset({Trait.OPAQUE})
    latency = LatencyClass.UNKNOWN
    rebuildable = False
    not_rebuildable = "what an opaque op computes is unknown"

    def infer_shape(self, a: OpaqueAttrs, shapes: list) -> None:
        """Unknown."""
        return None

    def weights(self, node, a: OpaqueAttrs) -> None:
        """No formula (the frontend's observed count is used)."""
        return None

    def flops(self, node, a: OpaqueAttrs, sizes: Sizes, macs: int) -> None:
        """Unknown."""
        return None
