"""Specs of ``DepthwiseSeparableConv`` (MobileNet V1) and ``InvertedResidual`` (V2).

* Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
  Applications", 2017, https://arxiv.org/abs/1704.04861 (seeds 000-004).
* Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
  https://arxiv.org/abs/1801.04381 (seed 002: t = 6, ReLU6, linear projection).

Op names and structure follow keras.applications ``mobilenet._depthwise_conv_block`` and
``mobilenet_v2._inverted_res_block``, so builders reproduce those models layer for layer.
"""
from __future__ import annotations

from keras_cnnkit.blockspec.core import (
    BLOCK_INPUT,
    REQUIRED,
    BlockGraph,
    Op,
    channels_of,
    check_int,
    check_number,
    register_spec,
    to_tuple,
    with_defaults,
)
from keras_cnnkit.blockspec.specs.conv import (
    act_op,
    append_ops,
    bn_op,
    check_common,
    check_strides_dilation,
    conv_op,
    depthwise_op,
    rank_of,
    spatial_of,
)
from keras_cnnkit.blockspec.specs.squeeze_excite import check_se, se_ops

_PAD_CLASSES = {1: "ZeroPadding1D", 2: "ZeroPadding2D"}


def pad_op(name: str, pads: tuple, inputs: tuple, data_format: str) -> Op:
    """A ``ZeroPadding1D/2D`` op; ``pads`` holds one ``(before, after)`` pair per axis."""
    if len(pads) == 1:
        return Op(name, _PAD_CLASSES[1], {"padding": tuple(pads[0])}, inputs)
    return Op(name, _PAD_CLASSES[2], {"padding": tuple(tuple(p) for p in pads),
                                      "data_format": data_format}, inputs)


