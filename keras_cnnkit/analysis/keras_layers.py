"""Keras layers → IR nodes: the table both Keras frontends share.

This is the Keras frontend's mapping only: each handler reads a layer's config and names
the op kind(s) and attributes it becomes.  What a kind means (its typed attributes,
shape rule, costs, codegen) is its definition in :mod:`keras_cnnkit.analysis.ops`, and
activation spellings are the activation table's.  Adding a kind is its op module plus a
handler here (``LayerScale`` → ``layer_scale`` is the example).

Pure Python.  The live frontend (:mod:`keras_cnnkit.analysis.frontends.keras_live`) feeds
it ``layer.get_config()``; the static file frontend feeds it the ``config`` dicts it
reads from ``.keras``/``.h5`` files without importing Keras.  Keras 3 configs are the
reference; the Keras 2 (``tf_keras``) spellings that differ are accepted too
(``alpha`` for ``negative_slope``, list-valued ``axis``, ``batch_input_shape``,
``Convolution2D``-style aliases).

Entry points:

* :func:`convert_layer` — one call of a layer → an :class:`Expansion` (its IR nodes and
  the name of the node holding its output).  Unknown classes give one
  :data:`~keras_cnnkit.analysis.ir.OpKind.OPAQUE` node.
* :func:`infer_layer` — the ``(op kind, attrs, output shape)`` of a single-op layer.
* :func:`expand_block` — a ``keras_cnnkit`` composite block, expanded through its block
  spec (:mod:`keras_cnnkit.blockspec`) into nodes named ``f"{layer_name}/{op.name}"``
  (``layer`` is the same path), so that rules see inside blocks.

Layers that become more than one node:

* ``SeparableConv1D/2D`` → a depthwise node ``"<name>/depthwise"`` (no bias, no
  activation) feeding the pointwise 1×1 node ``"<name>"`` (the layer's bias and
  activation).  Both carry ``layer=<name>``.  Rules therefore see the depthwise and the
  pointwise convolution separately, and the costs add up to the layer's.
* composite ``keras_cnnkit`` blocks, as above.

A fused ``activation`` of a conv or dense layer stays an attribute of its node
(``attrs["activation"]``, ``None`` when linear); the cost model counts it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

from keras_cnnkit.analysis.ir import Node, OpKind, Shape
from keras_cnnkit.analysis.ops import AttrsError
from keras_cnnkit.analysis.ops.activation_table import canonical_name
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.ops.layer_scale import LAYER_SCALE
from keras_cnnkit.analysis.ops.opaque import INPUT_SHAPE_UNKNOWN
from keras_cnnkit.analysis.shapes import ShapeError, infer_shape


class LayerConfigError(ValueError):
    """A layer's config cannot be understood (missing or ill-typed field)."""


@dataclasses.dataclass
class Expansion:
    """The IR nodes of one layer call, in topological order, and its output node."""

    nodes: list
    output: str


# --- config helpers --------------------------------------------------------------

def activation_name(value: Any) -> Optional[str]:
    """A Keras ``activation`` config value → canonical name (``None`` when linear).

    Accepts a name, a serialized dict (``{"class_name": ..., "config": ...}``) and the
    Keras 3 ``"silu"``/Keras 2 ``"swish"`` spellings (both → ``"silu"``); the spellings
    are the activation table's (:mod:`keras_cnnkit.analysis.ops.activation_table`).
    """
    try:
        return canonical_name(value)
    except TypeError as exc:
        raise LayerConfigError(str(exc)) from None


