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

The table covers every ``keras.layers`` class; those it does not analyse are listed in
:data:`NOT_ANALYSED` with the reason their opaque node gives.  Image preprocessing and
keras.applications' own layers are in :mod:`.image_layers`, attention, recurrent and text
layers in :mod:`.sequence_layers`; operations recorded in graphs (``keras.ops`` calls,
Keras 2 ``TFOpLambda``) map through :mod:`.keras_ops` (``convert_layer``'s
``arguments``).  A well-formed layer the IR cannot express raises
:class:`~.layer_config.NotAnalysable` in its handler and becomes an opaque node with that
reason; a malformed config is an error.

Layers that become more than one node:

* ``SeparableConv1D/2D`` → a depthwise node ``"<name>/depthwise"`` (no bias, no
  activation) feeding the pointwise 1×1 node ``"<name>"`` (the layer's bias and
  activation).  Both carry ``layer=<name>``.  Rules therefore see the depthwise and the
  pointwise convolution separately, and the costs add up to the layer's.
* composite ``keras_cnnkit`` blocks, as above;
* ``Pipeline``: its layers one after the other;
* an operation with several outputs (``keras.ops.split``): a node per output
  (:attr:`Expansion.outputs`).

A fused ``activation`` of a conv or dense layer stays an attribute of its node
(``attrs["activation"]``, ``None`` when linear); the cost model counts it.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

from keras_cnnkit.analysis.ir import Node, OpKind, Shape
from keras_cnnkit.analysis.keras_ops import (
    TF_OP_LAYERS,
    CallArguments,
    Outputs,
    convert_op,
    op_name,
)
from keras_cnnkit.analysis.layer_config import (
    LayerConfigError,
    NotAnalysable,
    activation_name,
    axes_indices,
    axis_index,
    data_format_of,
    in_channels,
    ints,
    pads,
    positive,
    positive_ints,
    value_of,
)
from keras_cnnkit.analysis.ops import AttrsError
from keras_cnnkit.analysis.image_layers import HANDLERS as IMAGE_HANDLERS
from keras_cnnkit.analysis.sequence_layers import HANDLERS as SEQUENCE_HANDLERS
from keras_cnnkit.analysis.sequence_layers import (
    NAMED_INPUTS,
    NAMED_INPUTS_KEY,
    named_inputs,
    nested_layer,
)
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.ops.einsum import EINSUM, EINSUM_DENSE
from keras_cnnkit.analysis.ops.layer_scale import LAYER_SCALE
from keras_cnnkit.analysis.ops.opaque import INPUT_SHAPE_UNKNOWN
from keras_cnnkit.analysis.ops.reduce import REDUCE
from keras_cnnkit.analysis.ops.state import STATE
from keras_cnnkit.analysis.shapes import ShapeError, infer_shape


@dataclasses.dataclass
class Expansion:
    """The IR nodes of one layer call, in topological order, and its output node.

    ``outputs`` names the node of each output of a call with several (``keras.ops.split``);
    it is ``[output]`` otherwise.
    """

    nodes: list
    output: str
    outputs: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if not self.outputs:
            self.outputs = [self.output]


# --- handlers: (config, input_shapes) -> [(suffix, op, attrs, input_suffixes)] ------------
# All handlers share one signature, so some ignore an argument.
# pylint: disable=unused-argument
# ``suffix`` "" names the node after the layer; ``input_suffixes`` None means the layer's
# own inputs, else the suffixes of earlier nodes of the same layer.

Handler = Callable[[dict, list], list]


def _conv_attrs(config: dict, shapes: list, rank: int, class_name: str) -> dict:
    fmt = data_format_of(config)
    padding = value_of(config, "padding", "valid")
    if padding not in ("valid", "same", "causal"):
        raise LayerConfigError(f"unknown padding {padding!r}")
    return {
        "rank": rank,
        "kernel": positive_ints(config.get("kernel_size"), rank, "kernel_size"),
        "strides": positive_ints(value_of(config, "strides", 1), rank, "strides"),
        "dilation": positive_ints(value_of(config, "dilation_rate", 1), rank, "dilation_rate"),
        "padding": padding,
        "in_channels": in_channels(shapes, fmt, class_name),
        "use_bias": bool(value_of(config, "use_bias", True)),
        "activation": activation_name(config.get("activation")),
        "data_format": fmt,
    }


