"""``norm``: normalisations other than batch norm (``LayerNormalization``,
``GroupNormalization``, ``UnitNormalization``, ``RMSNormalization``; ``kind`` says which).

Parameters ``norm_size · (center + scale)``; FLOPs per element: 5 (mean, subtract,
square, variance, normalise) + 1 for ``scale`` + 1 for ``center``; unit norm 3; RMS norm
3 (square, sum, normalise) + 1 for ``scale``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes, first_shape
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class NormAttrs(OpAttrs):
    """Attributes of a layer, group or unit norm.

    Attributes:
        axes: the normalised axes (batch excluded).
        norm_size: elements of ``gamma``/``beta`` (``None`` if unknown; 0 for unit norm).
        center / scale: whether ``beta`` / ``gamma`` exist.
        kind: ``"layer"``, ``"group"``, ``"unit"`` or ``"rms"`` (``RMSNormalization``: no
            mean subtracted, a scale only).
        groups: channel groups of a group norm.
        epsilon: Keras' argument.
    """

    axes: tuple[int, ...]
    norm_size: Optional[int]
    center: bool
    scale: bool
    kind: str = choice("layer", "group", "unit", "rms")
    groups: int = 32
    epsilon: float = 1e-3


@register
class Norm(OpDef):
    """A layer / group / unit norm → the matching ``keras.layers`` class."""

    kind = OpKind.NORM
    attrs = NormAttrs
    latency = LatencyClass.NORM
    infer_shape = first_shape

    def weights(self, node, a: NormAttrs) -> Optional[int]:
        if a.norm_size is None:
            return None
        return a.norm_size * (bool(a.center) + bool(a.scale))

    def flops(self, node, a: NormAttrs, sizes: Sizes, macs: int) -> int:
        if a.kind == "unit":
            return 3 * sizes.out
        if a.kind == "rms":  # square, sum, normalise
            return (3 + bool(a.scale)) * sizes.out
        return (5 + bool(a.scale) + bool(a.center)) * sizes.out

    def keras_layers(self, node, a: NormAttrs, common: dict) -> list:
        keras_axes = [kc.keras_axis(node, axis) for axis in a.axes]
        if a.kind == "group":
            return [kc.keras_layer("GroupNormalization")(groups=int(a.groups),
                                                         axis=keras_axes[0], **common)]
        if a.kind == "unit":
            return [kc.keras_layer("UnitNormalization")(axis=keras_axes, **common)]
        if a.kind == "rms":
            return [kc.keras_layer("RMSNormalization")(
                axis=keras_axes if len(keras_axes) > 1 else keras_axes[0],
                epsilon=float(a.epsilon), **common)]
        return [kc.keras_layer("LayerNormalization")(
            axis=keras_axes if len(keras_axes) > 1 else keras_axes[0],
            epsilon=float(a.epsilon), center=bool(a.center), scale=bool(a.scale), **common)]