def _ints(value: Any, rank: int, key: str) -> tuple:
    if isinstance(value, bool):
        raise LayerConfigError(f"`{key}` must be an int or {rank} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * rank
    if isinstance(value, (list, tuple)) and len(value) == rank and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise LayerConfigError(f"`{key}` must be an int or {rank} ints, got {value!r}")


def _positive(value: Any, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise LayerConfigError(f"`{key}` must be a positive int, got {value!r}")
    return value


def _positive_ints(value: Any, rank: int, key: str) -> tuple:
    out = _ints(value, rank, key)
    for v in out:
        _positive(v, key)
    return out


def _get(config: dict, key: str, default: Any = None) -> Any:
    value = config.get(key, default)
    return default if value is None else value


def _data_format(config: dict) -> str:
    fmt = _get(config, "data_format", "channels_last")
    if fmt not in ("channels_last", "channels_first"):
        raise LayerConfigError(f"unknown data_format {fmt!r}")
    return fmt


def _channels(shape: Optional[Shape], fmt: str) -> Optional[int]:
    if shape is None or not shape:
        return None
    return shape[0] if fmt == "channels_first" else shape[-1]


def _axis(axis: Any, rank: int) -> int:
    """A Keras axis (batch included, maybe negative) → index into a batch-excluded shape."""
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise LayerConfigError(f"expected one axis, got {axis!r}")
        axis = axis[0]
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise LayerConfigError(f"`axis` must be an int, got {axis!r}")
    full = axis + rank + 1 if axis < 0 else axis
    if not 1 <= full <= rank:
        raise LayerConfigError(f"axis {axis} is out of range for rank {rank} inputs")
    return full - 1


def _axes(axis: Any, rank: int) -> tuple:
    if isinstance(axis, (list, tuple)):
        return tuple(_axis(a, rank) for a in axis)
    return (_axis(axis, rank),)


def _pads(value: Any, rank: int, key: str) -> tuple:
    """ZeroPadding/Cropping config → ((begin, end), ...) per spatial dim."""
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * rank
    if isinstance(value, (list, tuple)):
        if rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
            return (tuple(value),)
        if len(value) == rank:
            out = []
            for v in value:
                if isinstance(v, int) and not isinstance(v, bool):
                    out.append((v, v))
                elif isinstance(v, (list, tuple)) and len(v) == 2:
                    out.append((int(v[0]), int(v[1])))
                else:
                    raise LayerConfigError(f"bad `{key}` {value!r}")
            return tuple(out)
    raise LayerConfigError(f"bad `{key}` {value!r}")


def _in_channels(shapes: Sequence, fmt: str, class_name: str) -> int:
    channels = _channels(shapes[0], fmt)
    if channels is None:
        raise ShapeError(f"{class_name} needs a known channel count, got input {shapes[0]}")
    return channels


# --- handlers: (config, input_shapes) -> [(suffix, op, attrs, input_suffixes)] ------------
# All handlers share one signature, so some ignore an argument.
# pylint: disable=unused-argument
# ``suffix`` "" names the node after the layer; ``input_suffixes`` None means the layer's
# own inputs, else the suffixes of earlier nodes of the same layer.

Handler = Callable[[dict, list], list]


def _conv_attrs(config: dict, shapes: list, rank: int, class_name: str) -> dict:
    fmt = _data_format(config)
    padding = _get(config, "padding", "valid")
    if padding not in ("valid", "same", "causal"):
        raise LayerConfigError(f"unknown padding {padding!r}")
    return {
        "rank": rank,
        "kernel": _positive_ints(config.get("kernel_size"), rank, "kernel_size"),
        "strides": _positive_ints(_get(config, "strides", 1), rank, "strides"),
        "dilation": _positive_ints(_get(config, "dilation_rate", 1), rank, "dilation_rate"),
        "padding": padding,
        "in_channels": _in_channels(shapes, fmt, class_name),
        "use_bias": bool(_get(config, "use_bias", True)),
        "activation": activation_name(config.get("activation")),
        "data_format": fmt,
    }


def _conv(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        attrs = _conv_attrs(config, shapes, rank, f"Conv{rank}D")
        groups = _positive(_get(config, "groups", 1), "groups")
        filters = _positive(config.get("filters"), "filters")
        if attrs["in_channels"] % groups or filters % groups:
            raise LayerConfigError(f"groups={groups} does not divide {attrs['in_channels']} "
                                   f"input and {filters} output channels")
        attrs.update(groups=groups, filters=filters)
        return [("", OpKind.CONV, attrs, None)]
    return handler


def _depthwise(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        attrs = _conv_attrs(config, shapes, rank, f"DepthwiseConv{rank}D")
        multiplier = _positive(_get(config, "depth_multiplier", 1), "depth_multiplier")
        attrs.update(groups=attrs["in_channels"], depth_multiplier=multiplier,
                     filters=attrs["in_channels"] * multiplier)
        return [("", OpKind.DEPTHWISE_CONV, attrs, None)]
    return handler


def _separable(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        attrs = _conv_attrs(config, shapes, rank, f"SeparableConv{rank}D")
        multiplier = _positive(_get(config, "depth_multiplier", 1), "depth_multiplier")
        depthwise = dict(attrs, groups=attrs["in_channels"], depth_multiplier=multiplier,
                         filters=attrs["in_channels"] * multiplier, use_bias=False,
                         activation=None)
        pointwise = dict(attrs, kernel=(1,) * rank, strides=(1,) * rank,
                         dilation=(1,) * rank, padding="valid", groups=1,
                         in_channels=depthwise["filters"],
                         filters=_positive(config.get("filters"), "filters"))
        return [("depthwise", OpKind.DEPTHWISE_CONV, depthwise, None),
                ("", OpKind.CONV, pointwise, ("depthwise",))]
    return handler


def _conv_transpose(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        attrs = _conv_attrs(config, shapes, rank, f"Conv{rank}DTranspose")
        out_pad = config.get("output_padding")
        attrs.update(groups=_positive(_get(config, "groups", 1), "groups"),
                     filters=_positive(config.get("filters"), "filters"),
                     output_padding=None if out_pad is None else _ints(out_pad, rank,
                                                                       "output_padding"))
        return [("", OpKind.CONV_TRANSPOSE, attrs, None)]
    return handler


def _dense(config: dict, shapes: list) -> list:
    in_features = shapes[0][-1] if shapes[0] else None
    if in_features is None:
        raise ShapeError(f"Dense needs a known last dimension, got input {shapes[0]}")
    return [("", OpKind.DENSE, {
        "in_features": in_features,
        "units": _positive(config.get("units"), "units"),
        "use_bias": bool(_get(config, "use_bias", True)),
        "activation": activation_name(config.get("activation")),
    }, None)]


def _embedding(config: dict, shapes: list) -> list:
    return [("", OpKind.EMBEDDING, {
        "input_dim": _positive(config.get("input_dim"), "input_dim"),
        "output_dim": _positive(config.get("output_dim"), "output_dim"),
    }, None)]


def _batchnorm(config: dict, shapes: list) -> list:
    rank = len(shapes[0])
    axis = _axis(_get(config, "axis", -1), rank)
    fmt = "channels_first" if axis == 0 and rank > 1 else "channels_last"
    return [("", OpKind.BATCHNORM, {
        "axis": axis, "channels": shapes[0][axis], "data_format": fmt,
        "center": bool(_get(config, "center", True)), "scale": bool(_get(config, "scale", True)),
        "epsilon": _get(config, "epsilon", 1e-3),
    }, None)]


def _norm_size(shape: Shape, axes: tuple) -> Optional[int]:
    return prod(shape[a] for a in axes)


def _layer_norm(config: dict, shapes: list) -> list:
    axes = _axes(_get(config, "axis", -1), len(shapes[0]))
    rms = bool(config.get("rms_scaling", False))
    return [("", OpKind.NORM, {
        "kind": "layer", "axes": axes, "norm_size": _norm_size(shapes[0], axes),
        "center": bool(_get(config, "center", True)) and not rms,
        "scale": bool(_get(config, "scale", True)),
    }, None)]


def _group_norm(config: dict, shapes: list) -> list:
    axis = _axis(_get(config, "axis", -1), len(shapes[0]))
    return [("", OpKind.NORM, {
        "kind": "group", "axes": (axis,), "groups": _positive(config.get("groups", 32), "groups"),
        "norm_size": shapes[0][axis],
        "center": bool(_get(config, "center", True)), "scale": bool(_get(config, "scale", True)),
    }, None)]


def _unit_norm(config: dict, shapes: list) -> list:
    axes = _axes(_get(config, "axis", -1), len(shapes[0]))
    return [("", OpKind.NORM, {"kind": "unit", "axes": axes, "norm_size": 0,
                               "center": False, "scale": False}, None)]


def _activation(name: Optional[str]) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        act = name if name is not None else activation_name(config.get("activation"))
        attrs = {"activation": act}
        if act == "softmax" and "axis" in config:
            attrs["axis"] = config["axis"]
        return [("", OpKind.ACTIVATION, attrs, None)]
    return handler


def _relu(config: dict, shapes: list) -> list:
    max_value = config.get("max_value")
    slope = _get(config, "negative_slope", 0.0)
    threshold = _get(config, "threshold", 0.0)
    if slope:
        act = "leaky_relu"
    elif max_value is not None and float(max_value) == 6.0 and not threshold:
        act = "relu6"
    else:
        act = "relu"
    attrs = {"activation": act}
    if max_value is not None and act != "relu6":
        attrs["max_value"] = float(max_value)
    if slope:
        attrs["negative_slope"] = float(slope)
    return [("", OpKind.ACTIVATION, attrs, None)]


def _leaky_relu(config: dict, shapes: list) -> list:
    slope = config.get("negative_slope", config.get("alpha", 0.3))
    return [("", OpKind.ACTIVATION, {"activation": "leaky_relu",
                                     "negative_slope": float(slope)}, None)]


def _prelu(config: dict, shapes: list) -> list:
    shared = config.get("shared_axes") or ()
    if isinstance(shared, int):
        shared = (shared,)
    alpha_shape = [1 if i + 1 in shared else d for i, d in enumerate(shapes[0])]
    size = prod(alpha_shape)
    if size is None:
        raise ShapeError("PReLU needs known dimensions on its non-shared axes")
    return [("", OpKind.ACTIVATION, {"activation": "prelu", "alpha_size": size}, None)]


def _elementwise(op: str) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", op, {}, None)]
    return handler


def _concat(config: dict, shapes: list) -> list:
    return [("", OpKind.CONCAT, {"axis": _axis(_get(config, "axis", -1), len(shapes[0]))},
             None)]


def _pool(kind: str, rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        size = _positive_ints(_get(config, "pool_size", 2), rank, "pool_size")
        padding = _get(config, "padding", "valid")
        if padding not in ("valid", "same"):
            raise LayerConfigError(f"unknown padding {padding!r}")
        return [("", OpKind.POOL, {
            "pool_type": kind, "rank": rank, "pool_size": size,
            "strides": _positive_ints(_get(config, "strides", size), rank, "strides"),
            "padding": padding, "data_format": _data_format(config),
        }, None)]
    return handler


def _global_pool(kind: str, rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", OpKind.GLOBAL_POOL, {
            "pool_type": kind, "rank": rank, "keepdims": bool(config.get("keepdims", False)),
            "data_format": _data_format(config),
        }, None)]
    return handler


def _flatten(config: dict, shapes: list) -> list:
    return [("", OpKind.FLATTEN, {"data_format": _data_format(config)}, None)]


def _reshape(config: dict, shapes: list) -> list:
    target = config.get("target_shape")
    if not isinstance(target, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and (d > 0 or d == -1)
            for d in target) or list(target).count(-1) > 1:
        raise LayerConfigError(f"bad `target_shape` {target!r}")
    return [("", OpKind.RESHAPE, {"target_shape": tuple(target)}, None)]


def _permute(config: dict, shapes: list) -> list:
    dims = config.get("dims")
    rank = len(shapes[0])
    if not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(1, rank + 1)):
        raise LayerConfigError(f"bad `dims` {dims!r} for rank {rank} inputs")
    return [("", OpKind.TRANSPOSE, {"perm": tuple(d - 1 for d in dims)}, None)]


def _dropout(kind: str) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        rate = config.get("rate", config.get("stddev", 0.0))
        attrs = {"rate": float(rate or 0.0), "kind": kind}
        if "data_format" in config:
            attrs["data_format"] = _data_format(config)
        return [("", OpKind.DROPOUT, attrs, None)]
    return handler


def _identity(config: dict, shapes: list) -> list:
    return [("", OpKind.IDENTITY, {}, None)]


def _pad(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", OpKind.PAD, {"padding": _pads(_get(config, "padding", 1), rank, "padding"),
                                  "data_format": _data_format(config)}, None)]
    return handler


def _crop(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", OpKind.CROP, {"cropping": _pads(_get(config, "cropping", 1), rank,
                                                     "cropping"),
                                   "data_format": _data_format(config)}, None)]
    return handler


