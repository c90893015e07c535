"""Code generation: graph-IR nodes back into standard Keras layers.

Every IR op kind the rewrite needs maps to stock ``keras.layers`` classes (or this
package's own registered layers, such as ``ChannelShuffle``), built from the node's
attributes and shapes only.  Nothing is ever taken from a model file's code, so building
layers from a file's IR can never run that file's code.

A node usually becomes one layer.  A convolution or pooling with explicit, asymmetric
pads becomes ``ZeroPadding`` + the op with ``padding="valid"``; the op is then the last
layer of the list and carries the node's name.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

import keras

from keras_cnnkit.analysis.ir import Node, OpKind


class UnsupportedNodeError(ValueError):
    """An IR node cannot be turned into Keras layers (opaque op, missing attribute).

    Attributes:
        node: the node's name.
        problem: what is missing, as one line.
    """

    def __init__(self, node: str, problem: str):
        self.node = node
        self.problem = problem
        super().__init__(f"node {node!r}: {problem}")


def layer_name(node_name: str) -> str:
    """A valid Keras layer name for an IR node name (``block/op`` → ``block_op``)."""
    return node_name.replace("/", "_")


def node_layers(node: Node, name: Optional[str] = None,
                dtype: Any = None) -> list:
    """The Keras layers computing ``node``, in call order; the last one is the op itself.

    Args:
        node: the IR node.
        name: the Keras name of the op's layer (default: :func:`layer_name` of the node).
        dtype: a dtype policy (``"mixed_float16"``, ``"bfloat16"``...) for every layer.

    Raises:
        UnsupportedNodeError: for opaque nodes and op kinds or attributes without a
            Keras equivalent.
    """
    name = name or layer_name(node.name)
    builder = _BUILDERS.get(node.op)
    if builder is None:
        raise UnsupportedNodeError(node.name, f"op {node.op!r} "
                                   f"({node.source_class or 'unknown class'}) has no "
                                   "Keras equivalent here")
    common = {"name": name}
    if dtype is not None:
        common["dtype"] = dtype
    return builder(node, common)


def keras_layers_for(nodes: Iterable[Node], dtype: Any = None) -> dict:
    """Node name → list of Keras layers (see :func:`node_layers`), in the nodes' order."""
    return {node.name: node_layers(node, dtype=dtype) for node in nodes}


def call_layers(layers: list, inputs: list):
    """Call a node's layers on its input tensors; merge layers get the list."""
    x = inputs[0] if len(inputs) == 1 else list(inputs)
    for layer in layers:
        x = layer(x)
    return x


# -- attribute helpers ---------------------------------------------------------------


def _rank(node: Node) -> int:
    """Spatial rank of a conv/pool node: ``rank`` attr, else the kernel's, else shapes'."""
    rank = node.attr("rank")
    if rank:
        return int(rank)
    for key in ("kernel", "pool_size"):
        value = node.attr(key)
        if isinstance(value, (tuple, list)):
            return len(value)
    shape = node.input_shapes[0] if node.input_shapes else node.output_shape
    if not shape:
        raise UnsupportedNodeError(node.name, "spatial rank unknown (no rank, kernel or shape)")
    return len(shape) - 1


def _tuple(value: Any, rank: int, default: int = 1) -> tuple:
    if value is None:
        value = default
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def _channel_axis(node: Node) -> int:
    return 1 if node.data_format == "channels_first" else -1


def _activation(value: Any) -> Optional[str]:
    if value in (None, "", "linear", "identity"):
        return None
    return str(value)


def _explicit_pads(padding: Any, rank: int) -> Optional[tuple]:
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


def _padding(node: Node, rank: int, kernel: tuple, strides: tuple, dilation: tuple,
             common: dict) -> tuple:
    """``(pre_layers, padding_mode)`` for a windowed op.

    Explicit pads equal to what ``"same"`` pads (odd effective kernel, stride 1) or all
    zero map to the mode; others become a ``ZeroPadding`` layer before a ``"valid"`` op.
    """
    padding = node.attr("padding", "valid")
    try:
        pads = _explicit_pads(padding, rank)
    except ValueError as exc:
        raise UnsupportedNodeError(node.name, str(exc)) from None
    if pads is None:
        return [], str(padding).lower()
    if all(a == 0 and b == 0 for a, b in pads):
        return [], "valid"
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if all(s == 1 and e % 2 == 1 and a == b == (e - 1) // 2
           for (a, b), e, s in zip(pads, effective, strides)):
        return [], "same"
    pad_cls = getattr(keras.layers, f"ZeroPadding{rank}D")
    pad_layer = pad_cls(padding=pads if rank > 1 else pads[0],
                        data_format=node.data_format if rank > 1 else None,
                        **{**common, "name": common["name"] + "_pad"})
    return [pad_layer], "valid"


