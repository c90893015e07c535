"""``activation``: an activation function as an op of its own (``Activation``, ``ReLU``,
``LeakyReLU``, ``PReLU``, ``ELU``, ``Softmax``...; ONNX ``Relu``, ``Clip``...).

The function is ``attrs["activation"]``, a canonical name of the activation table
(:mod:`~keras_cnnkit.analysis.ops.activation_table`), whose row gives its FLOPs per
element (an activation outside the table has unknown cost).  Parameters: PReLU's alpha
(``alpha_size``), else 0.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.activation_table import flops_per_element
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes, Trait, first_shape
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class ActivationAttrs(OpAttrs):
    """Attributes of an activation.

    Attributes:
        activation: canonical name (``None``: linear).
        axis: softmax's axis, as the frontend gave it.
        max_value: ReLU's clip (other than ReLU6's 6).
        negative_slope: leaky ReLU's slope.
        alpha_size: PReLU's number of alphas (``None``: unknown).
    """

    activation: Optional[str]
    axis: Any = None
    max_value: Optional[float] = None
    negative_slope: Optional[float] = None
    alpha_size: Optional[int] = 0


@register
class Activation(OpDef):
    """An activation → ``keras.layers.Activation`` (or ``ReLU``, ``LeakyReLU``,
    ``PReLU``, ``Softmax`` where an argument needs them)."""

    kind = OpKind.ACTIVATION
    attrs = ActivationAttrs
    traits = frozenset({Trait.TRANSPARENT, Trait.ACTIVATION})
    latency = LatencyClass.ELEMENTWISE
    infer_shape = first_shape

    def weights(self, node, a: ActivationAttrs) -> Optional[int]:
        return a.alpha_size

    def flops(self, node, a: ActivationAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        per = flops_per_element(a.activation)
        return None if per is None else per * sizes.out

    def keras_layers(self, node, a: ActivationAttrs, common: dict) -> list:
        act = kc.activation_arg(a.activation) or "linear"
        if act == "leaky_relu":
            slope = 0.2 if a.negative_slope is None else a.negative_slope
            return [kc.keras_layer("LeakyReLU")(negative_slope=float(slope), **common)]
        if act == "relu" and (a.max_value is not None or a.negative_slope):
            return [kc.keras_layer("ReLU")(max_value=a.max_value,
                                           negative_slope=float(a.negative_slope or 0.0),
                                           **common)]
        if act == "prelu":
            return [kc.keras_layer("PReLU")(shared_axes=_prelu_shared_axes(node, a),
                                            **common)]
        if act == "softmax" and a.axis is not None:
            return [kc.keras_layer("Softmax")(axis=a.axis, **common)]
        return [kc.keras_layer("Activation")(act, **common)]


def _prelu_shared_axes(node, a: ActivationAttrs) -> Optional[list]:
    """One alpha per channel → every other axis shared (Keras axes); else none shared."""
    shape = node.output_shape
    if a.alpha_size != node.channels() or len(shape) <= 1:
        return None
    channel = len(shape) if node.data_format == "channels_last" else 1
    return [i for i in range(1, len(shape) + 1) if i != channel]
