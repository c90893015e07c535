"""Tensor shapes along a layer chain read from source, for the concrete savings in messages.

Shapes exclude the batch axis and are channels-last (the Keras default); a layer given
another ``data_format`` makes the shape unknown.  Sizes follow Keras' arithmetic:
``valid`` windows give ⌊(n − d(k − 1) − 1)/s⌋ + 1 positions, ``same`` ones ⌈n/s⌉.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

from astroid import nodes

from lint_rules.pylint_plugin.keras_names import (
    call_argument,
    infer_constant,
    infer_dims,
    infer_int,
)
from lint_rules.pylint_plugin.layer_flow import (
    ANY_CONV,
    DEPTHWISE_CONV,
    GLOBAL_POOL,
    INPUT,
    MODEL_START,
    POOL,
    SHAPE_PRESERVING,
    TRANSPOSED_CONV,
    ZERO_PADDING,
    LayerRef,
    LayerUse,
    rank_of,
    upstream,
)

Dims = tuple[Optional[int], ...]


@dataclasses.dataclass(frozen=True)
class TensorShape:
    """A tensor's shape without the batch axis: spatial dims and channels, each maybe unknown.

    ``spatial`` is ``None`` when even the rank is unknown; a flat tensor has ``()``.
    """

    spatial: Optional[Dims]
    channels: Optional[int]

    @classmethod
    def from_dims(cls, dims: Optional[Dims]) -> "TensorShape":
        """Shape from a channels-last tuple such as ``(224, 224, 3)``."""
        if not dims:
            return UNKNOWN
        return cls(tuple(dims[:-1]), dims[-1])

    def positions(self) -> Optional[int]:
        """The number of spatial positions (product of spatial dims), if all are known."""
        if self.spatial is None or None in self.spatial:
            return None
        return math.prod(self.spatial)


UNKNOWN = TensorShape(None, None)


def shape_into(use: LayerUse) -> TensorShape:
    """The shape of the tensor the layer is applied to at its place of use."""
    declared = _declared_input_shape(use.ref)
    if declared is not None:
        return declared
    shape = UNKNOWN
    for ref in reversed(_input_chain(use)):
        shape = output_shape(ref, shape)
    return shape


def reaches_model_input(use: LayerUse) -> bool:
    """True when the layers into ``use`` are read back to the model's input (an ``Input``,
    the start of a Sequential model, or a declared ``input_shape``)."""
    if _declared_input_shape(use.ref) is not None:
        return True
    chain = _input_chain(use)
    return bool(chain) and _starts_model(chain[-1])


def _input_chain(use: LayerUse) -> list[LayerRef]:
    """The layers before ``use``, nearest first, back to the first that fixes the shape."""
    chain: list[LayerRef] = []
    for previous in upstream(use.place):
        chain.append(previous.ref)
        if _starts_model(previous.ref):
            break
    return chain


def _starts_model(ref: LayerRef) -> bool:
    """Whether ``ref`` is the model's input or declares its input shape."""
    return ref.cls in MODEL_START or _declared_input_shape(ref) is not None


def _declared_input_shape(ref: LayerRef) -> Optional[TensorShape]:
    """The shape given by an ``input_shape=`` / ``batch_input_shape=`` keyword (Keras 2)."""
    dims = infer_dims(call_argument(ref.call, "input_shape"))
    if dims is not None:
        return TensorShape.from_dims(dims)
    dims = infer_dims(call_argument(ref.call, "batch_input_shape"))
    return TensorShape.from_dims(dims[1:]) if dims else None


def output_shape(ref: LayerRef, shape: TensorShape) -> TensorShape:
    """The output shape of layer ``ref`` applied to a tensor of ``shape``."""
    declared = _declared_input_shape(ref)
    if declared is not None:
        shape = declared
    for family, rule in _SHAPE_RULES:
        if ref.cls in family:
            return rule(ref, shape)
    return UNKNOWN


def _input_shape(ref: LayerRef, _: TensorShape) -> TensorShape:
    for keyword, position in (("shape", 0), ("input_shape", None)):
        dims = infer_dims(call_argument(ref.call, keyword, position))
        if dims is not None:
            return TensorShape.from_dims(dims)
    for keyword in ("batch_shape", "batch_input_shape"):
        dims = infer_dims(call_argument(ref.call, keyword))
        if dims:
            return TensorShape.from_dims(dims[1:])
    return UNKNOWN


def _conv_shape(ref: LayerRef, shape: TensorShape) -> TensorShape:
    if not ref.channels_last():
        return UNKNOWN
    if ref.cls in DEPTHWISE_CONV:
        multiplier = infer_int(ref.argument("depth_multiplier")) or 1
        channels = shape.channels * multiplier if shape.channels is not None else None
    else:
        channels = infer_int(ref.argument("filters"))
    if ref.cls in TRANSPOSED_CONV:
        return TensorShape(None, channels)
    spatial = _window_spatial(ref, shape, ref.argument("kernel_size"), None)
    return TensorShape(spatial, channels)


