"""Spec of ``XceptionBlock``: separable-conv stacks with a residual shortcut.

Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017,
https://arxiv.org/abs/1610.02357 (depthwise separable convs: seeds 000-004).

Op names and structure follow keras.applications ``xception``: ``sepconv{i}_act``,
``sepconv{i}``, ``sepconv{i}_bn``, the closing max pool ``pool``; keras leaves the
shortcut's layers unnamed, here they are ``shortcut_conv``/``shortcut_bn`` and the
merge ``add``.
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
    pool_op,
)

XCEPTION_BLOCK_DEFAULTS = {
    "filters": REQUIRED, "strides": 1, "dilation_rate": 1, "shortcut": "auto",
    "pre_activation": True, "first_activation": True, "activation": "relu",
    "drop_path_rate": 0.0, "data_format": None, "bn_epsilon": 1e-3,
    "bn_momentum": 0.99,
}


def _resolve(config: dict) -> dict:
    cfg = with_defaults("XceptionBlock", config, XCEPTION_BLOCK_DEFAULTS)
    filters = cfg["filters"]
    if not isinstance(filters, (list, tuple)) or not filters:
        raise ValueError(f"XceptionBlock: `filters` must be a non-empty sequence of widths, "
                         f"one per separable conv; got {filters!r}")
    for f in filters:
        check_int(f, "filters")
    cfg["filters"] = tuple(filters)
    check_common(cfg)
    check_choice(cfg["shortcut"], "shortcut", ("auto", "conv", "identity", None))
    check_number(cfg["drop_path_rate"], "drop_path_rate", 0.0, 1.0)
    if cfg["drop_path_rate"] == 1.0:
        raise ValueError("`drop_path_rate` must be < 1")
    return check_strides_dilation(cfg)


def _xception_ops(cfg: dict) -> int:
    """Activation, separable conv (two nodes) and BN per width; pool, shortcut, add."""
    return 4 * len(cfg["filters"]) + 6


@register_spec("XceptionBlock", resolve=_resolve, defaults=XCEPTION_BLOCK_DEFAULTS,
               ops=_xception_ops)
def xception_block(config: dict, input_shape: tuple) -> BlockGraph:
    """Separable 3×3 convs (each with BN), a 3×3 max pool when strided, plus a shortcut.

    ``pre_activation`` puts the activation before each conv (entry and middle flow;
    ``first_activation=False`` omits the first one, as keras' block 2 does), otherwise
    after its BN (exit flow).  ``shortcut``: ``"conv"`` is a strided 1×1 conv + BN,
    ``"identity"`` the input, ``None`` none; ``"auto"`` picks ``"conv"`` when the block
    is strided or changes the width, else ``"identity"``.
    """
    cfg = _resolve(config)
    if len(input_shape) != 4:
        raise ValueError(f"XceptionBlock takes 4D inputs, got shape {tuple(input_shape)}")
    fmt = cfg["data_format"]
    strides = to_tuple(cfg["strides"], 2, "strides")
    dilation = to_tuple(cfg["dilation_rate"], 2, "dilation_rate")
    bn = (fmt, cfg["bn_epsilon"], cfg["bn_momentum"])
    ops: list = []
    last = BLOCK_INPUT
    for i, filters in enumerate(cfg["filters"], start=1):
        p = f"sepconv{i}"
        if cfg["pre_activation"] and (i > 1 or cfg["first_activation"]):
            last = append_ops(ops, act_op(p + "_act", cfg["activation"], (last,)))
        last = append_ops(ops, Op(p, "SeparableConv2D", {
            "filters": filters, "kernel_size": (3, 3), "padding": "same",
            "dilation_rate": dilation, "use_bias": False, "data_format": fmt}, (last,)),
            bn_op(p + "_bn", (p,), *bn))
        if not cfg["pre_activation"]:
            last = append_ops(ops, act_op(p + "_act", cfg["activation"], (last,)))
    if strides != (1, 1):
        last = append_ops(ops, pool_op("pool", "max", 2, (last,), 3, strides, "same", fmt))
    shortcut = cfg["shortcut"]
    if shortcut == "auto":
        same_width = channels_of(input_shape, fmt) == cfg["filters"][-1]
        shortcut = "identity" if strides == (1, 1) and same_width else "conv"
    if shortcut is None:
        return BlockGraph(tuple(ops), last)
    if cfg["drop_path_rate"] > 0:
        last = append_ops(ops, Op("drop_path", "DropPath", {"rate": cfg["drop_path_rate"]},
                                  (last,), "keras_cnnkit"))
    source = BLOCK_INPUT
    if shortcut == "conv":
        source = append_ops(
            ops,
            conv_op("shortcut_conv", 2, (BLOCK_INPUT,), filters=cfg["filters"][-1],
                    strides=strides, data_format=fmt),
            bn_op("shortcut_bn", ("shortcut_conv",), *bn))
    elif channels_of(input_shape, fmt) != cfg["filters"][-1] or strides != (1, 1):
        raise ValueError("XceptionBlock: an identity shortcut needs stride 1 and "
                         f"{cfg['filters'][-1]} input channels")
    last = append_ops(ops, Op("add", "Add", {}, (last, source)))
    return BlockGraph(tuple(ops), last)
