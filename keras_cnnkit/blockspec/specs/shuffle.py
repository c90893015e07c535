"""Spec of ``ShuffleUnit`` (ShuffleNet v1 and v2 units).

* Zhang, Zhou, Lin & Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural
  Network for Mobile Devices", CVPR 2018, https://arxiv.org/abs/1707.01083 (seeds 001,
  004).
* Ma, Zhang, Zheng & Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN
  Architecture Design", ECCV 2018, https://arxiv.org/abs/1807.11164.
"""
from __future__ import annotations

from keras_cnnkit.blockspec.core import (
    BLOCK_INPUT,
    REQUIRED,
    BlockGraph,
    Op,
    channels_of,
    check_choice,
    check_int,
    check_number,
    register_spec,
    with_defaults,
)
from keras_cnnkit.blockspec.specs.conv import (
    act_op,
    append_ops,
    bn_op,
    check_common,
    concat_op,
    conv_op,
    depthwise_op,
    pool_op,
)

SHUFFLE_UNIT_DEFAULTS = {
    "filters": REQUIRED, "strides": 1, "version": 2, "groups": 3, "bottleneck_ratio": 0.25,
    "first_group_conv": True, "group_implementation": "auto", "activation": "relu",
    "data_format": None, "bn_epsilon": 1e-3, "bn_momentum": 0.99,
}


def _resolve(config: dict) -> dict:
    cfg = with_defaults("ShuffleUnit", config, SHUFFLE_UNIT_DEFAULTS)
    check_int(cfg["groups"], "groups")
    groups = cfg.pop("groups")
    check_common(cfg)  # `filters` need not divide by `groups`: the branch width does.
    cfg["groups"] = groups
    check_choice(cfg["strides"], "strides", (1, 2))
    check_choice(cfg["version"], "version", (1, 2))
    check_number(cfg["bottleneck_ratio"], "bottleneck_ratio", 0.0, 1.0, low_inclusive=False)
    check_choice(cfg["group_implementation"], "group_implementation",
                 ("native", "split", "auto"))
    if cfg["version"] == 2 and cfg["filters"] % 2:
        raise ValueError(f"`filters` ({cfg['filters']}) must be even for a v2 unit")
    return cfg


def group_conv_op(name: str, inputs: tuple, filters: int, groups: int, cfg: dict) -> Op:
    """A 1×1 ``GroupConv`` op without bias (a plain ``Conv2D`` when ``groups`` is 1)."""
    if groups == 1:
        return conv_op(name, 2, inputs, filters=filters, data_format=cfg["data_format"])
    return Op(name, "GroupConv", {
        "filters": filters, "kernel_size": (1, 1), "strides": (1, 1), "padding": "same",
        "groups": groups, "use_bias": False, "implementation": cfg["group_implementation"],
        "data_format": cfg["data_format"]}, inputs, "keras_cnnkit")


def _v1(cfg: dict, in_channels: int) -> tuple:
    g, fmt, out = cfg["groups"], cfg["data_format"], cfg["filters"]
    bn = (fmt, cfg["bn_epsilon"], cfg["bn_momentum"])
    branch_out = out if cfg["strides"] == 1 else out - in_channels
    mid = int(out * cfg["bottleneck_ratio"])
    g1 = g if cfg["first_group_conv"] else 1
    if cfg["strides"] == 1 and in_channels != out:
        raise ValueError(f"ShuffleUnit: a stride-1 v1 unit needs `filters` ({out}) equal to "
                         f"the input channels ({in_channels})")
    if branch_out < 1:
        raise ValueError(f"ShuffleUnit: a stride-2 v1 unit needs `filters` ({out}) larger "
                         f"than the input channels ({in_channels})")
    for what, value, groups in (("input channels", in_channels, g1),
                                ("bottleneck channels", mid, g),
                                ("branch output channels", branch_out, g)):
        if value < 1 or value % groups:
            raise ValueError(f"ShuffleUnit: {what} ({value}) must be a positive multiple of "
                             f"`groups` ({groups})")
    ops: list = []
    append_ops(ops, group_conv_op("gconv1", (BLOCK_INPUT,), mid, g1, cfg),
               bn_op("gconv1_bn", ("gconv1",), *bn),
               act_op("gconv1_relu", cfg["activation"], ("gconv1_bn",)))
    if g1 > 1:
        append_ops(ops, Op("shuffle", "ChannelShuffle", {"groups": g, "data_format": fmt},
                           (ops[-1].name,), "keras_cnnkit"))
    append_ops(ops, depthwise_op("dw", 2, (ops[-1].name,), strides=cfg["strides"],
                                 data_format=fmt),
               bn_op("dw_bn", ("dw",), *bn),
               group_conv_op("gconv2", ("dw_bn",), branch_out, g, cfg),
               bn_op("gconv2_bn", ("gconv2",), *bn))
    if cfg["strides"] == 1:
        merged = append_ops(ops, Op("add", "Add", {}, (BLOCK_INPUT, "gconv2_bn")))
    else:
        append_ops(ops, pool_op("shortcut_pool", "avg", 2, (BLOCK_INPUT,), 3, 2, "same", fmt))
        merged = append_ops(ops, concat_op("concat", ("shortcut_pool", "gconv2_bn"), fmt))
    return ops, append_ops(ops, act_op("relu", cfg["activation"], (merged,)))


