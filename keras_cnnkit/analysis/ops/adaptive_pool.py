"""``adaptive_pool``: max or average pooling to a fixed output size
(``AdaptiveAveragePooling``/``AdaptiveMaxPooling`` 1D/2D/3D).

Output window ``i`` of an axis of length ``n`` pooled to ``o`` covers
``[⌊i·n/o⌋, ⌈(i+1)·n/o⌉)`` (PyTorch's and Keras' rule).  FLOPs: the sum of the windows'
sizes, i.e. one per input element read, per window (windows overlap when ``o`` does not
divide ``n``), times the channels.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import Ints, OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.geometry import join, prod, split
from keras_cnnkit.analysis.ops.registry import register

ADAPTIVE_POOL = "adaptive_pool"


def window_total(n: int, o: int) -> int:
    """The summed lengths of the ``o`` adaptive windows over an axis of length ``n``."""
    return sum(-(-(i + 1) * n // o) - (i * n) // o for i in range(o))


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaptivePoolAttrs(OpAttrs):
    """``output_size``: per spatial axis; ``pool_type``: ``"avg"`` or ``"max"``."""

    output_size: Ints
    pool_type: str = choice("avg", "max")


@register
class AdaptivePool(OpDef):
    """An adaptive pooling → ``keras.layers.Adaptive{Average,Max}Pooling{rank}D``."""

    kind = ADAPTIVE_POOL
    attrs = AdaptivePoolAttrs
    latency = LatencyClass.REDUCTION

    def infer_shape(self, a: AdaptivePoolAttrs, shapes: list) -> tuple:
        spatial, channels = split(shapes[0], a.data_format)
        if len(spatial) != len(a.output_size):
            raise ShapeError(f"adaptive pooling to {tuple(a.output_size)} of {shapes[0]}")
        return join(tuple(a.output_size), channels, a.data_format)

    def flops(self, node, a: AdaptivePoolAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        spatial, channels = split(node.input_shapes[0], a.data_format)
        lengths = [None if n is None else window_total(n, o)
                   for n, o in zip(spatial, a.output_size)]
        return prod((*lengths, channels))

    def keras_layers(self, node, a: AdaptivePoolAttrs, common: dict) -> list:
        kind = "Average" if a.pool_type == "avg" else "Max"
        cls = kc.keras_layer(f"Adaptive{kind}Pooling{len(a.output_size)}D")
        return [cls(tuple(int(o) for o in a.output_size), data_format=node.data_format,
                    **common)]
