"""Specs of ``ConvBNAct`` and ``DilatedConv``, and the op helpers every family shares.

``DilatedConv`` follows Yu & Koltun, "Multi-Scale Context Aggregation by Dilated
Convolutions", ICLR 2016 (seeds 001, 004: a larger receptive field with the same kernel).
"""
from __future__ import annotations

from keras_cnnkit.blockspec.core import (
    BLOCK_INPUT,
    REQUIRED,
    BlockGraph,
    Op,
    channel_axis,
    check_choice,
    check_int,
    check_number,
    check_size,
    register_spec,
    to_tuple,
    with_defaults,
)

_CONV_CLASSES = {1: "Conv1D", 2: "Conv2D"}
_DEPTHWISE_CLASSES = {1: "DepthwiseConv1D", 2: "DepthwiseConv2D"}
_POOL_CLASSES = {("avg", 1): "AveragePooling1D", ("avg", 2): "AveragePooling2D",
                 ("max", 1): "MaxPooling1D", ("max", 2): "MaxPooling2D"}
_GLOBAL_POOL_CLASSES = {("avg", 1): "GlobalAveragePooling1D",
                        ("avg", 2): "GlobalAveragePooling2D",
                        ("max", 1): "GlobalMaxPooling1D", ("max", 2): "GlobalMaxPooling2D"}


def act_op(name: str, activation, inputs: tuple) -> Op | None:
    """The op of ``activation``, or ``None`` for no activation.

    ``"relu6"`` becomes ``keras.layers.ReLU(max_value=6.0)``, exactly what
    keras.applications uses (so an emitted model needs no custom objects); any other
    name becomes ``keras.layers.Activation``.
    """
    if activation in (None, "linear"):
        return None
    if activation == "relu6":
        return Op(name, "ReLU", {"max_value": 6.0}, inputs)
    return Op(name, "Activation", {"activation": activation}, inputs)


def conv_op(name: str, rank: int, inputs: tuple, *, filters: int, kernel_size=1,
            strides=1, padding: str = "same", dilation_rate=1, groups: int = 1,
            use_bias: bool = False, data_format: str = "channels_last") -> Op:
    """A ``Conv1D``/``Conv2D`` op."""
    return Op(name, _CONV_CLASSES[rank], {
        "filters": filters,
        "kernel_size": to_tuple(kernel_size, rank, "kernel_size"),
        "strides": to_tuple(strides, rank, "strides"),
        "padding": padding,
        "dilation_rate": to_tuple(dilation_rate, rank, "dilation_rate"),
        "groups": groups,
        "use_bias": use_bias,
        "data_format": data_format,
    }, inputs)


def depthwise_op(name: str, rank: int, inputs: tuple, *, kernel_size=3, strides=1,
                 padding: str = "same", depth_multiplier: int = 1, dilation_rate=1,
                 use_bias: bool = False, data_format: str = "channels_last") -> Op:
    """A ``DepthwiseConv1D``/``DepthwiseConv2D`` op."""
    return Op(name, _DEPTHWISE_CLASSES[rank], {
        "kernel_size": to_tuple(kernel_size, rank, "kernel_size"),
        "strides": to_tuple(strides, rank, "strides"),
        "padding": padding,
        "depth_multiplier": depth_multiplier,
        "dilation_rate": to_tuple(dilation_rate, rank, "dilation_rate"),
        "use_bias": use_bias,
        "data_format": data_format,
    }, inputs)


def bn_op(name: str, inputs: tuple, data_format: str, epsilon: float = 1e-3,
          momentum: float = 0.99, scale: bool = True) -> Op:
    """A ``BatchNormalization`` op over the channel axis."""
    config = {"axis": channel_axis(data_format), "epsilon": epsilon, "momentum": momentum}
    if not scale:
        config["scale"] = False
    return Op(name, "BatchNormalization", config, inputs)