def _v2_branch(ops: list, prefix: str, src: str, mid: int, out: int, cfg: dict) -> str:
    """1×1 → BN → act → 3×3 depthwise/s → BN → 1×1 → BN → act, named ``prefix…``."""
    fmt = cfg["data_format"]
    bn = (fmt, cfg["bn_epsilon"], cfg["bn_momentum"])
    act = cfg["activation"]
    last = append_ops(ops, conv_op(prefix + "pw1", 2, (src,), filters=mid, data_format=fmt))
    last = append_ops(ops, bn_op(prefix + "pw1_bn", (last,), *bn))
    last = append_ops(ops, act_op(prefix + "pw1_relu", act, (last,)))
    return _v2_dw_pw(ops, prefix, last, out, cfg)


def _v2_dw_pw(ops: list, prefix: str, src: str, out: int, cfg: dict) -> str:
    """3×3 depthwise/s → BN → 1×1 → BN → act, named ``prefix…``."""
    fmt = cfg["data_format"]
    bn = (fmt, cfg["bn_epsilon"], cfg["bn_momentum"])
    last = append_ops(ops, depthwise_op(prefix + "dw", 2, (src,), strides=cfg["strides"],
                                        data_format=fmt))
    last = append_ops(ops, bn_op(prefix + "dw_bn", (last,), *bn))
    last = append_ops(ops, conv_op(prefix + "pw2", 2, (last,), filters=out, data_format=fmt))
    last = append_ops(ops, bn_op(prefix + "pw2_bn", (last,), *bn))
    return append_ops(ops, act_op(prefix + "pw2_relu", cfg["activation"], (last,)))


def _v2(cfg: dict, in_channels: int) -> tuple:
    fmt, half = cfg["data_format"], cfg["filters"] // 2
    ops: list = []
    if cfg["strides"] == 1:
        if in_channels != cfg["filters"]:
            raise ValueError(f"ShuffleUnit: a stride-1 v2 unit needs `filters` "
                             f"({cfg['filters']}) equal to the input channels ({in_channels})")
        keep = append_ops(ops, Op("split_keep", "ChannelSlice",
                                  {"start": 0, "stop": half, "data_format": fmt},
                                  (BLOCK_INPUT,), "keras_cnnkit"))
        part = append_ops(ops, Op("split_branch", "ChannelSlice",
                                  {"start": half, "stop": in_channels, "data_format": fmt},
                                  (BLOCK_INPUT,), "keras_cnnkit"))
        branch = _v2_branch(ops, "", part, half, half, cfg)
    else:
        keep = _v2_dw_pw(ops, "proj_", BLOCK_INPUT, half, cfg)
        branch = _v2_branch(ops, "", BLOCK_INPUT, half, half, cfg)
    append_ops(ops, concat_op("concat", (keep, branch), fmt))
    return ops, append_ops(ops, Op("shuffle", "ChannelShuffle", {"groups": 2, "data_format": fmt},
                                   ("concat",), "keras_cnnkit"))


@register_spec("ShuffleUnit", resolve=_resolve, defaults=SHUFFLE_UNIT_DEFAULTS)
def shuffle_unit(config: dict, input_shape: tuple) -> BlockGraph:
    """A ShuffleNet v1 (group convs + shuffle) or v2 (channel split + shuffle) unit."""
    cfg = _resolve(config)
    if len(input_shape) != 4:
        raise ValueError(f"ShuffleUnit takes 4D inputs, got shape {tuple(input_shape)}")
    in_channels = channels_of(input_shape, cfg["data_format"])
    ops, out = (_v1 if cfg["version"] == 1 else _v2)(cfg, in_channels)
    return BlockGraph(tuple(ops), out)