# -- builders per op kind ------------------------------------------------------------


def _conv(node: Node, common: dict) -> list:
    rank = _rank(node)
    kernel = _tuple(node.attr("kernel"), rank)
    strides = _tuple(node.attr("strides"), rank)
    dilation = _tuple(node.attr("dilation"), rank)
    pre, padding = _padding(node, rank, kernel, strides, dilation, common)
    filters = node.attr("filters") or node.channels()
    if not filters:
        raise UnsupportedNodeError(node.name, "conv without a filter count")
    cls = getattr(keras.layers, f"Conv{rank}D")
    layer = cls(filters=int(filters), kernel_size=kernel, strides=strides, padding=padding,
                dilation_rate=dilation, groups=int(node.attr("groups", 1) or 1),
                use_bias=bool(node.attr("use_bias", True)),
                activation=_activation(node.attr("activation")),
                data_format=node.data_format, **common)
    return pre + [layer]


def _depthwise(node: Node, common: dict) -> list:
    rank = _rank(node)
    if rank not in (1, 2):
        raise UnsupportedNodeError(node.name, f"no Keras depthwise conv of rank {rank}")
    kernel = _tuple(node.attr("kernel"), rank)
    strides = _tuple(node.attr("strides"), rank)
    dilation = _tuple(node.attr("dilation"), rank)
    pre, padding = _padding(node, rank, kernel, strides, dilation, common)
    multiplier = node.attr("depth_multiplier")
    if not multiplier:
        in_ch, out_ch = node.in_channels(), node.channels()
        multiplier = out_ch // in_ch if in_ch and out_ch else 1
    cls = getattr(keras.layers, f"DepthwiseConv{rank}D")
    layer = cls(kernel_size=kernel, strides=strides, padding=padding,
                depth_multiplier=int(multiplier), dilation_rate=dilation,
                use_bias=bool(node.attr("use_bias", True)),
                activation=_activation(node.attr("activation")),
                data_format=node.data_format, **common)
    return pre + [layer]


def _conv_transpose(node: Node, common: dict) -> list:
    rank = _rank(node)
    padding = node.attr("padding", "valid")
    if not isinstance(padding, str):
        raise UnsupportedNodeError(node.name, "transposed conv with explicit pads")
    cls = getattr(keras.layers, f"Conv{rank}DTranspose")
    return [cls(filters=int(node.attr("filters") or node.channels()),
                kernel_size=_tuple(node.attr("kernel"), rank),
                strides=_tuple(node.attr("strides"), rank), padding=padding,
                dilation_rate=_tuple(node.attr("dilation"), rank),
                use_bias=bool(node.attr("use_bias", True)),
                activation=_activation(node.attr("activation")),
                data_format=node.data_format, **common)]


def _dense(node: Node, common: dict) -> list:
    units = node.attr("units") or (node.output_shape[-1] if node.output_shape else None)
    if not units:
        raise UnsupportedNodeError(node.name, "dense without a unit count")
    return [keras.layers.Dense(int(units), use_bias=bool(node.attr("use_bias", True)),
                               activation=_activation(node.attr("activation")), **common)]


def _keras_axis(node: Node, axis: Any) -> int:
    """An IR axis (batch excluded; negative counts from the end) → a Keras axis."""
    if axis is None:
        return _channel_axis(node)
    return int(axis) + 1 if int(axis) >= 0 else int(axis)


def _batchnorm(node: Node, common: dict) -> list:
    return [keras.layers.BatchNormalization(
        axis=_keras_axis(node, node.attr("axis")),
        epsilon=float(node.attr("epsilon", 1e-3)),
        momentum=float(node.attr("momentum", 0.99)),
        center=bool(node.attr("center", True)), scale=bool(node.attr("scale", True)),
        **common)]


