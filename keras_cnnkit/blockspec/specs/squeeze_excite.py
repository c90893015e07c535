"""Spec of ``SqueezeExcite``, and the SE ops other blocks embed.

Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
https://arxiv.org/abs/1709.01507 (seeds 001, 004).
"""
from __future__ import annotations

from keras_cnnkit.blockspec.core import (
    DEFAULT_DATA_FORMAT,
    BLOCK_INPUT,
    BlockGraph,
    Op,
    channels_of,
    check_int,
    check_number,
    make_divisible,
    register_spec,
    with_defaults,
)
from keras_cnnkit.blockspec.specs.conv import (
    act_op,
    append_ops,
    check_common,
    conv_op,
    global_pool_op,
    rank_of,
)

SQUEEZE_EXCITE_DEFAULTS = {
    "se_ratio": 0.25, "divisor": 8, "activation": "relu", "gate": "sigmoid",
    "data_format": None,
}


def se_channels(channels: int, se_ratio: float, divisor: int = 8) -> int:
    """Width of the squeeze: ``make_divisible(channels * se_ratio, divisor)``."""
    return make_divisible(channels * se_ratio, divisor)


def se_ops(prefix: str, channels: int, cfg: dict, inputs: tuple, rank: int) -> list:
    """GAP → 1×1 reduce → act → 1×1 expand → gate → multiply, named ``prefix + ...``.

    ``cfg`` takes ``se_ratio``, ``divisor``, ``activation``, ``gate``, ``data_format``
    (defaults as :data:`SQUEEZE_EXCITE_DEFAULTS`).  The reduce and expand convs have
    biases, as in the paper's FC layers.
    """
    cfg = {**SQUEEZE_EXCITE_DEFAULTS, **cfg}
    fmt = cfg["data_format"] or DEFAULT_DATA_FORMAT
    ops: list = []
    last = append_ops(ops, global_pool_op(prefix + "squeeze", "avg", rank, inputs, fmt,
                                          keepdims=True))
    last = append_ops(ops, conv_op(prefix + "reduce", rank, (last,),
                                   filters=se_channels(channels, cfg["se_ratio"],
                                                       cfg["divisor"]),
                                   use_bias=True, data_format=fmt))
    last = append_ops(ops, act_op(prefix + "act", cfg["activation"], (last,)))
    last = append_ops(ops, conv_op(prefix + "expand", rank, (last,), filters=channels,
                                   use_bias=True, data_format=fmt))
    last = append_ops(ops, act_op(prefix + "gate", cfg["gate"], (last,)))
    ops.append(Op(prefix + "excite", "Multiply", {}, (inputs[0], last)))
    return ops


def check_se(cfg: dict) -> dict:
    """Validate ``se_ratio`` and ``divisor``."""
    check_number(cfg["se_ratio"], "se_ratio", 0.0, 1.0, low_inclusive=False)
    if "divisor" in cfg:
        check_int(cfg["divisor"], "divisor")
    return cfg


def _resolve(config: dict) -> dict:
    return check_se(check_common(with_defaults("SqueezeExcite", config,
                                               SQUEEZE_EXCITE_DEFAULTS)))


@register_spec("SqueezeExcite", resolve=_resolve, defaults=SQUEEZE_EXCITE_DEFAULTS)
def squeeze_excite(config: dict, input_shape: tuple) -> BlockGraph:
    """Channel attention: the input rescaled by a gate computed from its global average."""
    cfg = _resolve(config)
    rank = rank_of(input_shape, "SqueezeExcite")
    ops = se_ops("", channels_of(input_shape, cfg["data_format"]), cfg, (BLOCK_INPUT,), rank)
    return BlockGraph(tuple(ops), ops[-1].name)