def _pool_shape(ref: LayerRef, shape: TensorShape) -> TensorShape:
    if not ref.channels_last():
        return UNKNOWN
    pool = ref.argument("pool_size")
    spatial = _window_spatial(ref, shape, pool, 2)
    return TensorShape(spatial, shape.channels)


def _global_pool_shape(ref: LayerRef, shape: TensorShape) -> TensorShape:
    if not ref.channels_last():
        return UNKNOWN
    keepdims = infer_constant(ref.argument("keepdims"))
    spatial = (1,) * rank_of(ref.cls) if keepdims == (True, True) else ()
    return TensorShape(spatial, shape.channels)


def _zero_padding_shape(ref: LayerRef, shape: TensorShape) -> TensorShape:
    if not ref.channels_last():
        return UNKNOWN
    rank = rank_of(ref.cls)
    expr = ref.argument("padding")
    pads = per_axis(infer_dims(expr), rank) if expr is not None else (1,) * rank
    spatial = shape.spatial
    if spatial is None or pads is None or len(spatial) != rank:
        return TensorShape(None, shape.channels)
    return TensorShape(tuple(None if n is None else n + 2 * p for n, p in zip(spatial, pads)),
                       shape.channels)


def _flatten_shape(_: LayerRef, shape: TensorShape) -> TensorShape:
    positions = shape.positions()
    if positions is None or shape.channels is None:
        return TensorShape((), None)
    return TensorShape((), positions * shape.channels)


def _dense_shape(ref: LayerRef, shape: TensorShape) -> TensorShape:
    return TensorShape(shape.spatial, infer_int(ref.argument("units")))


def _embedding_shape(ref: LayerRef, shape: TensorShape) -> TensorShape:
    spatial = (shape.channels,) if shape.spatial == () else None
    return TensorShape(spatial, infer_int(ref.argument("output_dim")))


def _same_shape(_: LayerRef, shape: TensorShape) -> TensorShape:
    return shape


_SHAPE_RULES: tuple[tuple[frozenset, Callable[[LayerRef, TensorShape], TensorShape]], ...] = (
    (INPUT, _input_shape),
    (ANY_CONV, _conv_shape),
    (POOL, _pool_shape),
    (GLOBAL_POOL, _global_pool_shape),
    (ZERO_PADDING, _zero_padding_shape),
    (frozenset({"Flatten"}), _flatten_shape),
    (frozenset({"Dense"}), _dense_shape),
    (frozenset({"Embedding"}), _embedding_shape),
    (SHAPE_PRESERVING, _same_shape),
)


def per_axis(dims: Optional[Dims], rank: int) -> Optional[tuple[int, ...]]:
    """An int or per-axis tuple of ints expanded to ``rank`` ints, else ``None``."""
    if dims is None or None in dims:
        return None
    if len(dims) == 1:
        return dims * rank
    return dims if len(dims) == rank else None


def _window_spatial(ref: LayerRef, shape: TensorShape, window: Optional[nodes.NodeNG],
                    default_window: Optional[int]) -> Optional[Dims]:
    """Spatial output dims of a sliding window (conv or pooling), Keras' size arithmetic."""
    rank = rank_of(ref.cls)
    spatial = shape.spatial
    if spatial is None:
        return (None,) * rank
    if len(spatial) != rank:
        return None
    if window is None:
        sizes = (default_window,) * rank if default_window else None
    else:
        sizes = per_axis(infer_dims(window), rank)
    strides_expr = ref.argument("strides")
    if strides_expr is None or infer_constant(strides_expr) == (True, None):
        strides = sizes if default_window else (1,) * rank
    else:
        strides = per_axis(infer_dims(strides_expr), rank)
    dilation_expr = ref.argument("dilation_rate")
    dilation = (1,) * rank if dilation_expr is None else per_axis(infer_dims(dilation_expr), rank)
    padding_expr = ref.argument("padding")
    known, padding = (True, "valid") if padding_expr is None else infer_constant(padding_expr)
    if sizes is None or strides is None or dilation is None or not known:
        return (None,) * rank
    return tuple(_window_out(n, k, s, d, str(padding).lower())
                 for n, k, s, d in zip(spatial, sizes, strides, dilation))


def _window_out(size: Optional[int], kernel: int, stride: int, dilation: int,
                padding: str) -> Optional[int]:
    """Output length of one axis: ``valid`` → ⌊(n − d(k−1) − 1)/s⌋ + 1, ``same`` → ⌈n/s⌉."""
    if size is None or stride < 1:
        return None
    if padding in ("same", "causal"):
        return -(-size // stride)
    span = dilation * (kernel - 1) + 1
    if padding == "valid" and size >= span:
        return (size - span) // stride + 1
    return None