def _norm(node: Node, common: dict) -> list:
    kind = node.attr("kind", "layer")
    axes = node.attr("axes") or (node.attr("axis", -1),)
    keras_axes = [_keras_axis(node, a) for a in axes]
    if kind == "group":
        return [keras.layers.GroupNormalization(groups=int(node.attr("groups", 32)),
                                                axis=keras_axes[0], **common)]
    if kind == "unit":
        return [keras.layers.UnitNormalization(axis=keras_axes, **common)]
    return [keras.layers.LayerNormalization(
        axis=keras_axes if len(keras_axes) > 1 else keras_axes[0],
        epsilon=float(node.attr("epsilon", 1e-3)), center=bool(node.attr("center", True)),
        scale=bool(node.attr("scale", True)), **common)]


def _activation_layer(node: Node, common: dict) -> list:
    act = _activation(node.attr("activation")) or "linear"
    if act == "leaky_relu":
        slope = node.attr("negative_slope", node.attr("alpha", 0.2))
        return [keras.layers.LeakyReLU(negative_slope=float(slope), **common)]
    if act == "relu" and (node.attr("max_value") is not None or node.attr("negative_slope")):
        return [keras.layers.ReLU(max_value=node.attr("max_value"),
                                  negative_slope=float(node.attr("negative_slope", 0.0)),
                                  **common)]
    if act == "prelu":
        shape = node.output_shape
        shared = None
        if node.attr("alpha_size") == node.channels() and len(shape) > 1:
            channel = len(shape) if node.data_format == "channels_last" else 1
            shared = [i for i in range(1, len(shape) + 1) if i != channel]
        return [keras.layers.PReLU(shared_axes=shared, **common)]
    if act == "softmax" and node.attr("axis") is not None:
        return [keras.layers.Softmax(axis=node.attr("axis"), **common)]
    return [keras.layers.Activation(act, **common)]


def _merge(cls_name: str) -> Callable:
    def build(node: Node, common: dict) -> list:
        del node
        return [getattr(keras.layers, cls_name)(**common)]
    return build


def _concat(node: Node, common: dict) -> list:
    return [keras.layers.Concatenate(axis=_keras_axis(node, node.attr("axis")), **common)]


def _transpose(node: Node, common: dict) -> list:
    return [keras.layers.Permute(tuple(int(p) + 1 for p in node.attr("perm")), **common)]


def _pool(node: Node, common: dict) -> list:
    rank = _rank(node)
    size = _tuple(node.attr("pool_size"), rank, default=2)
    strides = _tuple(node.attr("strides") or size, rank)
    pre, padding = _padding(node, rank, size, strides, (1,) * rank, common)
    kind = "Max" if node.attr("pool_type", "max") == "max" else "Average"
    cls = getattr(keras.layers, f"{kind}Pooling{rank}D")
    return pre + [cls(pool_size=size, strides=strides, padding=padding,
                      data_format=node.data_format, **common)]


def _global_pool(node: Node, common: dict) -> list:
    shape = node.input_shapes[0] if node.input_shapes else ()
    rank = node.attr("rank") or (len(shape) - 1 if shape else 2)
    kind = "Max" if node.attr("pool_type", "avg") == "max" else "Average"
    cls = getattr(keras.layers, f"Global{kind}Pooling{rank}D")
    return [cls(data_format=node.data_format, keepdims=bool(node.attr("keepdims", False)),
                **common)]


def _flatten(node: Node, common: dict) -> list:
    return [keras.layers.Flatten(data_format=node.data_format, **common)]


def _reshape(node: Node, common: dict) -> list:
    target = node.attr("target_shape") or node.output_shape
    return [keras.layers.Reshape(tuple(int(d) for d in target), **common)]


_DROPOUT_CLASSES = {"gaussian": "GaussianDropout", "alpha": "AlphaDropout"}


def _dropout(node: Node, common: dict) -> list:
    kind = node.attr("kind", "dropout")
    rate = float(node.attr("rate", 0.5))
    if kind == "spatial":
        shape = node.input_shapes[0] if node.input_shapes else node.output_shape
        cls = getattr(keras.layers, f"SpatialDropout{len(shape) - 1}D")
        return [cls(rate=rate, **common)]
    if kind == "noise":
        return [keras.layers.GaussianNoise(stddev=rate, **common)]
    return [getattr(keras.layers, _DROPOUT_CLASSES.get(kind, "Dropout"))(rate=rate, **common)]


