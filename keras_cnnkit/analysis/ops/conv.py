"""``conv``: a convolution (``Conv1D/2D/3D``, ONNX ``Conv``), possibly grouped.

``groups == in_channels`` with ``filters == k · in_channels`` is a depthwise convolution
written as a grouped one (ONNX exports); Keras' own depthwise layers are
``depthwise_conv``.  Parameters ``∏k · C_in/groups · C_out`` (+ ``C_out``); MACs
``H_o·W_o·C_out · ∏k · C_in/groups``; FLOPs ``2 × MACs`` + 1 per output element for the
bias + the fused activation's count.
"""
from __future__ import annotations

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.conv_family import ConvAttrs, ConvFamily, keras_window
from keras_cnnkit.analysis.ops.core import Trait
from keras_cnnkit.analysis.ops.registry import register


@register
class Conv(ConvFamily):
    """A (grouped) convolution → ``keras.layers.Conv{rank}D``."""

    kind = OpKind.CONV
    traits = frozenset({Trait.WEIGHTED})

    def keras_layers(self, node, a: ConvAttrs, common: dict) -> list:
        pre, kwargs = keras_window(node, a, common)
        cls = kc.keras_layer(f"Conv{len(a.kernel)}D")
        return pre + [cls(filters=int(a.filters), groups=int(a.groups), **kwargs)]
