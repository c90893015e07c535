"""Specs of ``DenseBlock`` and ``TransitionBlock`` (DenseNet-BC).

Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017, https://arxiv.org/abs/1608.06993 (seed 002: growth rate k = 32, DenseNet121
blocks of 6, 12, 24, 16 layers, transitions halve the channels and pool).

Op names and structure follow keras.applications ``densenet.conv_block`` (``block{i}_…``)
and ``densenet.transition_block``.
"""
from __future__ import annotations

from keras_cnnkit.blockspec.core import (
    BLOCK_INPUT,
    REQUIRED,
    BlockGraph,
    channels_of,
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
    pool_op,
    rank_of,
)

DENSE_BLOCK_DEFAULTS = {
    "num_layers": REQUIRED, "growth_rate": 32, "bottleneck_width": 4, "kernel_size": 3,
    "dilation_rate": 1, "activation": "relu", "data_format": None,
    "bn_epsilon": 1.001e-5, "bn_momentum": 0.99,
}


def _resolve_dense(config: dict) -> dict:
    cfg = check_common(with_defaults("DenseBlock", config, DENSE_BLOCK_DEFAULTS))
    check_int(cfg["num_layers"], "num_layers")
    check_int(cfg["growth_rate"], "growth_rate")
    check_int(cfg["bottleneck_width"], "bottleneck_width", minimum=0)
    return cfg


def _dense_ops(cfg: dict) -> int:
    """BN, act, (1×1 conv, BN, act,) conv and concat per layer."""
    return cfg["num_layers"] * (7 if cfg["bottleneck_width"] else 4)


@register_spec("DenseBlock", resolve=_resolve_dense, defaults=DENSE_BLOCK_DEFAULTS,
               ops=_dense_ops)
def dense_block(config: dict, input_shape: tuple) -> BlockGraph:
    """``num_layers`` × (BN → ReLU → 1×1 conv → BN → ReLU → 3×3 conv), each concatenated.

    Layer i adds ``growth_rate`` channels: the output has ``C + num_layers·growth_rate``.
    The 1×1 bottleneck has ``bottleneck_width·growth_rate`` filters (DenseNet-B); a
    ``bottleneck_width`` of 0 drops it (plain DenseNet).  No conv has a bias.
    """
    cfg = _resolve_dense(config)
    rank = rank_of(input_shape, "DenseBlock")
    fmt = cfg["data_format"]
    bn = (fmt, cfg["bn_epsilon"], cfg["bn_momentum"])
    act = cfg["activation"]
    ops: list = []
    x = BLOCK_INPUT
    for i in range(1, cfg["num_layers"] + 1):
        p = f"block{i}_"
        last = append_ops(ops, bn_op(p + "0_bn", (x,), *bn), act_op(p + "0_relu", act,
                                                                   (p + "0_bn",)))
        if cfg["bottleneck_width"]:
            last = append_ops(
                ops,
                conv_op(p + "1_conv", rank, (last,),
                        filters=cfg["bottleneck_width"] * cfg["growth_rate"],
                        kernel_size=1, padding="valid", data_format=fmt),
                bn_op(p + "1_bn", (p + "1_conv",), *bn),
                act_op(p + "1_relu", act, (p + "1_bn",)))
        last = append_ops(ops, conv_op(p + "2_conv", rank, (last,), filters=cfg["growth_rate"],
                                       kernel_size=cfg["kernel_size"],
                                       dilation_rate=cfg["dilation_rate"], data_format=fmt))
        x = append_ops(ops, concat_op(p + "concat", (x, last), fmt))
    return BlockGraph(tuple(ops), x)


TRANSITION_BLOCK_DEFAULTS = {
    "compression": 0.5, "strides": 2, "activation": "relu", "data_format": None,
    "bn_epsilon": 1.001e-5, "bn_momentum": 0.99,
}


def _resolve_transition(config: dict) -> dict:
    cfg = check_common(with_defaults("TransitionBlock", config, TRANSITION_BLOCK_DEFAULTS))
    check_number(cfg["compression"], "compression", 0.0, 1.0, low_inclusive=False)
    check_int(cfg["strides"], "strides")
    return cfg


@register_spec("TransitionBlock", resolve=_resolve_transition, defaults=TRANSITION_BLOCK_DEFAULTS)
def transition_block(config: dict, input_shape: tuple) -> BlockGraph:
    """BN → ReLU → 1×1 conv to ``int(C·compression)`` → 2×2 average pool, stride 2.

    ``strides`` 1 (for dilated, ``output_stride``-limited networks) drops the pool.
    """
    cfg = _resolve_transition(config)
    rank = rank_of(input_shape, "TransitionBlock")
    fmt = cfg["data_format"]
    filters = int(channels_of(input_shape, fmt) * cfg["compression"])
    if filters < 1:
        raise ValueError(f"TransitionBlock: `compression` {cfg['compression']} leaves no "
                         f"channels of {channels_of(input_shape, fmt)}")
    ops: list = []
    last = append_ops(
        ops,
        bn_op("bn", (BLOCK_INPUT,), fmt, cfg["bn_epsilon"], cfg["bn_momentum"]),
        act_op("relu", cfg["activation"], ("bn",)))
    last = append_ops(ops, conv_op("conv", rank, (last,), filters=filters, kernel_size=1,
                                   padding="valid", data_format=fmt))
    if cfg["strides"] > 1:
        last = append_ops(ops, pool_op("pool", "avg", rank, (last,), cfg["strides"],
                                       cfg["strides"], data_format=fmt))
    return BlockGraph(tuple(ops), last)
