"""Specs of ``FactorizedConv`` (stacked 3×3 / asymmetric 1×n-n×1) and ``Bottleneck1x1``.

* Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
  Recognition", ICLR 2015, https://arxiv.org/abs/1409.1556 (stacked 3×3; seeds 001-004:
  two 3×3 = one 5×5 receptive field, 18 vs 25 weights per channel pair).
* Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
  https://arxiv.org/abs/1512.00567 (asymmetric n×1 factorisation; seed 002).
* Lin, Chen & Yan, "Network In Network", ICLR 2014, https://arxiv.org/abs/1312.4400,
  and He et al., "Deep Residual Learning for Image Recognition", CVPR 2016
  (1×1 bottlenecks; seeds 000-004: 10,416 → 5,520 parameters, 589,824 → 69,632).
"""
from __future__ import annotations

from keras_cnnkit.blockspec.core import (
    BLOCK_INPUT,
    REQUIRED,
    BlockGraph,
    check_choice,
    check_int,
    register_spec,
    to_tuple,
    with_defaults,
)
from keras_cnnkit.blockspec.specs.conv import (
    append_ops,
    check_common,
    conv_bn_act_ops,
    rank_of,
)

_CONV_KEYS = ("activation", "use_bn", "data_format", "bn_epsilon", "bn_momentum")

FACTORIZED_CONV_DEFAULTS = {
    "filters": REQUIRED, "kernel_size": 5, "mode": "stacked", "strides": 1,
    "padding": "same", "intermediate_filters": None, "activation": "relu", "use_bn": True,
    "use_bias": None, "data_format": None, "bn_epsilon": 1e-3,
    "bn_momentum": 0.99,
}


def _resolve_factorized(config: dict) -> dict:
    cfg = check_common(with_defaults("FactorizedConv", config, FACTORIZED_CONV_DEFAULTS))
    check_choice(cfg["mode"], "mode", ("stacked", "asymmetric"))
    k = check_int(cfg["kernel_size"], "kernel_size", minimum=2)
    if cfg["mode"] == "stacked" and k % 2 == 0:
        raise ValueError(f"`kernel_size` must be odd for stacked 3×3 convs, got {k}")
    if cfg["intermediate_filters"] is not None:
        check_int(cfg["intermediate_filters"], "intermediate_filters")
    if cfg["use_bias"] is None:
        cfg["use_bias"] = not cfg["use_bn"]
    return cfg


def factorized_layers(cfg: dict, rank: int) -> list:
    """``(kernel_size, strides)`` of each conv replacing the k×k conv of ``cfg``."""
    k = cfg["kernel_size"]
    strides = to_tuple(cfg["strides"], rank, "strides")
    if cfg["mode"] == "stacked":
        n = (k - 1) // 2
        return [(3, strides if i == n - 1 else 1) for i in range(n)]
    if rank != 2:
        raise ValueError("FactorizedConv: `mode='asymmetric'` needs 2D inputs")
    return [((1, k), (1, strides[1])), ((k, 1), (strides[0], 1))]


def _factorized_ops(cfg: dict) -> int:
    """Conv, BN and activation per conv: (k − 1)/2 stacked convs, or two asymmetric."""
    convs = (cfg["kernel_size"] - 1) // 2 if cfg["mode"] == "stacked" else 2
    return 3 * convs


@register_spec("FactorizedConv", resolve=_resolve_factorized, defaults=FACTORIZED_CONV_DEFAULTS,
               ops=_factorized_ops)