def _conv(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        attrs = _conv_attrs(config, shapes, rank, f"Conv{rank}D")
        groups = positive(value_of(config, "groups", 1), "groups")
        filters = positive(config.get("filters"), "filters")
        if attrs["in_channels"] % groups or filters % groups:
            raise LayerConfigError(f"groups={groups} does not divide {attrs['in_channels']} "
                                   f"input and {filters} output channels")
        attrs.update(groups=groups, filters=filters)
        return [("", OpKind.CONV, attrs, None)]
    return handler


def _depthwise(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        attrs = _conv_attrs(config, shapes, rank, f"DepthwiseConv{rank}D")
        multiplier = positive(value_of(config, "depth_multiplier", 1), "depth_multiplier")
        attrs.update(groups=attrs["in_channels"], depth_multiplier=multiplier,
                     filters=attrs["in_channels"] * multiplier)
        return [("", OpKind.DEPTHWISE_CONV, attrs, None)]
    return handler


def _separable(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        attrs = _conv_attrs(config, shapes, rank, f"SeparableConv{rank}D")
        multiplier = positive(value_of(config, "depth_multiplier", 1), "depth_multiplier")
        depthwise = dict(attrs, groups=attrs["in_channels"], depth_multiplier=multiplier,
                         filters=attrs["in_channels"] * multiplier, use_bias=False,
                         activation=None)
        pointwise = dict(attrs, kernel=(1,) * rank, strides=(1,) * rank,
                         dilation=(1,) * rank, padding="valid", groups=1,
                         in_channels=depthwise["filters"],
                         filters=positive(config.get("filters"), "filters"))
        return [("depthwise", OpKind.DEPTHWISE_CONV, depthwise, None),
                ("", OpKind.CONV, pointwise, ("depthwise",))]
    return handler


def _conv_transpose(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        attrs = _conv_attrs(config, shapes, rank, f"Conv{rank}DTranspose")
        out_pad = config.get("output_padding")
        attrs.update(groups=positive(value_of(config, "groups", 1), "groups"),
                     filters=positive(config.get("filters"), "filters"),
                     output_padding=None if out_pad is None else ints(out_pad, rank,
                                                                       "output_padding"))
        return [("", OpKind.CONV_TRANSPOSE, attrs, None)]
    return handler


def _dense(config: dict, shapes: list) -> list:
    in_features = shapes[0][-1] if shapes[0] else None
    if in_features is None:
        raise ShapeError(f"Dense needs a known last dimension, got input {shapes[0]}")
    return [("", OpKind.DENSE, {
        "in_features": in_features,
        "units": positive(config.get("units"), "units"),
        "use_bias": bool(value_of(config, "use_bias", True)),
        "activation": activation_name(config.get("activation")),
    }, None)]


def _embedding(config: dict, shapes: list) -> list:
    return [("", OpKind.EMBEDDING, {
        "input_dim": positive(config.get("input_dim"), "input_dim"),
        "output_dim": positive(config.get("output_dim"), "output_dim"),
    }, None)]


def _batchnorm(config: dict, shapes: list) -> list:
    rank = len(shapes[0])
    axis = axis_index(value_of(config, "axis", -1), rank)
    fmt = "channels_first" if axis == 0 and rank > 1 else "channels_last"
    return [("", OpKind.BATCHNORM, {
        "axis": axis, "channels": shapes[0][axis], "data_format": fmt,
        "center": bool(value_of(config, "center", True)),
        "scale": bool(value_of(config, "scale", True)),
        "epsilon": value_of(config, "epsilon", 1e-3),
    }, None)]


def _norm_size(shape: Shape, axes: tuple) -> Optional[int]:
    return prod(shape[a] for a in axes)


def _layer_norm(config: dict, shapes: list) -> list:
    axes = axes_indices(value_of(config, "axis", -1), len(shapes[0]))
    rms = bool(config.get("rms_scaling", False))
    return [("", OpKind.NORM, {
        "kind": "layer", "axes": axes, "norm_size": _norm_size(shapes[0], axes),
        "center": bool(value_of(config, "center", True)) and not rms,
        "scale": bool(value_of(config, "scale", True)),
        "epsilon": float(value_of(config, "epsilon", 1e-3)),
    }, None)]


def _group_norm(config: dict, shapes: list) -> list:
    axis = axis_index(value_of(config, "axis", -1), len(shapes[0]))
    return [("", OpKind.NORM, {
        "kind": "group", "axes": (axis,), "groups": positive(config.get("groups", 32), "groups"),
        "norm_size": shapes[0][axis],
        "center": bool(value_of(config, "center", True)),
        "scale": bool(value_of(config, "scale", True)),
        "epsilon": float(value_of(config, "epsilon", 1e-3)),
    }, None)]


def _unit_norm(config: dict, shapes: list) -> list:
    axes = axes_indices(value_of(config, "axis", -1), len(shapes[0]))
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
    slope = value_of(config, "negative_slope", 0.0)
    threshold = value_of(config, "threshold", 0.0)
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
    return [("", OpKind.CONCAT, {"axis": axis_index(value_of(config, "axis", -1), len(shapes[0]))},
             None)]


def _pool(kind: str, rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        size = positive_ints(value_of(config, "pool_size", 2), rank, "pool_size")
        padding = value_of(config, "padding", "valid")
        if padding not in ("valid", "same"):
            raise LayerConfigError(f"unknown padding {padding!r}")
        return [("", OpKind.POOL, {
            "pool_type": kind, "rank": rank, "pool_size": size,
            "strides": positive_ints(value_of(config, "strides", size), rank, "strides"),
            "padding": padding, "data_format": data_format_of(config),
        }, None)]
    return handler


def _global_pool(kind: str, rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", OpKind.GLOBAL_POOL, {
            "pool_type": kind, "rank": rank, "keepdims": bool(config.get("keepdims", False)),
            "data_format": data_format_of(config),
        }, None)]
    return handler


def _flatten(config: dict, shapes: list) -> list:
    return [("", OpKind.FLATTEN, {"data_format": data_format_of(config)}, None)]


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
            attrs["data_format"] = data_format_of(config)
        return [("", OpKind.DROPOUT, attrs, None)]
    return handler


def _identity(config: dict, shapes: list) -> list:
    return [("", OpKind.IDENTITY, {}, None)]


def _pad(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", OpKind.PAD, {"padding": pads(value_of(config, "padding", 1), rank, "padding"),
                                  "data_format": data_format_of(config)}, None)]
    return handler


def _crop(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        return [("", OpKind.CROP, {"cropping": pads(value_of(config, "cropping", 1), rank,
                                                     "cropping"),
                                   "data_format": data_format_of(config)}, None)]
    return handler


def _upsample(rank: int) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        key = "length" if rank == 1 and "length" in config else "size"
        return [("", OpKind.UPSAMPLE, {
            "size": positive_ints(value_of(config, key, 2), rank, key),
            "interpolation": value_of(config, "interpolation", "nearest"),
            "data_format": data_format_of(config) if rank > 1 else "channels_last",
        }, None)]
    return handler


def _rescaling(config: dict, shapes: list) -> list:
    return [("", OpKind.RESCALE, {"mode": "rescaling", "params": 0,
                                  "scale": _plain_value(value_of(config, "scale", 1.0)),
                                  "offset": _plain_value(value_of(config, "offset", 0.0))},
             None)]


def _plain_value(value):
    """A number, or a list of them, as given in a config (a serialised tensor's value)."""
    if isinstance(value, dict) and value.get("class_name") == "__tensor__":
        value = value.get("config", {}).get("value", value)
    if isinstance(value, (list, tuple)):
        return tuple(_plain_value(v) for v in value)
    return float(value) if isinstance(value, (int, float)) else value


def _normalization(config: dict, shapes: list) -> list:
    axes = axes_indices(value_of(config, "axis", -1), len(shapes[0]))
    size = _norm_size(shapes[0], axes)
    adapted = config.get("mean") is None
    # Keras keeps mean, variance and a count as (non-trainable) weights unless the mean
    # and variance are given as constants.
    params = (2 * size + 1) if adapted and size is not None else (None if adapted else 0)
    attrs = {"mode": "normalization", "params": params, "axes": axes}
    if not adapted and not config.get("invert"):
        # constants: (x − mean) / max(√variance, 1e-7), i.e. x · scale + offset
        attrs.update(_normalization_affine(config.get("mean"), config.get("variance")))
    return [("", OpKind.RESCALE, attrs, None)]


def _normalization_affine(mean, variance) -> dict:
    """``scale``/``offset`` of a ``Normalization`` given its constant mean and variance."""
    mean, variance = _plain_value(mean), _plain_value(variance)
    means = mean if isinstance(mean, tuple) else (mean,)
    variances = variance if isinstance(variance, tuple) else (variance,)
    if not all(isinstance(v, float) for v in means + variances) or \
            len(means) != len(variances) and 1 not in (len(means), len(variances)):
        return {}
    count = max(len(means), len(variances))
    means = means * count if len(means) == 1 else means
    variances = variances * count if len(variances) == 1 else variances
    scale = tuple(1.0 / max(v ** 0.5, 1e-7) for v in variances)
    offset = tuple(-m * k for m, k in zip(means, scale))
    if count == 1:
        return {"scale": scale[0], "offset": offset[0]}
    return {"scale": scale, "offset": offset}


def _channel_shuffle(config: dict, shapes: list) -> list:
    return [("", OpKind.CHANNEL_SHUFFLE, {
        "groups": positive(config.get("groups"), "groups"),
        "data_format": data_format_of(config)}, None)]


def _channel_slice(config: dict, shapes: list) -> list:
    fmt = data_format_of(config)
    rank = len(shapes[0])
    axis = 0 if fmt == "channels_first" else rank - 1
    if "axis" in config and config["axis"] is not None:
        axis = axis_index(config["axis"], rank)
    start = value_of(config, "start", 0)
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
    dg = positive(value_of(config, "deformable_groups", value_of(config, "offset_groups", 1)),
                   "deformable_groups")
    modulated = bool(config.get("modulated", config.get("use_mask", False)))
    taps = attrs["kernel"][0] * attrs["kernel"][1]
    offset = dict(attrs, filters=dg * taps * (3 if modulated else 2), groups=1, activation=None,
                  use_bias=True)
    main = dict(attrs, filters=positive(config.get("filters"), "filters"),
                groups=positive(value_of(config, "groups", 1), "groups"),
                deformable_groups=dg, modulated=modulated)
    return [("offset", OpKind.CONV, offset, None),
            ("", OpKind.DEFORM_CONV, main, (None, "offset"))]


def _layer_scale(config: dict, shapes: list) -> list:
    """ConvNeXt's ``LayerScale(init_values, projection_dim)``: ``x · γ`` over the last
    axis."""
    init = config.get("init_values")
    return [("", LAYER_SCALE, {
        "channels": positive(config.get("projection_dim"), "projection_dim"),
        "init_values": None if init is None else float(init),
        "data_format": "channels_last"}, None)]


def _einsum_dense(config: dict, shapes: list) -> list:
    """``EinsumDense(equation, output_shape, bias_axes)``."""
    equation = config.get("equation")
    if not isinstance(equation, str):
        raise LayerConfigError(f"`equation` must be a string, got {equation!r}")
    declared = config.get("output_shape")
    if isinstance(declared, int) or declared is None:
        declared = () if declared is None else (declared,)
    if not isinstance(declared, (list, tuple)) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in declared):
        raise LayerConfigError(f"bad `output_shape` {declared!r}")
    bias = config.get("bias_axes") or ""
    if not isinstance(bias, str):
        raise LayerConfigError(f"`bias_axes` must be a string, got {bias!r}")
    return [("", EINSUM_DENSE, {"equation": equation, "output_shape": tuple(declared),
                                "bias_axes": bias,
                                "activation": activation_name(config.get("activation"))},
             None)]


def _rms_norm(config: dict, shapes: list) -> list:
    axes = axes_indices(value_of(config, "axis", -1), len(shapes[0]))
    return [("", OpKind.NORM, {"kind": "rms", "axes": axes, "center": False, "scale": True,
                               "norm_size": _norm_size(shapes[0], axes),
                               "epsilon": float(value_of(config, "epsilon", 1e-6))}, None)]


def _repeat_vector(config: dict, shapes: list) -> list:
    """``RepeatVector(n)``: ``(F,)`` → ``(n, F)``, as a reshape to ``(1, F)`` and a
    nearest up-sampling of that axis."""
    if len(shapes[0]) != 1:
        raise LayerConfigError(f"RepeatVector reads (features,), not {shapes[0]}")
    return [("row", OpKind.RESHAPE, {"target_shape": (1, shapes[0][0])}, None),
            ("", OpKind.UPSAMPLE, {"size": (positive(config.get("n"), "n"),),
                                   "data_format": "channels_last"}, ("row",))]


def _dot(config: dict, shapes: list) -> list:
    """``Dot(axes, normalize)``: an Einstein sum over one axis of each input (after an
    L2 normalisation of both along it when ``normalize``)."""
    if len(shapes) != 2:
        raise LayerConfigError(f"Dot takes two inputs, got {len(shapes)}")
    axes = config.get("axes")
    axes = [axes, axes] if isinstance(axes, int) and not isinstance(axes, bool) else axes
    if not isinstance(axes, (list, tuple)) or len(axes) != 2:
        raise LayerConfigError(f"bad `axes` {axes!r}")
    ax = [axis_index(a, len(s)) for a, s in zip(axes, shapes)]
    left, right = "ijklmn"[:len(shapes[0])], list("opqrst"[:len(shapes[1])])
    right[ax[1]] = left[ax[0]]
    free = left.replace(left[ax[0]], "") + "".join(r for i, r in enumerate(right)
                                                   if i != ax[1])
    parts, refs = [], [0, 1]
    if config.get("normalize"):
        for i in (0, 1):
            parts.append((f"normalize_{i}", OpKind.NORM, {"kind": "unit", "axes": (ax[i],),
                                                          "norm_size": 0, "center": False,
                                                          "scale": False}, (i,)))
        refs = ["normalize_0", "normalize_1"]
    equation = f"z{left},z{''.join(right)}->z{free}"
    if free:
        return parts + [("", EINSUM, {"equation": equation}, tuple(refs))]
    return parts + [("sum", EINSUM, {"equation": equation}, tuple(refs)),
                    ("", OpKind.RESHAPE, {"target_shape": (1,)}, ("sum",))]


def _reversible_embedding(config: dict, shapes: list) -> list:
    """``ReversibleEmbedding``: an embedding look-up (its forward call); an untied
    output table is a ``state`` of ``output_dim · input_dim`` weights."""
    parts = _embedding(config, shapes)
    if value_of(config, "tie_weights", True):
        return parts
    size = positive(config.get("input_dim"), "input_dim") * positive(
        config.get("output_dim"), "output_dim")
    return [("lookup", *parts[0][1:])] + [
        ("", STATE, {"size": size, "what": "reverse embeddings"}, ("lookup",))]


#: Layers ``TimeDistributed`` may wrap that act on the last axis alone (their handler
#: applies to the whole ``(T, ...)`` input as it is).
_PER_STEP_AGNOSTIC = frozenset({
    "Dense", "EinsumDense", "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax",
    "Dropout", "GaussianDropout", "AlphaDropout", "GaussianNoise", "Identity", "Rescaling"})


def _time_distributed(config: dict, shapes: list) -> list:
    """``TimeDistributed(layer)`` over ``(T, ...)``: a convolution or pooling of rank
    ``r`` is the same op of rank ``r + 1`` with a window of 1 over time; a global pooling
    a reduction; a flatten a reshape; a layer of the last axis applies as it is."""
    name, inner = nested_layer(config.get("layer"))
    shape = shapes[0]
    rank = len(shape) - 2
    if name in _PER_STEP_AGNOSTIC:
        return _TABLE[name](inner, shapes)
    if data_format_of(inner) != "channels_last":
        raise NotAnalysable("a TimeDistributed channels_first layer")
    if name == "Flatten":
        return [("", OpKind.RESHAPE, {"target_shape": (shape[0], prod(shape[1:]))}, None)]
    if name.startswith("Global") and name.endswith(f"{rank}D"):
        kind = "max" if "Max" in name else "mean"
        return [("", REDUCE, {"reduction": kind, "axes": tuple(range(1, rank + 1)),
                              "keepdims": bool(inner.get("keepdims", False))}, None)]
    lifted = dict(inner)
    for key in ("kernel_size", "strides", "dilation_rate", "pool_size"):
        if key in inner or key == "strides":
            default = inner.get("pool_size", 1) if key == "strides" else 1
            lifted[key] = (1, *ints(value_of(inner, key, default), rank, key))
    for stem in (f"Conv{rank}D", f"MaxPooling{rank}D", f"AveragePooling{rank}D"):
        target = stem.replace(f"{rank}D", f"{rank + 1}D")
        if name == stem and target in _TABLE:
            return _TABLE[target](lifted, shapes)
    raise NotAnalysable(f"a TimeDistributed {name}")


def _spectral_norm(config: dict, shapes: list) -> list:
    """``SpectralNormalization(layer)``: the wrapped layer, and its power-iteration
    vector (one weight per output unit) as a ``state``."""
    name, inner = nested_layer(config.get("layer"))
    if name not in ("Dense", "Conv1D", "Conv2D", "Conv3D", "Embedding"):
        raise NotAnalysable(f"a SpectralNormalization of {name}")
    parts = _TABLE[name](inner, shapes)
    width = inner.get("units") or inner.get("filters") or inner.get("output_dim")
    return [("layer", *parts[-1][1:])] + [
        ("", STATE, {"size": positive(width, "units"), "what": "power-iteration vector"},
         ("layer",))]


#: Keras layer classes that are not analysed, and why (an opaque node with that reason).
NOT_ANALYSED = {
    "Lambda": "a Lambda's code is never loaded or run",
    "Layer": "the base class computes nothing of its own",
    "Wrapper": "the base class of wrappers computes nothing of its own",
    "InputSpec": "an input specification, not a layer",
    "TorchModuleWrapper": "wraps a PyTorch module, code the linter never loads",
    "JaxLayer": "wraps a JAX function, code the linter never loads",
    "FlaxLayer": "wraps a Flax module, code the linter never loads",
    "TFSMLayer": "wraps a TensorFlow SavedModel, a graph the linter does not read",
    "SimpleRNNCell": "an RNN cell is costed in the RNN layer that runs it",
    "LSTMCell": "an RNN cell is costed in the RNN layer that runs it",
    "GRUCell": "an RNN cell is costed in the RNN layer that runs it",
    "StackedRNNCells": "an RNN cell is costed in the RNN layer that runs it",
    "ConvLSTM1D": "convolutional recurrent layers are not modelled yet",
    "ConvLSTM2D": "convolutional recurrent layers are not modelled yet",
    "ConvLSTM3D": "convolutional recurrent layers are not modelled yet",
    "MelSpectrogram": "audio front ends (STFT, mel filter bank) are not modelled yet",
    "STFTSpectrogram": "audio front ends (STFT, mel filter bank) are not modelled yet",
}

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
        "EinsumDense": _einsum_dense,
        **IMAGE_HANDLERS,
        "RMSNormalization": _rms_norm,
        "RepeatVector": _repeat_vector,
        "Dot": _dot,
        "ReversibleEmbedding": _reversible_embedding,
        **SEQUENCE_HANDLERS,
        "TimeDistributed": _time_distributed,
        "SpectralNormalization": _spectral_norm,
    })
    return table


