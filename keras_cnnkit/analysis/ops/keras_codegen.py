"""Helpers the op definitions' Keras codegen shares (Keras is imported only when called).

Codegen builds stock ``keras.layers`` (or this package's registered layers) from a node's
attributes and shapes only; nothing is ever taken from a model file's code.  A windowed
op with explicit, asymmetric pads becomes ``ZeroPadding`` + the op with
``padding="valid"`` (:func:`window_padding`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from keras_cnnkit.analysis.ops.activation_table import LINEAR
from keras_cnnkit.analysis.ops.errors import UnsupportedNodeError

if TYPE_CHECKING:  # pragma: no cover
    from keras_cnnkit.analysis.ir import Node


def keras_layer(class_name: str):
    """The class ``keras.layers.<class_name>``."""
    import keras
    return getattr(keras.layers, class_name)


def cnnkit_layer(node: "Node", class_name: str):
    """The registered ``keras_cnnkit`` layer class ``class_name``."""
    from keras_cnnkit.layers.base import layer_class
    try:
        return layer_class(class_name, "keras_cnnkit")
    except ValueError:
        raise UnsupportedNodeError(node.name, f"keras_cnnkit.layers.{class_name} is not "
                                   "available") from None


def spatial_rank(node: "Node") -> int:
    """The number of spatial axes of the node's (first) input."""
    shape = node.input_shapes[0] if node.input_shapes else node.output_shape
    if not shape:
        raise UnsupportedNodeError(node.name, "spatial rank unknown (no rank, kernel or shape)")
    return len(shape) - 1


def ints(value: Any, rank: int, default: int = 1) -> tuple:
    """``value`` (an int, a sequence or ``None`` for ``default``) as ``rank`` ints."""
    if value is None:
        value = default
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def keras_axis(node: "Node", axis: Any) -> int:
    """An IR axis (batch excluded; negative counts from the end) → a Keras axis
    (``None``: the channel axis)."""
    if axis is None:
        return 1 if node.data_format == "channels_first" else -1
    return int(axis) + 1 if int(axis) >= 0 else int(axis)


def activation_arg(value: Any) -> Optional[str]:
    """A fused activation as Keras' ``activation=`` argument (``None`` when linear)."""
    if value in (None, "") or value in LINEAR:
        return None
    return str(value)


def explicit_pads(padding: Any, rank: int) -> Optional[tuple]:
    """Explicit pads as ``((before, after), ...)`` per spatial axis, or None for a mode."""
    if padding is None or isinstance(padding, str):
        return None
    if isinstance(padding, int):
        return ((padding, padding),) * rank
    flat = list(padding)
    if all(isinstance(p, (tuple, list)) for p in flat):
        return tuple((int(a), int(b)) for a, b in flat)
    if len(flat) == 2 * rank:  # ONNX order: all begins, then all ends
        return tuple((int(flat[i]), int(flat[i + rank])) for i in range(rank))
    if len(flat) == rank:
        return tuple((int(p), int(p)) for p in flat)
    raise ValueError(f"cannot read pads {padding!r} for rank {rank}")


def node_pads(node: "Node", padding: Any, rank: int) -> tuple:
    """:func:`explicit_pads` of a node's ``padding``; ``UnsupportedNodeError`` if unreadable."""
    try:
        return explicit_pads(padding, rank)
    except ValueError as exc:
        raise UnsupportedNodeError(node.name, str(exc)) from None


def window_padding(node: "Node", padding: Any, kernel: tuple, strides: tuple,
                   dilation: tuple, common: dict) -> tuple:
    """``(pre_layers, padding_mode)`` for a windowed op (conv, pooling).

    Explicit pads equal to what ``"same"`` pads (odd effective kernel, stride 1) or all
    zero map to the mode; others become a ``ZeroPadding`` layer before a ``"valid"`` op.
    """
    rank = len(kernel)
    pads = node_pads(node, padding, rank)
    if pads is None:
        return [], str(padding).lower()
    if all(a == 0 and b == 0 for a, b in pads):
        return [], "valid"
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if all(s == 1 and e % 2 == 1 and a == b == (e - 1) // 2
           for (a, b), e, s in zip(pads, effective, strides)):
        return [], "same"
    pad_cls = keras_layer(f"ZeroPadding{rank}D")
    pad_layer = pad_cls(padding=pads if rank > 1 else pads[0],
                        data_format=node.data_format if rank > 1 else None,
                        **{**common, "name": common["name"] + "_pad"})
    return [pad_layer], "valid"


def spatial_layer(node: "Node", stem: str, arg: str, value: Any, common: dict) -> list:
    """A ``<stem>{rank}D`` layer (ZeroPadding, Cropping) with ``arg=value`` given as
    per-axis ``(begin, end)`` pairs; rank 1 takes one pair and no data format."""
    rank = spatial_rank(node)
    pairs = node_pads(node, value, rank)
    extra = {} if rank == 1 else {"data_format": node.data_format}
    cls = keras_layer(f"{stem}{rank}D")
    return [cls(**{arg: pairs[0] if rank == 1 else pairs}, **extra, **common)]