def _upsample(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        key = "length" if rank == 1 and "length" in config else "size"
        return [("", OpKind.UPSAMPLE, {
            "size": _positive_ints(_get(config, key, 2), rank, key),
            "interpolation": _get(config, "interpolation", "nearest"),
            "data_format": _data_format(config) if rank > 1 else "channels_last",
        }, None)]
    return handler


def _rescaling(config: dict, shapes: list) -> list:
    return [("", OpKind.RESCALE, {"mode": "rescaling", "params": 0}, None)]


def _normalization(config: dict, shapes: list) -> list:
    axes = _axes(_get(config, "axis", -1), len(shapes[0]))
    size = _norm_size(shapes[0], axes)
    adapted = config.get("mean") is None
    # Keras keeps mean, variance and a count as (non-trainable) weights unless the mean
    # and variance are given as constants.
    params = (2 * size + 1) if adapted and size is not None else (None if adapted else 0)
    return [("", OpKind.RESCALE, {"mode": "normalization", "params": params, "axes": axes},
             None)]


def _channel_shuffle(config: dict, shapes: list) -> list:
    return [("", OpKind.CHANNEL_SHUFFLE, {
        "groups": _positive(config.get("groups"), "groups"),
        "data_format": _data_format(config)}, None)]


def _channel_slice(config: dict, shapes: list) -> list:
    fmt = _data_format(config)
    rank = len(shapes[0])
    axis = 0 if fmt == "channels_first" else rank - 1
    if "axis" in config and config["axis"] is not None:
        axis = _axis(config["axis"], rank)
    start = _get(config, "start", 0)
    stop = config.get("stop")
    if stop is None and config.get("size") is not None:
        stop = start + config["size"]
    return [("", OpKind.SLICE, {"axis": axis, "start": start, "stop": stop,
                                "data_format": fmt}, None)]


def _group_conv(config: dict, shapes: list) -> list:
    rank = len(shapes[0]) - 1
    return _conv(rank)(config, shapes)


def _deformable(config: dict, shapes: list) -> list:
    """DeformableConv2D: an offset conv (2·k² per deformable group, +k² if modulated)
    feeding the deformable conv proper."""
    attrs = _conv_attrs(config, shapes, 2, "DeformableConv2D")
    dg = _positive(_get(config, "deformable_groups", _get(config, "offset_groups", 1)),
                   "deformable_groups")
    modulated = bool(config.get("modulated", config.get("use_mask", False)))
    taps = attrs["kernel"][0] * attrs["kernel"][1]
    offset = dict(attrs, filters=dg * taps * (3 if modulated else 2), groups=1, activation=None,
                  use_bias=True)
    main = dict(attrs, filters=_positive(config.get("filters"), "filters"),
                groups=_positive(_get(config, "groups", 1), "groups"),
                deformable_groups=dg, modulated=modulated)
    return [("offset", OpKind.CONV, offset, None),
            ("", OpKind.DEFORM_CONV, main, (None, "offset"))]


def _layer_scale(config: dict, shapes: list) -> list:
    """ConvNeXt's ``LayerScale(init_values, projection_dim)``: ``x · γ`` over the last
    axis."""
    init = config.get("init_values")
    return [("", LAYER_SCALE, {
        "channels": _positive(config.get("projection_dim"), "projection_dim"),
        "init_values": None if init is None else float(init),
        "data_format": "channels_last"}, None)]


def _table() -> dict:
    table: dict[str, Handler] = {}
    for rank in (1, 2, 3):
        for alias in (f"Conv{rank}D", f"Convolution{rank}D"):
            table[alias] = _conv(rank)
        for alias in (f"Conv{rank}DTranspose", f"Convolution{rank}DTranspose"):
            table[alias] = _conv_transpose(rank)
        for kind, names in (("max", ("MaxPooling{}D", "MaxPool{}D")),
                            ("avg", ("AveragePooling{}D", "AvgPool{}D"))):
            for name in names:
                table[name.format(rank)] = _pool(kind, rank)
        for kind, names in (("max", ("GlobalMaxPooling{}D", "GlobalMaxPool{}D")),
                            ("avg", ("GlobalAveragePooling{}D", "GlobalAvgPool{}D"))):
            for name in names:
                table[name.format(rank)] = _global_pool(kind, rank)
        table[f"ZeroPadding{rank}D"] = _pad(rank)
        table[f"Cropping{rank}D"] = _crop(rank)
        table[f"UpSampling{rank}D"] = _upsample(rank)
        table[f"SpatialDropout{rank}D"] = _dropout("spatial")
    for rank in (1, 2):
        table[f"DepthwiseConv{rank}D"] = _depthwise(rank)
        for alias in (f"SeparableConv{rank}D", f"SeparableConvolution{rank}D"):
            table[alias] = _separable(rank)
    table["Deconvolution2D"] = table["Conv2DTranspose"]
    table["Deconvolution3D"] = table["Conv3DTranspose"]
    table.update({
        "Dense": _dense,
        "Embedding": _embedding,
        "BatchNormalization": _batchnorm,
        "LayerNormalization": _layer_norm,
        "GroupNormalization": _group_norm,
        "UnitNormalization": _unit_norm,
        "Activation": _activation(None),
        "ReLU": _relu,
        "ReLU6": _activation("relu6"),
        "LeakyReLU": _leaky_relu,
        "PReLU": _prelu,
        "ELU": _activation("elu"),
        "Softmax": _activation("softmax"),
        "ThresholdedReLU": _activation("relu"),
        "Add": _elementwise(OpKind.ADD),
        "Subtract": _elementwise(OpKind.SUBTRACT),
        "Multiply": _elementwise(OpKind.MULTIPLY),
        "Average": _elementwise(OpKind.AVERAGE),
        "Maximum": _elementwise(OpKind.MAXIMUM),
        "Minimum": _elementwise(OpKind.MINIMUM),
        "Concatenate": _concat,
        "Flatten": _flatten,
        "Reshape": _reshape,
        "Permute": _permute,
        "Dropout": _dropout("dropout"),
        "GaussianDropout": _dropout("gaussian"),
        "AlphaDropout": _dropout("alpha"),
        "GaussianNoise": _dropout("noise"),
        "DropPath": _dropout("drop_path"),
        "StochasticDepth": _dropout("drop_path"),
        "ActivityRegularization": _identity,
        "Identity": _identity,
        "Rescaling": _rescaling,
        "Normalization": _normalization,
        "ChannelShuffle": _channel_shuffle,
        "ChannelSlice": _channel_slice,
        "GroupConv": _group_conv,
        "GroupConv2D": _group_conv,
        "DeformableConv2D": _deformable,
        "LayerScale": _layer_scale,
    })
    return table


_TABLE = _table()

#: Layer classes the table understands (besides ``InputLayer`` and composite blocks).
KNOWN_CLASSES = frozenset(_TABLE) | {"InputLayer"}

#: Keras layer-config keys that are not block arguments (dropped before expanding).
_BASE_LAYER_KEYS = ("name", "trainable", "dtype", "autocast", "input_dim", "input_shape",
                    "batch_input_shape", "batch_shape")


def is_block(class_name: str) -> bool:
    """True when ``class_name`` is a ``keras_cnnkit`` composite block with a spec."""
    from keras_cnnkit.blockspec import registered_specs
    return class_name in registered_specs()


def is_known(class_name: str) -> bool:
    """True when :func:`convert_layer` can analyse ``class_name`` (not opaque)."""
    return class_name in KNOWN_CLASSES or is_block(class_name)


def input_shape_of(config: dict) -> Shape:
    """The (batch-excluded) shape of an ``InputLayer`` config (Keras 3 or 2)."""
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if shape is not None:
        if not isinstance(shape, (list, tuple)) or len(shape) < 1:
            raise LayerConfigError(f"bad input batch shape {shape!r}")
        return tuple(shape[1:])
    shape = config.get("shape", config.get("input_shape"))
    if not isinstance(shape, (list, tuple)):
        raise LayerConfigError("an InputLayer config needs `batch_shape` or `shape`")
    return tuple(shape)


def _check_dims(shape: Shape, where: str) -> None:
    for d in shape:
        if d is not None and (not isinstance(d, int) or isinstance(d, bool) or d < 0):
            raise LayerConfigError(f"{where}: bad dimension {d!r} in shape {shape!r}")


def opaque_node(name: str, class_name: str, inputs: Sequence[str], input_shapes: Sequence,
                output_shape: Optional[Shape] = None, reason: str = "",
                layer: Optional[str] = None) -> Node:
    """An :data:`~keras_cnnkit.analysis.ir.OpKind.OPAQUE` node for a layer nobody analyses.

    ``output_shape`` is what the frontend observed (``None`` if unknown); ``reason`` says
    why it is opaque (``"unknown class"``, a config error...).
    """
    attrs = {"class_name": class_name}
    if reason:
        attrs["reason"] = reason
    return Node(name=name, op=OpKind.OPAQUE, inputs=list(inputs),
                input_shapes=[None if s is None else tuple(s) for s in input_shapes],
                output_shape=None if output_shape is None else tuple(output_shape),
                attrs=attrs, layer=layer or name, source_class=class_name)


def infer_layer(class_name: str, config: dict, input_shapes: Sequence) -> tuple:
    """``(op kind, attrs, output shape)`` of a layer that maps to one IR node.

    For the two-node layers (separable and deformable convolutions) this describes the
    node holding the layer's output.  Raises :class:`LayerConfigError` or
    :class:`~keras_cnnkit.analysis.shapes.ShapeError` on a bad config; ``KeyError`` for a
    class the table does not know.
    """
    expansion = convert_layer("layer", class_name, config,
                              [f"in{i}" for i in range(len(input_shapes))], input_shapes)
    node = expansion.nodes[-1]
    return node.op, node.attrs, node.output_shape


def convert_layer(name: str, class_name: str, config: dict, inputs: Sequence[str],
                  input_shapes: Sequence, layer: Optional[str] = None,
                  data_format: Optional[str] = None, observed_shape: Optional[Shape] = None,
                  unknown: str = "opaque") -> Expansion:
    """The IR nodes of one call of a Keras layer.

    Args:
        name: the name of the node holding the layer's output (unique in the graph).
        class_name: the layer class (``"Conv2D"``) or a composite block class.
        config: the layer's config (``layer.get_config()`` or the file's ``config``).
        inputs: the graph names of the nodes feeding the call, in argument order.
        input_shapes: their shapes (batch excluded); ``None`` where unknown.
        layer: the user-facing layer name findings report (default ``name``).
        data_format: the layout to record on ops that have none of their own (activations,
            merges, dropout) — the producer's, so ``Node.channels()`` is right there too.
        observed_shape: the output shape the frontend knows (used for opaque layers).
        unknown: ``"opaque"`` to map an unknown class to an opaque node, ``"raise"`` to
            raise ``KeyError``.

    Raises:
        LayerConfigError, ShapeError: the config or the shapes are inconsistent.
    """
    layer = layer or name
    if not isinstance(config, dict):
        raise LayerConfigError(f"layer {name!r}: config must be a mapping")
    if class_name == "InputLayer":
        shape = input_shape_of(config)
        _check_dims(shape, f"layer {name!r}")
        return Expansion([Node(name=name, op=OpKind.INPUT, attrs={"shape": shape},
                               output_shape=shape, layer=layer, source_class=class_name)], name)
    handler = _TABLE.get(class_name)
    if handler is None:
        if is_block(class_name):
            if len(inputs) != 1:
                raise LayerConfigError(f"block {name!r} ({class_name}) takes one input")
            return expand_block(name, class_name, config, input_shapes[0], inputs[0],
                                layer_prefix=layer)
        if unknown == "raise":
            raise KeyError(class_name)
        return Expansion([opaque_node(name, class_name, inputs, input_shapes, observed_shape,
                                      "unknown layer class", layer)], name)
    if not input_shapes:
        raise LayerConfigError(f"layer {name!r} ({class_name}) has no inputs")
    shapes = list(input_shapes)
    if any(s is None for s in shapes):
        # Downstream of an opaque op: the op is known but its shapes are not.
        return Expansion([opaque_node(name, class_name, inputs, shapes, observed_shape,
                                      INPUT_SHAPE_UNKNOWN, layer)], name)
    try:
        parts = handler(config, shapes)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, (LayerConfigError, ShapeError)):
            raise type(exc)(f"layer {name!r} ({class_name}): {exc}") from None
        raise LayerConfigError(f"layer {name!r} ({class_name}): bad config: "
                               f"{type(exc).__name__}: {exc}") from None
    return _materialise(name, class_name, parts, inputs, shapes, layer, data_format)


