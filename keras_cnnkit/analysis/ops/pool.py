"""``pool``: max or average pooling over windows (``MaxPooling``/``AveragePooling``
1D/2D/3D; ONNX ``MaxPool``, ``AveragePool``).

Length per spatial axis: ``"valid"``: ``⌊(n − k)/s⌋ + 1``; ``"same"``: ``⌈n/s⌉``; explicit
pads and ``ceil_mode`` as in :func:`~keras_cnnkit.analysis.ops.geometry.pool_length`; with
``dilation`` (ONNX ``MaxPool``) the window spans ``d(k − 1) + 1``.
FLOPs ``∏pool_size`` per output element.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import Ints, OpAttrs, Padding, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import UnsupportedNodeError
from keras_cnnkit.analysis.ops.geometry import axis_padding, per_spatial, pool_length, prod
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class PoolAttrs(OpAttrs):
    """Attributes of a pooling.

    Attributes:
        pool_size: window per spatial axis.
        pool_type: ``"max"`` or ``"avg"``.
        strides: per spatial axis (the window when not given, as Keras does).
        padding: ``"valid"``/``"same"``, or explicit pads.
        rank: number of spatial axes.
        ceil_mode: ONNX's rounding up of the output length.
        dilation: ONNX ``MaxPool``'s dilations (``None``: 1; Keras' pooling has none).
    """

    pool_size: Ints
    pool_type: str = choice("max", "avg")
    strides: Optional[Ints] = None
    padding: Padding = "valid"
    rank: Optional[int] = None
    ceil_mode: bool = False
    dilation: Optional[Ints] = None

    def __post_init__(self):
        if self.strides is None:
            object.__setattr__(self, "strides", tuple(self.pool_size))


@register
class Pool(OpDef):
    """A pooling → ``keras.layers.{Max,Average}Pooling{rank}D``."""

    kind = OpKind.POOL
    attrs = PoolAttrs
    latency = LatencyClass.REDUCTION

    def infer_shape(self, a: PoolAttrs, shapes: list) -> tuple:
        dilation = a.dilation or (1,) * len(a.pool_size)
        windows = [(d * (size - 1) + 1, stride, axis_padding(a.padding, i))
                   for i, (size, stride, d) in enumerate(zip(a.pool_size, a.strides, dilation))]
        return per_spatial(shapes[0], a.data_format, windows,
                           lambda n, w: pool_length(n, w[0], w[1], w[2], a.ceil_mode))

    def flops(self, node, a: PoolAttrs, sizes: Sizes, macs: int) -> int:
        return prod(a.pool_size) * sizes.out

    def keras_layers(self, node, a: PoolAttrs, common: dict) -> list:
        if a.dilation and any(d != 1 for d in a.dilation):
            raise UnsupportedNodeError(node.name, "dilated pooling (Keras' pooling layers "
                                       "have no dilation)")
        rank = len(a.pool_size)
        size = kc.ints(a.pool_size, rank, default=2)
        strides = kc.ints(a.strides, rank)
        pre, padding = kc.window_padding(node, a.padding, size, strides, (1,) * rank, common)
        kind = "Max" if a.pool_type == "max" else "Average"
        cls = kc.keras_layer(f"{kind}Pooling{rank}D")
        return pre + [cls(pool_size=size, strides=strides, padding=padding,
                          data_format=node.data_format, **common)]