def factorized_conv(config: dict, input_shape: tuple) -> BlockGraph:
    """A k×k conv as (k−1)/2 stacked 3×3 convs, or as 1×k then k×1 (asymmetric).

    Each conv is conv → BN → activation (ops ``{i}_conv``, ``{i}_bn``, ``{i}_act``,
    i from 1); the inner convs have ``intermediate_filters`` (default ``filters``).
    """
    cfg = _resolve_factorized(config)
    rank = rank_of(input_shape, "FactorizedConv")
    layers = factorized_layers(cfg, rank)
    inner = cfg["intermediate_filters"] or cfg["filters"]
    ops: list = []
    last = BLOCK_INPUT
    for i, (kernel, strides) in enumerate(layers, start=1):
        unit = {key: cfg[key] for key in _CONV_KEYS}
        unit.update(filters=cfg["filters"] if i == len(layers) else inner, kernel_size=kernel,
                    strides=strides, padding=cfg["padding"], use_bias=cfg["use_bias"])
        last = append_ops(ops, *conv_bn_act_ops(f"{i}_", unit, (last,), rank))
    return BlockGraph(tuple(ops), last)


BOTTLENECK_1X1_DEFAULTS = {
    "filters": REQUIRED, "bottleneck_filters": None, "kernel_size": 3, "strides": 1,
    "expand": False, "padding": "same", "activation": "relu", "use_bn": True,
    "use_bias": None, "data_format": None, "bn_epsilon": 1e-3,
    "bn_momentum": 0.99,
}


def _resolve_bottleneck(config: dict) -> dict:
    cfg = check_common(with_defaults("Bottleneck1x1", config, BOTTLENECK_1X1_DEFAULTS))
    if cfg["bottleneck_filters"] is None:
        cfg["bottleneck_filters"] = max(1, cfg["filters"] // 4)
    check_int(cfg["bottleneck_filters"], "bottleneck_filters")
    check_choice(cfg["expand"], "expand", (True, False))
    convs = 3 if cfg["expand"] else 2
    bias = cfg["use_bias"]
    if bias is None:
        cfg["use_bias"] = not cfg["use_bn"]
    elif isinstance(bias, (list, tuple)):
        if len(bias) != convs or any(b not in (True, False) for b in bias):
            raise ValueError(f"`use_bias` must be a bool or {convs} bools (one per conv), "
                             f"got {bias!r}")
        cfg["use_bias"] = list(bias)
    else:
        check_choice(bias, "use_bias", (True, False))
    return cfg


@register_spec("Bottleneck1x1", resolve=_resolve_bottleneck, defaults=BOTTLENECK_1X1_DEFAULTS)
def bottleneck_1x1(config: dict, input_shape: tuple) -> BlockGraph:
    """1×1 reduce to ``bottleneck_filters`` → k×k → optional 1×1 expand; 1D or 2D.

    Without ``expand`` the k×k conv outputs ``filters``; with it the k×k conv keeps
    ``bottleneck_filters`` and a 1×1 conv expands to ``filters`` (ResNet bottleneck).
    Ops ``reduce_*``, ``conv_*``, ``expand_*`` (``conv``, ``bn``, ``act`` each).
    """
    cfg = _resolve_bottleneck(config)
    rank = rank_of(input_shape, "Bottleneck1x1")
    stages = [("reduce_", cfg["bottleneck_filters"], 1, 1),
              ("conv_", cfg["bottleneck_filters"] if cfg["expand"] else cfg["filters"],
               cfg["kernel_size"], cfg["strides"])]
    if cfg["expand"]:
        stages.append(("expand_", cfg["filters"], 1, 1))
    biases = cfg["use_bias"] if isinstance(cfg["use_bias"], list) else \
        [cfg["use_bias"]] * len(stages)
    ops: list = []
    last = BLOCK_INPUT
    for (prefix, filters, kernel, strides), bias in zip(stages, biases):
        unit = {key: cfg[key] for key in _CONV_KEYS}
        unit.update(filters=filters, kernel_size=kernel, strides=strides, use_bias=bias,
                    padding=cfg["padding"] if prefix == "conv_" else "valid")
        last = append_ops(ops, *conv_bn_act_ops(prefix, unit, (last,), rank))
    return BlockGraph(tuple(ops), last)
