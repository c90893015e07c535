"""``depthwise_conv``: one filter group per input channel (``DepthwiseConv1D/2D``, the
first half of ``SeparableConv``; ONNX ``Conv`` with ``group == C_in > 1``).

``groups = in_channels``, ``filters = in_channels · depth_multiplier``.  Formulas are the
convolution's (:mod:`~keras_cnnkit.analysis.ops.conv_family`) with those groups.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.conv_family import ConvAttrs, ConvFamily, keras_window
from keras_cnnkit.analysis.ops.core import LatencyClass, Trait
from keras_cnnkit.analysis.ops.errors import UnsupportedNodeError
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class DepthwiseAttrs(ConvAttrs):
    """A convolution's attributes plus ``depth_multiplier`` (filters per input channel;
    ``filters // in_channels`` when not given)."""

    depth_multiplier: Optional[int] = None


@register
class DepthwiseConv(ConvFamily):
    """A depthwise convolution → ``keras.layers.DepthwiseConv{1,2}D``."""

    kind = OpKind.DEPTHWISE_CONV
    attrs = DepthwiseAttrs
    traits = frozenset({Trait.WEIGHTED})
    latency = LatencyClass.DEPTHWISE

    def latency_class(self, a: DepthwiseAttrs) -> str:
        return self.latency

    def keras_layers(self, node, a: DepthwiseAttrs, common: dict) -> list:
        rank = len(a.kernel)
        if rank not in (1, 2):
            raise UnsupportedNodeError(node.name, f"no Keras depthwise conv of rank {rank}")
        pre, kwargs = keras_window(node, a, common)
        multiplier = a.depth_multiplier or max(a.filters // a.in_channels, 1)
        cls = kc.keras_layer(f"DepthwiseConv{rank}D")
        return pre + [cls(depth_multiplier=int(multiplier), **kwargs)]
