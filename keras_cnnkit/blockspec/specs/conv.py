"""Spec of ``ConvBNAct``: conv, optional batch norm, optional activation (1D or 2D)."""
from __future__ import annotations

from keras_cnnkit.blockspec.core import BlockGraph, Op, channel_axis, register_spec, to_tuple

_ACT_CLASSES = {"relu6": ("ReLU6", "keras_cnnkit")}


def activation_op(name: str, activation, inputs: tuple) -> Op:
    """An activation op: ``ReLU6`` for ``"relu6"``, else ``keras.layers.Activation``."""
    if activation in _ACT_CLASSES:
        cls, pkg = _ACT_CLASSES[activation]
        return Op(name, cls, {}, inputs, pkg)
    return Op(name, "Activation", {"activation": activation}, inputs)


def conv_bn_act_ops(prefix: str, cfg: dict, inputs: tuple, rank: int) -> list:
    """The ops of one conv + BN + activation, named ``prefix + conv|bn|act``."""
    conv_cls = {1: "Conv1D", 2: "Conv2D"}[rank]
    use_bn = cfg.get("use_bn", True)
    conv_cfg = {
        "filters": cfg["filters"],
        "kernel_size": to_tuple(cfg.get("kernel_size", 3), rank, "kernel_size"),
        "strides": to_tuple(cfg.get("strides", 1), rank, "strides"),
        "padding": cfg.get("padding", "same"),
        "dilation_rate": to_tuple(cfg.get("dilation_rate", 1), rank, "dilation_rate"),
        "groups": cfg.get("groups", 1),
        "use_bias": cfg.get("use_bias", not use_bn),
        "data_format": cfg.get("data_format", "channels_last"),
    }
    ops = [Op(prefix + "conv", conv_cls, conv_cfg, inputs)]
    last = prefix + "conv"
    if use_bn:
        ops.append(Op(prefix + "bn", "BatchNormalization",
                      {"axis": channel_axis(conv_cfg["data_format"]),
                       "epsilon": cfg.get("bn_epsilon", 1e-3),
                       "momentum": cfg.get("bn_momentum", 0.99)}, (last,)))
        last = prefix + "bn"
    if cfg.get("activation") not in (None, "linear"):
        ops.append(activation_op(prefix + "act", cfg["activation"], (last,)))
    return ops


@register_spec("ConvBNAct")
def conv_bn_act(config: dict, input_shape: tuple) -> BlockGraph:
    """conv → BN (optional) → activation (optional); rank from the input shape."""
    rank = len(input_shape) - 2
    if rank not in (1, 2):
        raise ValueError(f"ConvBNAct takes 3D or 4D inputs, got shape {input_shape}")
    ops = conv_bn_act_ops("", config, ("input",), rank)
    return BlockGraph(tuple(ops), ops[-1].name)
