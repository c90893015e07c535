"""``batchnorm``: batch normalisation (``BatchNormalization``; ONNX ``BatchNormalization``,
and a per-channel Mul/Add the ONNX frontend folds: ``folded``).

Parameters ``C · (2 + center + scale)`` (moving mean and variance included, as Keras
counts them); FLOPs 2 per element (the inference form: a per-channel scale and shift).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, first_shape
from keras_cnnkit.analysis.ops.core import per_output_element
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchNormAttrs(OpAttrs):
    """Attributes of a batch norm.

    Attributes:
        channels: the normalised axis' size (``None`` if unknown).
        axis: that axis (batch excluded; ``None``: the channel axis).
        center / scale: whether ``beta`` / ``gamma`` exist.
        epsilon, momentum: Keras' arguments.
        folded: made by the ONNX frontend from a per-channel multiply (and add).
    """

    channels: Optional[int]
    axis: Optional[int] = None
    center: bool = True
    scale: bool = True
    epsilon: float = 1e-3
    momentum: float = 0.99
    folded: bool = False


@register
class BatchNorm(OpDef):
    """A batch norm → ``keras.layers.BatchNormalization``."""

    kind = OpKind.BATCHNORM
    attrs = BatchNormAttrs
    traits = frozenset({Trait.TRANSPARENT})
    latency = LatencyClass.NORM
    infer_shape = first_shape
    flops = per_output_element(2)

    def weights(self, node, a: BatchNormAttrs) -> Optional[int]:
        if a.channels is None:
            return None
        return a.channels * (2 + bool(a.center) + bool(a.scale))

    def keras_layers(self, node, a: BatchNormAttrs, common: dict) -> list:
        return [kc.keras_layer("BatchNormalization")(
            axis=kc.keras_axis(node, a.axis), epsilon=float(a.epsilon),
            momentum=float(a.momentum), center=bool(a.center), scale=bool(a.scale),
            **common)]