def _materialise(name: str, class_name: str, parts: list, inputs: Sequence, shapes: list,
                 layer: str, data_format: Optional[str]) -> Expansion:
    nodes, by_suffix = [], {}
    for suffix, op, attrs, refs in parts:
        node_name = f"{name}/{suffix}" if suffix else name
        if refs is None:
            node_inputs, node_shapes = list(inputs), list(shapes)
        else:
            node_inputs, node_shapes = [], []
            for ref in refs:
                if ref is None:
                    node_inputs.append(inputs[0])
                    node_shapes.append(shapes[0])
                else:
                    node_inputs.append(by_suffix[ref].name)
                    node_shapes.append(by_suffix[ref].output_shape)
        if data_format and "data_format" not in attrs:
            attrs = dict(attrs, data_format=data_format)
        try:
            out = infer_shape(op, attrs, node_shapes)
        except ShapeError as exc:
            raise ShapeError(f"layer {name!r} ({class_name}): {exc}") from None
        try:
            node = Node(name=node_name, op=op, inputs=node_inputs, input_shapes=node_shapes,
                        output_shape=out, attrs=attrs, layer=layer, source_class=class_name)
        except AttrsError as exc:
            raise LayerConfigError(f"layer {name!r} ({class_name}): {exc}") from None
        nodes.append(node)
        by_suffix[suffix] = node
    return Expansion(nodes, by_suffix[""].name)