def _pad(node: Node, common: dict) -> list:
    shape = node.input_shapes[0] if node.input_shapes else node.output_shape
    rank = int(node.attr("rank") or len(shape) - 1)
    try:
        padding = _explicit_pads(node.attr("padding", 1), rank)
    except ValueError as exc:
        raise UnsupportedNodeError(node.name, str(exc)) from None
    padding = padding[0] if rank == 1 else padding
    extra = {} if rank == 1 else {"data_format": node.data_format}
    cls = getattr(keras.layers, f"ZeroPadding{rank}D")
    return [cls(padding=padding, **extra, **common)]


def _crop(node: Node, common: dict) -> list:
    shape = node.input_shapes[0] if node.input_shapes else node.output_shape
    rank = int(node.attr("rank") or len(shape) - 1)
    crops = _explicit_pads(node.attr("cropping", 1), rank)
    extra = {} if rank == 1 else {"data_format": node.data_format}
    cls = getattr(keras.layers, f"Cropping{rank}D")
    return [cls(cropping=crops[0] if rank == 1 else crops, **extra, **common)]


def _upsample(node: Node, common: dict) -> list:
    shape = node.input_shapes[0] if node.input_shapes else node.output_shape
    rank = node.attr("rank") or len(shape) - 1
    size = _tuple(node.attr("size", 2), rank)
    cls = getattr(keras.layers, f"UpSampling{rank}D")
    if rank == 2:
        return [cls(size=size, data_format=node.data_format,
                    interpolation=node.attr("interpolation", "nearest"), **common)]
    return [cls(size=size if rank == 3 else size[0], **common)]


def _channel_shuffle(node: Node, common: dict) -> list:
    from keras_cnnkit.layers.base import layer_class
    try:
        cls = layer_class("ChannelShuffle", "keras_cnnkit")
    except ValueError:
        raise UnsupportedNodeError(node.name, "keras_cnnkit.layers.ChannelShuffle is not "
                                   "available") from None
    return [cls(groups=int(node.attr("groups")), data_format=node.data_format, **common)]


def _rescale(node: Node, common: dict) -> list:
    if node.attr("mode") == "normalization" and node.attr("params"):
        # an adaptable Normalization: its mean, variance and count are weights
        axes = [_keras_axis(node, a) for a in node.attr("axes") or (-1,)]
        return [keras.layers.Normalization(axis=axes if len(axes) > 1 else axes[0],
                                           **common)]
    return [keras.layers.Rescaling(scale=node.attr("scale", 1.0),
                                   offset=node.attr("offset", 0.0), **common)]


def _identity(node: Node, common: dict) -> list:
    del node
    return [keras.layers.Identity(**common)]


_BUILDERS = {
    OpKind.CONV: _conv,
    OpKind.DEPTHWISE_CONV: _depthwise,
    OpKind.CONV_TRANSPOSE: _conv_transpose,
    OpKind.DENSE: _dense,
    OpKind.BATCHNORM: _batchnorm,
    OpKind.NORM: _norm,
    OpKind.ACTIVATION: _activation_layer,
    OpKind.ADD: _merge("Add"),
    OpKind.SUBTRACT: _merge("Subtract"),
    OpKind.MULTIPLY: _merge("Multiply"),
    OpKind.AVERAGE: _merge("Average"),
    OpKind.MAXIMUM: _merge("Maximum"),
    OpKind.MINIMUM: _merge("Minimum"),
    OpKind.TRANSPOSE: _transpose,
    OpKind.CROP: _crop,
    OpKind.CONCAT: _concat,
    OpKind.POOL: _pool,
    OpKind.GLOBAL_POOL: _global_pool,
    OpKind.FLATTEN: _flatten,
    OpKind.RESHAPE: _reshape,
    OpKind.DROPOUT: _dropout,
    OpKind.PAD: _pad,
    OpKind.UPSAMPLE: _upsample,
    OpKind.CHANNEL_SHUFFLE: _channel_shuffle,
    OpKind.RESCALE: _rescale,
    OpKind.IDENTITY: _identity,
}


def supported_ops() -> tuple:
    """The IR op kinds :func:`node_layers` can build."""
    return tuple(_BUILDERS)