def pool_op(name: str, kind: str, rank: int, inputs: tuple, pool_size, strides,
            padding: str = "valid", data_format: str = "channels_last") -> Op:
    """An average (``kind="avg"``) or max pooling op."""
    return Op(name, _POOL_CLASSES[(kind, rank)], {
        "pool_size": to_tuple(pool_size, rank, "pool_size"),
        "strides": to_tuple(strides, rank, "strides"),
        "padding": padding,
        "data_format": data_format,
    }, inputs)


def global_pool_op(name: str, kind: str, rank: int, inputs: tuple, data_format: str,
                   keepdims: bool = False) -> Op:
    """A global average (``kind="avg"``) or max pooling op."""
    return Op(name, _GLOBAL_POOL_CLASSES[(kind, rank)],
              {"data_format": data_format, "keepdims": keepdims}, inputs)


def concat_op(name: str, inputs: tuple, data_format: str) -> Op:
    """A ``Concatenate`` op over the channel axis."""
    return Op(name, "Concatenate", {"axis": channel_axis(data_format)}, inputs)


def append_ops(ops: list, *new) -> str:
    """Append the non-``None`` ops of ``new`` to ``ops``; return the last op's name."""
    for op in new:
        if op is not None:
            ops.append(op)
    return ops[-1].name


def conv_bn_act_ops(prefix: str, cfg: dict, inputs: tuple, rank: int,
                    bn_scale: bool = True) -> list:
    """The ops of one conv + BN + activation, named ``prefix + conv|bn|act``.

    ``cfg`` holds the conv arguments (``filters``, ``kernel_size``, ``strides``,
    ``padding``, ``dilation_rate``, ``groups``, ``use_bias``, ``data_format``) and
    ``use_bn``, ``bn_epsilon``, ``bn_momentum``, ``activation``; missing ones take
    ``ConvBNAct``'s defaults.
    """
    use_bn = cfg.get("use_bn", True)
    data_format = cfg.get("data_format", "channels_last")
    use_bias = cfg.get("use_bias")
    ops = [conv_op(prefix + "conv", rank, inputs, filters=cfg["filters"],
                   kernel_size=cfg.get("kernel_size", 3), strides=cfg.get("strides", 1),
                   padding=cfg.get("padding", "same"),
                   dilation_rate=cfg.get("dilation_rate", 1), groups=cfg.get("groups", 1),
                   use_bias=(not use_bn) if use_bias is None else use_bias,
                   data_format=data_format)]
    if use_bn:
        ops.append(bn_op(prefix + "bn", (ops[-1].name,), data_format,
                         cfg.get("bn_epsilon", 1e-3), cfg.get("bn_momentum", 0.99),
                         scale=bn_scale))
    append_ops(ops, act_op(prefix + "act", cfg.get("activation"), (ops[-1].name,)))
    return ops


def rank_of(input_shape: tuple, block: str, ranks: tuple = (1, 2)) -> int:
    """The spatial rank of a batched input shape; ``ValueError`` if not in ``ranks``."""
    rank = len(input_shape) - 2
    if rank not in ranks:
        raise ValueError(f"{block} takes inputs of spatial rank {ranks} (with batch and "
                         f"channels), got shape {tuple(input_shape)}")
    return rank


def spatial_of(input_shape: tuple, data_format: str) -> tuple:
    """The spatial dimensions of a batched shape."""
    return tuple(input_shape[1:-1] if data_format == "channels_last" else input_shape[2:])