def expand_block(layer_name: str, class_name: str, config: dict, input_shape: Optional[Shape],
                 input_name: str, layer_prefix: Optional[str] = None) -> Expansion:
    """Expand composite block ``class_name`` into IR nodes through its block spec.

    Each op of the spec becomes the node ``f"{layer_name}/{op.name}"`` (``layer`` is the
    same path, under ``layer_prefix`` when given).  Blocks nested in blocks expand
    recursively.  ``input_shape`` excludes the batch dimension; ``input_name`` is the
    graph node feeding the block.
    """
    from keras_cnnkit.blockspec import get_spec
    from keras_cnnkit.blockspec.core import BLOCK_INPUT, resolve_config

    layer_prefix = layer_prefix or layer_name
    args = {k: v for k, v in config.items() if k not in _BASE_LAYER_KEYS}
    if args.get("data_format", "") is None:
        args["data_format"] = "channels_last"
    if input_shape is None:
        return Expansion([opaque_node(layer_name, class_name, [input_name], [None], None,
                                      INPUT_SHAPE_UNKNOWN, layer_prefix)], layer_name)
    try:
        args = resolve_config(class_name, args)
        graph = get_spec(class_name)(args, (None, *input_shape))
    except (TypeError, ValueError, KeyError) as exc:
        raise LayerConfigError(f"layer {layer_name!r} ({class_name}): {exc}") from None
    names = {BLOCK_INPUT: input_name}
    shapes = {BLOCK_INPUT: tuple(input_shape)}
    formats = {BLOCK_INPUT: None}
    nodes = []
    for op in graph.ops:
        node_name = f"{layer_name}/{op.name}"
        in_names = [names[src] for src in op.inputs]
        in_shapes = [shapes[src] for src in op.inputs]
        sub = convert_layer(node_name, op.class_name, dict(op.config), in_names, in_shapes,
                            layer=f"{layer_prefix}/{op.name}",
                            data_format=formats[op.inputs[0]])
        nodes.extend(sub.nodes)
        out = next(n for n in reversed(sub.nodes) if n.name == sub.output)
        names[op.name] = sub.output
        shapes[op.name] = out.output_shape
        formats[op.name] = out.attrs.get("data_format", formats[op.inputs[0]])
    return Expansion(nodes, names[graph.output])