_TABLE = _table()

#: Layer classes the table understands (besides ``InputLayer`` and composite blocks).
KNOWN_CLASSES = frozenset(_TABLE) | {"InputLayer", "Pipeline", *TF_OP_LAYERS}

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


def producer_format(graph, inputs: Sequence[str]) -> Optional[str]:
    """The ``data_format`` of the node feeding a call (``None`` when it has none): what
    ops without a layout of their own record (``convert_layer``'s ``data_format``)."""
    producer = graph.nodes.get(inputs[0]) if inputs else None
    return producer.attrs.get("data_format") if producer is not None else None


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
                  unknown: str = "opaque", arguments: Optional[CallArguments] = None
                  ) -> Expansion:
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
        arguments: the call's arguments, for operations (``keras.ops.<Class>``,
            ``TFOpLambda``, ``SlicingOpLambda``) whose arguments say what they compute
            (:mod:`keras_cnnkit.analysis.keras_ops`).

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
    if class_name == "Pipeline" and len(inputs) == 1:
        return _pipeline(name, config, inputs[0], input_shapes[0], layer, data_format)
    operation = op_name(class_name, config)
    if operation is not None:
        return _convert_op(name, operation, config, arguments, inputs, input_shapes, layer,
                           data_format, observed_shape)
    handler = _TABLE.get(class_name)
    if class_name in NOT_ANALYSED:
        return Expansion([opaque_node(name, class_name, inputs, input_shapes, observed_shape,
                                      NOT_ANALYSED[class_name], layer)], name)
    if class_name in NAMED_INPUTS:
        config = dict(config, **{NAMED_INPUTS_KEY: named_inputs(NAMED_INPUTS[class_name],
                                                                  arguments)})
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
    except NotAnalysable as exc:
        return Expansion([opaque_node(name, class_name, inputs, shapes, observed_shape,
                                      str(exc), layer)], name)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, (LayerConfigError, ShapeError)):
            raise type(exc)(f"layer {name!r} ({class_name}): {exc}") from None
        raise LayerConfigError(f"layer {name!r} ({class_name}): bad config: "
                               f"{type(exc).__name__}: {exc}") from None
    return _materialise(name, class_name, parts, inputs, shapes, layer, data_format)