def correct_pad(spatial: tuple, kernel_size: tuple) -> tuple:
    """keras.applications' ``correct_pad``: the padding of a strided "same" conv.

    One less before than after on even (or unknown) sizes, symmetric on odd sizes.
    """
    pads = []
    for size, k in zip(spatial, kernel_size):
        adjust = 1 if size is None else 1 - size % 2
        pads.append((k // 2 - adjust, k // 2))
    return tuple(pads)


DEPTHWISE_SEPARABLE_DEFAULTS = {
    "filters": REQUIRED, "kernel_size": 3, "strides": 1, "depth_multiplier": 1,
    "dilation_rate": 1, "padding": "same", "activation": "relu", "mid_activation": None,
    "use_bn": True, "mid_use_bn": None, "use_bias": None, "data_format": None,
    "bn_epsilon": 1e-3, "bn_momentum": 0.99,
}


def _resolve_dws(config: dict) -> dict:
    cfg = check_common(with_defaults("DepthwiseSeparableConv", config,
                                     DEPTHWISE_SEPARABLE_DEFAULTS))
    check_int(cfg["depth_multiplier"], "depth_multiplier")
    check_strides_dilation(cfg)
    if cfg["mid_activation"] is None:
        cfg["mid_activation"] = cfg["activation"]
    if cfg["mid_use_bn"] is None:
        cfg["mid_use_bn"] = cfg["use_bn"]
    return cfg


@register_spec("DepthwiseSeparableConv", resolve=_resolve_dws,
               defaults=DEPTHWISE_SEPARABLE_DEFAULTS)
def depthwise_separable_conv(config: dict, input_shape: tuple) -> BlockGraph:
    """k×k depthwise → BN → act → 1×1 pointwise → BN → act (keras MobileNet V1 block).

    With ``strides`` > 1 and "same" padding the block pads explicitly (``pad``) and runs
    the depthwise conv "valid", as keras does: ``(k−s)//2`` before, the rest after, which
    equals "same" for sizes divisible by the stride.
    """
    cfg = _resolve_dws(config)
    rank = rank_of(input_shape, "DepthwiseSeparableConv")
    fmt = cfg["data_format"]
    kernel = to_tuple(cfg["kernel_size"], rank, "kernel_size")
    strides = to_tuple(cfg["strides"], rank, "strides")
    padding = cfg["padding"]
    ops: list = []
    last = BLOCK_INPUT
    if padding == "same" and any(s > 1 for s in strides):
        totals = [max(k - s, 0) for k, s in zip(kernel, strides)]
        last = append_ops(ops, pad_op("pad", tuple((t // 2, t - t // 2) for t in totals),
                                      (last,), fmt))
        padding = "valid"
    mid_bias = not cfg["mid_use_bn"] if cfg["use_bias"] is None else cfg["use_bias"]
    out_bias = not cfg["use_bn"] if cfg["use_bias"] is None else cfg["use_bias"]
    last = append_ops(ops, depthwise_op("dw", rank, (last,), kernel_size=kernel,
                                        strides=strides, padding=padding,
                                        depth_multiplier=cfg["depth_multiplier"],
                                        dilation_rate=cfg["dilation_rate"],
                                        use_bias=mid_bias, data_format=fmt))
    if cfg["mid_use_bn"]:
        last = append_ops(ops, bn_op("dw_bn", (last,), fmt, cfg["bn_epsilon"],
                                     cfg["bn_momentum"]))
    append_ops(ops, act_op("dw_relu", cfg["mid_activation"], (last,)))
    last = append_ops(ops, conv_op("pw", rank, (ops[-1].name,), filters=cfg["filters"],
                                   use_bias=out_bias, data_format=fmt))
    if cfg["use_bn"]:
        last = append_ops(ops, bn_op("pw_bn", (last,), fmt, cfg["bn_epsilon"],
                                     cfg["bn_momentum"]))
    last = append_ops(ops, act_op("pw_relu", cfg["activation"], (last,)))
    return BlockGraph(tuple(ops), last)


INVERTED_RESIDUAL_DEFAULTS = {
    "filters": REQUIRED, "expansion": 6, "strides": 1, "kernel_size": 3, "dilation_rate": 1,
    "activation": "relu6", "use_se": False, "se_ratio": 0.25, "drop_path_rate": 0.0,
    "data_format": None, "bn_epsilon": 1e-3, "bn_momentum": 0.999,
}


def _resolve_ir(config: dict) -> dict:
    cfg = check_common(with_defaults("InvertedResidual", config, INVERTED_RESIDUAL_DEFAULTS))
    check_number(cfg["expansion"], "expansion", 1.0)
    check_strides_dilation(cfg)
    check_number(cfg["drop_path_rate"], "drop_path_rate", 0.0, 1.0)
    if cfg["drop_path_rate"] == 1.0:
        raise ValueError("`drop_path_rate` must be < 1")
    return check_se(cfg)


@register_spec("InvertedResidual", resolve=_resolve_ir, defaults=INVERTED_RESIDUAL_DEFAULTS)
def inverted_residual(config: dict, input_shape: tuple) -> BlockGraph:
    """1×1 expand (×t) → ReLU6 → k×k depthwise → ReLU6 → [SE] → 1×1 linear projection.

    The shortcut ``add`` is there only when ``strides`` is 1 and the input has
    ``filters`` channels.  ``expansion`` 1 drops the expand conv (keras' first block).
    ``use_se`` puts squeeze-excite (width ``se_ratio`` × expanded channels, rounded to
    a multiple of 8, MobileNetV3 style) after the depthwise activation.
    """
    cfg = _resolve_ir(config)
    rank_of(input_shape, "InvertedResidual", (2,))
    fmt = cfg["data_format"]
    in_channels = channels_of(input_shape, fmt)
    kernel = to_tuple(cfg["kernel_size"], 2, "kernel_size")
    strides = to_tuple(cfg["strides"], 2, "strides")
    bn = (cfg["bn_epsilon"], cfg["bn_momentum"])
    ops: list = []
    last = BLOCK_INPUT
    if cfg["expansion"] != 1:
        last = append_ops(
            ops,
            conv_op("expand", 2, (last,), filters=int(cfg["expansion"] * in_channels),
                    data_format=fmt),
            bn_op("expand_BN", ("expand",), fmt, *bn),
            act_op("expand_relu", cfg["activation"], ("expand_BN",)))
    padding = "same"
    if strides != (1, 1):
        spatial = spatial_of(input_shape, fmt)
        last = append_ops(ops, pad_op("pad", correct_pad(spatial, kernel), (last,), fmt))
        padding = "valid"
    last = append_ops(
        ops,
        depthwise_op("depthwise", 2, (last,), kernel_size=kernel, strides=strides,
                     padding=padding, dilation_rate=cfg["dilation_rate"], data_format=fmt),
        bn_op("depthwise_BN", ("depthwise",), fmt, *bn),
        act_op("depthwise_relu", cfg["activation"], ("depthwise_BN",)))
    if cfg["use_se"]:
        expanded = int(cfg["expansion"] * in_channels)
        last = append_ops(ops, *se_ops("se_", expanded, {"se_ratio": cfg["se_ratio"],
                                                         "data_format": fmt}, (last,), 2))
    last = append_ops(
        ops,
        conv_op("project", 2, (last,), filters=cfg["filters"], data_format=fmt),
        bn_op("project_BN", ("project",), fmt, *bn))
    if strides == (1, 1) and in_channels == cfg["filters"]:
        if cfg["drop_path_rate"] > 0:
            last = append_ops(ops, Op("drop_path", "DropPath", {"rate": cfg["drop_path_rate"]},
                                      (last,), "keras_cnnkit"))
        last = append_ops(ops, Op("add", "Add", {}, (BLOCK_INPUT, last)))
    return BlockGraph(tuple(ops), last)
