"""What the convolution kinds share: typed attributes, shape rule, weights, latency class
and Keras arguments (``conv``, ``depthwise_conv``, ``deform_conv``, ``conv_transpose``).

Parameters: ``∏k · C_in/groups · C_out`` (+ ``C_out`` bias).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Optional

from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import Ints, OpAttrs, Padding
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.formulas import weighted_flops
from keras_cnnkit.analysis.ops.geometry import axis_padding, conv_length, join, prod, split

if TYPE_CHECKING:  # pragma: no cover
    from keras_cnnkit.analysis.ir import Node


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvAttrs(OpAttrs):
    """Attributes of every convolution.

    Attributes:
        kernel: kernel size per spatial axis.
        in_channels / filters: input and output channels.
        use_bias: whether a bias is added.
        rank: number of spatial axes (``len(kernel)`` when not given).
        strides / dilation: per spatial axis (1s when not given).
        padding: ``"same"``/``"valid"``/``"causal"``, or explicit pads.
        groups: channel groups (``groups == in_channels``: depthwise).
        activation: the fused activation's canonical name (``None``: linear).
    """

    kernel: Ints
    in_channels: int
    filters: int
    use_bias: bool
    rank: Optional[int] = None
    strides: Optional[Ints] = None
    dilation: Optional[Ints] = None
    padding: Padding = "valid"
    groups: int = 1
    activation: Optional[str] = None

    def __post_init__(self):
        ones = (1,) * len(self.kernel)
        for key in ("strides", "dilation"):
            if getattr(self, key) is None:
                object.__setattr__(self, key, ones)


class ConvFamily(OpDef):
    """Base of the convolution definitions: shape rule, weights, FLOPs, latency class."""

    attrs = ConvAttrs
    latency = LatencyClass.CONV

    def infer_shape(self, a: ConvAttrs, shapes: list) -> tuple:
        """Per spatial axis: the convolution length (see ``geometry``); ``filters``
        channels."""
        spatial, channels = split(shapes[0], a.data_format)
        if channels is not None and a.in_channels != channels:
            raise ShapeError(f"expects {a.in_channels} input channels, got {channels}")
        if len(a.kernel) != len(spatial):
            raise ShapeError(f"a rank-{len(a.kernel)} kernel on an input of shape {shapes[0]}")
        out = tuple(conv_length(n, k, s, d, axis_padding(a.padding, i))
                    for i, (n, k, s, d) in enumerate(zip(spatial, a.kernel, a.strides,
                                                         a.dilation)))
        return join(out, a.filters, a.data_format)

    def weights(self, node: "Node", a: ConvAttrs) -> int:
        """``∏k · C_in/groups · C_out`` (+ ``C_out``)."""
        del node
        return conv_weights(a)

    def macs(self, node: "Node", a: ConvAttrs, sizes: Sizes) -> int:
        """``H_o·W_o·C_out · ∏k · C_in/groups``."""
        del node
        return sizes.out * prod(a.kernel) * (a.in_channels // a.groups)

    def flops(self, node: "Node", a: ConvAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        """``2 × MACs`` + bias + fused activation."""
        del node
        return weighted_flops(a.use_bias, a.activation, sizes, macs)

    def latency_class(self, a: ConvAttrs) -> str:
        """depthwise / grouped by groups, else pointwise (1 tap) or conv."""
        return conv_class(a)


def conv_weights(a: ConvAttrs) -> int:
    """``∏k · C_in/groups · C_out`` (+ ``C_out`` bias)."""
    weights = prod(a.kernel) * a.in_channels // a.groups * a.filters
    return weights + (a.filters if a.use_bias else 0)


def conv_class(a: ConvAttrs) -> str:
    """The latency class of a convolution by its groups and kernel."""
    if a.groups > 1:
        return LatencyClass.DEPTHWISE if a.groups == a.in_channels else LatencyClass.GROUPED
    return LatencyClass.POINTWISE if prod(a.kernel) == 1 else LatencyClass.CONV


def keras_window(node: "Node", a: ConvAttrs, common: dict) -> tuple:
    """``(pre_layers, kwargs)``: a ZeroPadding layer where needed, and the Keras
    arguments every convolution layer takes (kernel, strides, padding, dilation, bias,
    activation, data format)."""
    rank = len(a.kernel)
    kernel = kc.ints(a.kernel, rank)
    strides = kc.ints(a.strides, rank)
    dilation = kc.ints(a.dilation, rank)
    pre, padding = kc.window_padding(node, a.padding, kernel, strides, dilation, common)
    return pre, {"kernel_size": kernel, "strides": strides, "padding": padding,
                 "dilation_rate": dilation, "use_bias": bool(a.use_bias),
                 "activation": kc.activation_arg(a.activation),
                 "data_format": node.data_format, **common}
