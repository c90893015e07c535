"""Spec of ``ClassifierHead``: GAP, GMP, Flatten+Dense and NIN-style 1×1-conv heads.

* Lin, Chen & Yan, "Network In Network", ICLR 2014, https://arxiv.org/abs/1312.4400
  (global average pooling instead of fully connected layers; 1×1 convs as a classifier;
  seeds 000, 002, 003).
* Simonyan & Zisserman, ICLR 2015 (VGG's Flatten + Dense head, where most of VGG16's
  parameters sit: FC6 = 7·7·512·4096 weights, seed 003).
"""
from __future__ import annotations

from keras_cnnkit.blockspec.core import (
    BLOCK_INPUT,
    REQUIRED,
    BlockGraph,
    Op,
    check_choice,
    check_int,
    check_number,
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

CLASSIFIER_HEAD_DEFAULTS = {
    "classes": REQUIRED, "variant": "gap", "hidden_units": (), "kernel_size": 1,
    "dropout": 0.0, "activation": "relu", "classifier_activation": "softmax",
    "data_format": None,
}


def _resolve(config: dict) -> dict:
    cfg = check_common(with_defaults("ClassifierHead", config, CLASSIFIER_HEAD_DEFAULTS))
    check_int(cfg["classes"], "classes")
    check_choice(cfg["variant"], "variant", ("gap", "gmp", "flatten_dense", "conv1x1"))
    cfg["hidden_units"] = list(cfg["hidden_units"] or ())
    for units in cfg["hidden_units"]:
        check_int(units, "hidden_units")
    check_number(cfg["dropout"], "dropout", 0.0, 1.0)
    if cfg["dropout"] == 1.0:
        raise ValueError("`dropout` must be < 1")
    if cfg["kernel_size"] != 1 and (cfg["variant"] != "conv1x1" or not cfg["hidden_units"]):
        raise ValueError("`kernel_size` applies to the first hidden conv of variant "
                         "'conv1x1' only")
    return cfg


def _dropout(ops: list, i: int, src: str, rate: float) -> str:
    if not rate:
        return src
    return append_ops(ops, Op(f"dropout{i}", "Dropout", {"rate": rate}, (src,)))


def _head_ops(cfg: dict) -> int:
    """Dropout, layer and activation per hidden layer; pool, flatten, logits, head."""
    return 3 * len(cfg["hidden_units"] or ()) + 6


@register_spec("ClassifierHead", resolve=_resolve, defaults=CLASSIFIER_HEAD_DEFAULTS,
               ops=_head_ops)
def classifier_head(config: dict, input_shape: tuple) -> BlockGraph:
    """Feature map → class scores ``(batch, classes)``.

    ``gap``/``gmp``: global average/max pool → Dense layers.  ``flatten_dense``:
    Flatten → Dense layers (fixed input size).  ``conv1x1``: convs (the first with
    ``kernel_size``, "valid", then 1×1) → 1×1 conv to ``classes`` → global average pool →
    ``classifier_activation``: a head with Dense-equivalent weights that takes any input
    size.  Hidden layers have ``hidden_units`` units and ``activation``; ``dropout``
    (when > 0) comes before each Dense/conv layer (``dropout{i}``).  Op names:
    ``pool``/``flatten``, ``fc{i}``/``conv{i}``, ``predictions`` (keras' name).
    """
    cfg = _resolve(config)
    rank = rank_of(input_shape, "ClassifierHead")
    fmt, rate = cfg["data_format"], cfg["dropout"]
    ops: list = []
    hidden = cfg["hidden_units"]
    if cfg["variant"] == "conv1x1":
        last = BLOCK_INPUT
        for i, units in enumerate(hidden, start=1):
            last = _dropout(ops, i, last, rate)
            last = append_ops(ops, conv_op(f"conv{i}", rank, (last,), filters=units,
                                           kernel_size=cfg["kernel_size"] if i == 1 else 1,
                                           padding="valid", use_bias=True, data_format=fmt))
            last = append_ops(ops, act_op(f"conv{i}_act", cfg["activation"], (last,)))
        last = _dropout(ops, len(hidden) + 1, last, rate)
        last = append_ops(ops, conv_op("logits", rank, (last,), filters=cfg["classes"],
                                       padding="valid", use_bias=True, data_format=fmt))
        last = append_ops(ops, global_pool_op("pool", "avg", rank, (last,), fmt))
        last = append_ops(ops, act_op("predictions", cfg["classifier_activation"], (last,)))
        return BlockGraph(tuple(ops), last)
    if cfg["variant"] == "flatten_dense":
        last = append_ops(ops, Op("flatten", "Flatten", {"data_format": fmt}, (BLOCK_INPUT,)))
    else:
        kind = "avg" if cfg["variant"] == "gap" else "max"
        last = append_ops(ops, global_pool_op("pool", kind, rank, (BLOCK_INPUT,), fmt))
    for i, units in enumerate(hidden, start=1):
        last = _dropout(ops, i, last, rate)
        last = append_ops(ops, Op(f"fc{i}", "Dense", {"units": units,
                                                      "activation": cfg["activation"]},
                                  (last,)))
    last = _dropout(ops, len(hidden) + 1, last, rate)
    last = append_ops(ops, Op("predictions", "Dense",
                              {"units": cfg["classes"],
                               "activation": cfg["classifier_activation"]}, (last,)))
    return BlockGraph(tuple(ops), last)
