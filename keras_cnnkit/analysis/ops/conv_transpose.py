"""``conv_transpose``: a transposed convolution (``Conv{1,2,3}DTranspose``, ONNX
``ConvTranspose``).

Shape per spatial axis (Keras' formula): ``"same"``: ``o = n·s``; ``"valid"``:
``o = n·s + max(k_d − s, 0)``, ``k_d = d(k−1) + 1``; with ``output_padding`` ``q``:
``o = (n−1)s + k_d − 2·pad + q``.  Parameters as a convolution; MACs
``H_i·W_i·C_in · ∏k · C_out/groups`` (over the input positions).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import Ints
from keras_cnnkit.analysis.ops.conv_family import ConvAttrs, ConvFamily
from keras_cnnkit.analysis.ops.core import Sizes, Trait
from keras_cnnkit.analysis.ops.errors import UnsupportedNodeError
from keras_cnnkit.analysis.ops.geometry import axis_padding, deconv_length, join, prod, split
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConvTransposeAttrs(ConvAttrs):
    """A convolution's attributes plus ``output_padding`` (per spatial axis, or ``None``)."""

    output_padding: Optional[Ints] = None


@register
class ConvTranspose(ConvFamily):
    """A transposed convolution → ``keras.layers.Conv{rank}DTranspose``."""

    kind = OpKind.CONV_TRANSPOSE
    attrs = ConvTransposeAttrs
    traits = frozenset({Trait.WEIGHTED})

    def infer_shape(self, a: ConvTransposeAttrs, shapes: list) -> tuple:
        spatial, _ = split(shapes[0], a.data_format)
        out_pad = a.output_padding or (None,) * len(spatial)
        out = tuple(deconv_length(n, k, s, d, axis_padding(a.padding, i), q)
                    for i, (n, k, s, d, q) in enumerate(
                        zip(spatial, a.kernel, a.strides, a.dilation, out_pad)))
        return join(out, a.filters, a.data_format)

    def macs(self, node, a: ConvTransposeAttrs, sizes: Sizes) -> int:
        return sizes.ins[0] * prod(a.kernel) * (a.filters // a.groups)

    def keras_layers(self, node, a: ConvTransposeAttrs, common: dict) -> list:
        if not isinstance(a.padding, str):
            raise UnsupportedNodeError(node.name, "transposed conv with explicit pads")
        rank = len(a.kernel)
        cls = kc.keras_layer(f"Conv{rank}DTranspose")
        return [cls(filters=int(a.filters), kernel_size=kc.ints(a.kernel, rank),
                    strides=kc.ints(a.strides, rank), padding=a.padding,
                    dilation_rate=kc.ints(a.dilation, rank), use_bias=bool(a.use_bias),
                    activation=kc.activation_arg(a.activation),
                    data_format=node.data_format, **common)]