def check_common(cfg: dict) -> dict:
    """Validate the arguments every block shares, where ``cfg`` has them.

    ``filters`` is checked here when it is a single width (blocks whose ``filters``
    is a tuple of widths check it themselves).
    """
    if isinstance(cfg.get("filters"), int):
        check_int(cfg["filters"], "filters")
    for key in ("kernel_size", "strides", "dilation_rate"):
        if key in cfg:
            check_size(cfg[key], key)
    if "padding" in cfg:
        check_choice(cfg["padding"], "padding", ("same", "valid"))
    if "data_format" in cfg:
        channel_axis(cfg["data_format"])
    if "groups" in cfg:
        check_int(cfg["groups"], "groups")
        if "filters" in cfg and cfg["filters"] % cfg["groups"]:
            raise ValueError(f"`filters` ({cfg['filters']}) must be divisible by "
                             f"`groups` ({cfg['groups']})")
    if "bn_epsilon" in cfg:
        check_number(cfg["bn_epsilon"], "bn_epsilon", 0.0, low_inclusive=False)
    if "bn_momentum" in cfg:
        check_number(cfg["bn_momentum"], "bn_momentum", 0.0, 1.0)
    return cfg


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def check_strides_dilation(cfg: dict) -> dict:
    """Keras convs cannot have ``strides`` > 1 and ``dilation_rate`` > 1 together."""
    strided = any(s > 1 for s in _as_list(cfg.get("strides", 1)))
    if strided and any(d > 1 for d in _as_list(cfg.get("dilation_rate", 1))):
        raise ValueError("`strides` > 1 cannot be combined with `dilation_rate` > 1")
    return cfg


def check_in_channels(in_channels: int, groups: int, block: str) -> None:
    """Raise ``ValueError`` unless the input channels divide into ``groups``."""
    if in_channels % groups:
        raise ValueError(f"{block}: input channels ({in_channels}) must be divisible by "
                         f"`groups` ({groups})")


CONV_BN_ACT_DEFAULTS = {
    "filters": REQUIRED, "kernel_size": 3, "strides": 1, "padding": "same",
    "dilation_rate": 1, "groups": 1, "activation": "relu", "use_bn": True,
    "use_bias": None, "data_format": None, "bn_epsilon": 1e-3,
    "bn_momentum": 0.99, "bn_scale": True,
}


def _resolve_conv_bn_act(config: dict, block: str = "ConvBNAct",
                         defaults: dict | None = None) -> dict:
    cfg = check_strides_dilation(
        check_common(with_defaults(block, config, defaults or CONV_BN_ACT_DEFAULTS)))
    if cfg["use_bias"] is None:
        cfg["use_bias"] = not cfg["use_bn"]
    return cfg


def _conv_bn_act_graph(cfg: dict, input_shape: tuple, block: str) -> BlockGraph:
    rank = rank_of(input_shape, block)
    for key in ("kernel_size", "strides", "dilation_rate"):
        to_tuple(cfg[key], rank, key)
    check_in_channels(input_shape[channel_axis(cfg["data_format"])], cfg["groups"], block)
    ops = conv_bn_act_ops("", cfg, (BLOCK_INPUT,), rank, bn_scale=cfg["bn_scale"])
    return BlockGraph(tuple(ops), ops[-1].name)


@register_spec("ConvBNAct", resolve=_resolve_conv_bn_act, defaults=CONV_BN_ACT_DEFAULTS)
def conv_bn_act(config: dict, input_shape: tuple) -> BlockGraph:
    """conv → BN (optional) → activation (optional); rank from the input shape."""
    return _conv_bn_act_graph(_resolve_conv_bn_act(config), input_shape, "ConvBNAct")


DILATED_CONV_DEFAULTS = {**CONV_BN_ACT_DEFAULTS, "dilation_rate": 2}


def _resolve_dilated(config: dict) -> dict:
    return _resolve_conv_bn_act(config, "DilatedConv", DILATED_CONV_DEFAULTS)


@register_spec("DilatedConv", resolve=_resolve_dilated, defaults=DILATED_CONV_DEFAULTS)
def dilated_conv(config: dict, input_shape: tuple) -> BlockGraph:
    """A dilated (atrous) conv → BN → activation: receptive field ``d·(k−1)+1``."""
    return _conv_bn_act_graph(_resolve_dilated(config), input_shape, "DilatedConv")
