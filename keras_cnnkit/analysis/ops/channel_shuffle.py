"""``channel_shuffle``: the channels permuted across ``groups`` (ShuffleNet; Zhang et al.
2018): ``keras_cnnkit.layers.ChannelShuffle``, ONNX reshape → transpose → reshape.

0 FLOPs (data movement).
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, no_flops
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.geometry import split
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChannelShuffleAttrs(OpAttrs):
    """``groups``: it must divide the channels."""

    groups: int


@register
class ChannelShuffle(OpDef):
    """A channel shuffle → ``keras_cnnkit.layers.ChannelShuffle``."""

    kind = OpKind.CHANNEL_SHUFFLE
    attrs = ChannelShuffleAttrs
    latency = LatencyClass.MOVEMENT
    flops = no_flops

    def infer_shape(self, a: ChannelShuffleAttrs, shapes: list) -> tuple:
        _, channels = split(shapes[0], a.data_format)
        if channels is not None and channels % a.groups:
            raise ShapeError(f"{channels} channels do not split into {a.groups} groups")
        return tuple(shapes[0])

    def keras_layers(self, node, a: ChannelShuffleAttrs, common: dict) -> list:
        cls = kc.cnnkit_layer(node, "ChannelShuffle")
        return [cls(groups=int(a.groups), data_format=node.data_format, **common)]
