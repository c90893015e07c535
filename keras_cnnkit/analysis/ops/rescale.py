"""``rescale``: an element-wise affine map (``Rescaling``, ``Normalization``; ONNX
arithmetic with a constant that is not a per-channel scale).

Parameters: ``params`` (``Normalization`` keeps mean, variance and a count as weights:
``2·size + 1``; the ONNX frontend counts the constant); FLOPs 2 per element (scale and
shift).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, first_shape
from keras_cnnkit.analysis.ops.core import per_output_element
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class RescaleAttrs(OpAttrs):
    """Attributes of an affine rescaling.

    Attributes:
        mode: ``"rescaling"``, ``"normalization"`` (Keras layers), ``"scalar"``,
            ``"channel"``, ``"other"`` (ONNX constant operands).
        params: weights it holds (``None``: unknown).
        axes: ``Normalization``'s axes (batch excluded).
        scale, offset: ``Rescaling``'s arguments.
    """

    mode: str = choice("rescaling", "normalization", "scalar", "channel", "other")
    params: Optional[int] = 0
    axes: Optional[tuple] = None
    scale: Any = 1.0
    offset: Any = 0.0


@register
class Rescale(OpDef):
    """An affine rescaling → ``keras.layers.Rescaling`` or ``Normalization``."""

    kind = OpKind.RESCALE
    attrs = RescaleAttrs
    latency = LatencyClass.ELEMENTWISE
    infer_shape = first_shape
    flops = per_output_element(2)

    def weights(self, node, a: RescaleAttrs) -> Optional[int]:
        return a.params

    def keras_layers(self, node, a: RescaleAttrs, common: dict) -> list:
        if a.mode == "normalization" and a.params:
            # an adaptable Normalization: its mean, variance and count are weights
            axes = [kc.keras_axis(node, axis) for axis in a.axes or (-1,)]
            return [kc.keras_layer("Normalization")(axis=axes if len(axes) > 1 else axes[0],
                                                    **common)]
        return [kc.keras_layer("Rescaling")(scale=a.scale, offset=a.offset, **common)]