def _pipeline(name: str, config: dict, source: str, shape: Optional[Shape], layer: str,
              data_format: Optional[str]) -> Expansion:
    """``Pipeline(layers)``: its layers called one after the other (nodes
    ``"<name>/<layer>"``); only Keras' own classes."""
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries:
        raise LayerConfigError(f"layer {name!r} (Pipeline): no `layers` list")
    nodes: list = []
    for i, entry in enumerate(entries):
        try:
            class_name, sub_config = nested_layer(entry)
        except NotAnalysable as exc:
            return Expansion([opaque_node(name, "Pipeline", [source], [shape], None,
                                          str(exc), layer)], name)
        local = str(sub_config.get("name") or i)
        sub = convert_layer(f"{name}/{local}", class_name, sub_config, [source], [shape],
                            layer=f"{layer}/{local}", data_format=data_format)
        nodes.extend(sub.nodes)
        out = next(n for n in sub.nodes if n.name == sub.output)
        source, shape = sub.output, out.output_shape
    return Expansion(nodes, source)


def _convert_op(name: str, operation: str, config: dict, arguments: Optional[CallArguments],
                inputs: Sequence[str], input_shapes: Sequence, layer: str,
                data_format: Optional[str], observed_shape: Optional[Shape]) -> Expansion:
    """The nodes of an operation call (:mod:`.keras_ops`), or an opaque node saying why
    there are none."""
    shapes = list(input_shapes)
    if not shapes or any(s is None for s in shapes):
        reason = INPUT_SHAPE_UNKNOWN if shapes else "no tensor input"
        return Expansion([opaque_node(name, operation, inputs, shapes, observed_shape,
                                      reason, layer)], name)
    try:
        parts = convert_op(operation, config, arguments, shapes, data_format)
        return _materialise(name, operation, parts, inputs, shapes, layer, data_format)
    except KeyError:
        reason = "operation not modelled"
    except (LayerConfigError, ShapeError) as exc:
        reason = str(exc).replace(f"layer {name!r} ({operation}): ", "")
    return Expansion([opaque_node(name, operation, inputs, shapes, observed_shape, reason,
                                  layer)], name)


def _materialise(name: str, class_name: str, parts, inputs: Sequence, shapes: list,
                 layer: str, data_format: Optional[str]) -> Expansion:
    """Nodes from a handler's parts (``(suffix, op, attrs, inputs)``; ``inputs``: ``None``
    for the layer's own, else input numbers (ints) or earlier parts' suffixes (``None``:
    input 0)), or from an :class:`~.keras_ops.Outputs` of several outputs."""
    outputs = ("",)
    if isinstance(parts, Outputs):
        parts, outputs = parts.parts, parts.outputs
    nodes, by_suffix = [], {}
    for suffix, op, attrs, refs in parts:
        node_name = f"{name}/{suffix}" if suffix else name
        if refs is None:
            node_inputs, node_shapes = list(inputs), list(shapes)
        else:
            node_inputs, node_shapes = [], []
            for ref in refs:
                if ref is None or isinstance(ref, int):
                    node_inputs.append(inputs[ref or 0])
                    node_shapes.append(shapes[ref or 0])
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
    names = [by_suffix[suffix].name for suffix in outputs]
    return Expansion(nodes, names[0], names)


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
