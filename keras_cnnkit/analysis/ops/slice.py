"""``slice``: indices ``start:stop`` of one axis (``keras_cnnkit.layers.ChannelSlice``;
ONNX ``Split`` parts and ``Slice`` of the channels).

Python slice semantics (negative indices count from the end; ``stop=None``: to the end).
0 FLOPs (data movement).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, no_flops
from keras_cnnkit.analysis.ops.errors import UnsupportedNodeError
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class SliceAttrs(OpAttrs):
    """``axis`` (batch excluded), ``start`` and ``stop`` (``None``: the end)."""

    axis: int
    start: Optional[int] = 0
    stop: Optional[int] = None


@register
class Slice(OpDef):
    """A slice → ``keras_cnnkit.layers.ChannelSlice`` (channel axis only)."""

    kind = OpKind.SLICE
    attrs = SliceAttrs
    latency = LatencyClass.MOVEMENT
    flops = no_flops

    def infer_shape(self, a: SliceAttrs, shapes: list) -> tuple:
        out = list(shapes[0])
        n = out[a.axis]
        start, stop = a.start, a.stop
        if n is not None:
            start, stop, _ = slice(start, stop).indices(n)
            out[a.axis] = max(stop - start, 0)
        elif start is not None and stop is not None and start >= 0 and stop >= 0:
            out[a.axis] = max(stop - start, 0)
        return tuple(out)

    def keras_layers(self, node, a: SliceAttrs, common: dict) -> list:
        shape = node.input_shapes[0] if node.input_shapes else None
        if not shape:
            raise UnsupportedNodeError(node.name, "slice of a tensor of unknown rank")
        channel = 0 if node.data_format == "channels_first" else len(shape) - 1
        if a.axis % len(shape) != channel:
            raise UnsupportedNodeError(node.name, "ChannelSlice slices the channel axis only, "
                                       f"not axis {a.axis} of {tuple(shape)}")
        start, stop = a.start or 0, a.stop
        if shape[channel] is not None:
            start, stop, _ = slice(a.start, a.stop).indices(shape[channel])
        elif start < 0 or (stop is not None and stop < 0):
            raise UnsupportedNodeError(node.name, "negative slice bounds of an unknown size")
        cls = kc.cnnkit_layer(node, "ChannelSlice")
        return [cls(start=int(start), stop=None if stop is None else int(stop),
                    data_format=node.data_format, **common)]
