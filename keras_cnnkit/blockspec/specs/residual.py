"""Spec of ``ResidualBlock``: basic and bottleneck, v1 (post-activation) and v2 (pre-act).

* He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
  https://arxiv.org/abs/1512.03385 (v1; seeds 000-004).
* He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016,
  https://arxiv.org/abs/1603.05027 (v2, pre-activation).

Bottleneck op names and structure are keras.applications ``resnet.residual_block_v1``
(v1) and ``residual_block_v2`` (v2), biases included.
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
from keras_cnnkit.blockspec.specs.mobile import pad_op
from keras_cnnkit.blockspec.specs.squeeze_excite import check_se, se_ops

RESIDUAL_BLOCK_DEFAULTS = {
    "filters": REQUIRED, "variant": "bottleneck", "version": 1, "strides": 1,
    "kernel_size": 3, "dilation_rate": 1, "expansion": 4, "conv_shortcut": "auto",
    "use_bias": None, "activation": "relu", "use_se": False, "se_ratio": 0.25,
    "drop_path_rate": 0.0, "data_format": None, "bn_epsilon": 1.001e-5,
    "bn_momentum": 0.99,
}


def _resolve(config: dict) -> dict:
    cfg = check_common(with_defaults("ResidualBlock", config, RESIDUAL_BLOCK_DEFAULTS))
    check_choice(cfg["variant"], "variant", ("basic", "bottleneck"))
    check_choice(cfg["version"], "version", (1, 2))
    check_int(cfg["expansion"], "expansion")
    check_choice(cfg["conv_shortcut"], "conv_shortcut", ("auto", True, False))
    check_choice(cfg["use_bias"], "use_bias", (None, True, False))
    check_number(cfg["drop_path_rate"], "drop_path_rate", 0.0, 1.0)
    if cfg["drop_path_rate"] == 1.0:
        raise ValueError("`drop_path_rate` must be < 1")
    return check_strides_dilation(check_se(cfg))


def out_channels(cfg: dict) -> int:
    """Output channels: ``filters`` (basic) or ``filters·expansion`` (bottleneck)."""
    return cfg["filters"] * (cfg["expansion"] if cfg["variant"] == "bottleneck" else 1)


class _Builder:
    """Collects ops; remembers the block's shared settings."""

    def __init__(self, cfg: dict, in_channels: int):
        self.cfg = cfg
        self.fmt = cfg["data_format"]
        self.ops: list = []
        self.in_channels = in_channels
        self.out = out_channels(cfg)
        self.strides = to_tuple(cfg["strides"], 2, "strides")

    def conv(self, name: str, src: str, filters: int, kernel_size, *, strides=1,
             padding: str = "same", bias_default: bool = True, dilated: bool = False) -> str:
        """A conv; its bias is ``use_bias`` or, when that is ``None``, keras' choice.

        1×1 convs are "valid", as keras leaves them.
        """
        if kernel_size == 1:
            padding = "valid"
        bias = bias_default if self.cfg["use_bias"] is None else self.cfg["use_bias"]
        return append_ops(self.ops, conv_op(
            name, 2, (src,), filters=filters, kernel_size=kernel_size, strides=strides,
            padding=padding, dilation_rate=self.cfg["dilation_rate"] if dilated else 1,
            use_bias=bias, data_format=self.fmt))

    def bn(self, name: str, src: str) -> str:
        """A batch norm."""
        return append_ops(self.ops, bn_op(name, (src,), self.fmt, self.cfg["bn_epsilon"],
                                          self.cfg["bn_momentum"]))

    def act(self, name: str, src: str) -> str:
        """The block's activation."""
        return append_ops(self.ops, act_op(name, self.cfg["activation"], (src,)))

    def projection(self) -> bool:
        """Whether the shortcut is a 1×1 conv (``"auto"``: when shapes differ; v2 pools
        a strided shortcut whose channels already match, as keras does)."""
        if self.cfg["conv_shortcut"] != "auto":
            return self.cfg["conv_shortcut"]
        if self.cfg["version"] == 2:
            return self.in_channels != self.out
        return self.in_channels != self.out or self.strides != (1, 1)

    def branch_tail(self, src: str) -> str:
        """Optional squeeze-excite and drop path at the end of the residual branch."""
        if self.cfg["use_se"]:
            src = append_ops(self.ops, *se_ops("se_", self.out, {
                "se_ratio": self.cfg["se_ratio"], "data_format": self.fmt}, (src,), 2))
        if self.cfg["drop_path_rate"] > 0:
            src = append_ops(self.ops, Op("drop_path", "DropPath",
                                          {"rate": self.cfg["drop_path_rate"]}, (src,),
                                          "keras_cnnkit"))
        return src


def _v1(b: _Builder) -> str:
    cfg = b.cfg
    k = cfg["kernel_size"]
    if b.projection():
        shortcut = b.bn("0_bn", b.conv("0_conv", BLOCK_INPUT, b.out, 1, strides=b.strides))
    else:
        shortcut = BLOCK_INPUT
    if cfg["variant"] == "bottleneck":
        x = b.act("1_relu", b.bn("1_bn", b.conv("1_conv", BLOCK_INPUT, cfg["filters"], 1,
                                                strides=b.strides)))
        x = b.act("2_relu", b.bn("2_bn", b.conv("2_conv", x, cfg["filters"], k,
                                                dilated=True)))
        x = b.bn("3_bn", b.conv("3_conv", x, b.out, 1))
    else:
        x = b.act("1_relu", b.bn("1_bn", b.conv("1_conv", BLOCK_INPUT, cfg["filters"], k,
                                                strides=b.strides, dilated=True)))
        x = b.bn("2_bn", b.conv("2_conv", x, cfg["filters"], k, dilated=True))
    x = b.branch_tail(x)
    append_ops(b.ops, Op("add", "Add", {}, (shortcut, x)))
    return b.act("out", "add")


def _v2(b: _Builder) -> str:
    cfg = b.cfg
    k = to_tuple(cfg["kernel_size"], 2, "kernel_size")
    preact = b.act("preact_relu", b.bn("preact_bn", BLOCK_INPUT))
    if b.projection():
        shortcut = b.conv("0_conv", preact, b.out, 1, strides=b.strides)
    elif b.strides != (1, 1):
        shortcut = append_ops(b.ops, pool_op("0_pool", "max", 2, (BLOCK_INPUT,), 1, b.strides,
                                             data_format=b.fmt))
    else:
        shortcut = BLOCK_INPUT
    d = to_tuple(cfg["dilation_rate"], 2, "dilation_rate")
    pads = tuple((di * (ki - 1) // 2, di * (ki - 1) - di * (ki - 1) // 2)
                 for ki, di in zip(k, d))
    if cfg["variant"] == "bottleneck":
        x = b.act("1_relu", b.bn("1_bn", b.conv("1_conv", preact, cfg["filters"], 1,
                                                bias_default=False)))
        x = append_ops(b.ops, pad_op("2_pad", pads, (x,), b.fmt))
        x = b.act("2_relu", b.bn("2_bn", b.conv("2_conv", x, cfg["filters"], k,
                                                strides=b.strides, padding="valid",
                                                bias_default=False, dilated=True)))
        x = b.conv("3_conv", x, b.out, 1)
    else:
        x = append_ops(b.ops, pad_op("1_pad", pads, (preact,), b.fmt))
        x = b.act("1_relu", b.bn("1_bn", b.conv("1_conv", x, cfg["filters"], k,
                                                strides=b.strides, padding="valid",
                                                bias_default=False, dilated=True)))
        x = b.conv("2_conv", x, cfg["filters"], k, dilated=True)
    x = b.branch_tail(x)
    return append_ops(b.ops, Op("out", "Add", {}, (shortcut, x)))


@register_spec("ResidualBlock", resolve=_resolve, defaults=RESIDUAL_BLOCK_DEFAULTS)
def residual_block(config: dict, input_shape: tuple) -> BlockGraph:
    """y = shortcut(x) + F(x).

    v1 bottleneck (keras ``residual_block_v1``): 1×1/s → BN → ReLU → k×k → BN → ReLU →
    1×1 (×expansion) → BN, add, ReLU; shortcut a 1×1/s conv + BN when shapes differ.
    v2 bottleneck (keras ``residual_block_v2``): BN → ReLU (pre-activation) shared by the
    1×1 projection shortcut and the branch 1×1 → BN → ReLU → pad → k×k/s → BN → ReLU →
    1×1, add; a strided identity shortcut is a 1×1 max pool.  ``basic`` replaces the
    bottleneck by two k×k convs with ``filters`` channels (ResNet18/34).
    """
    cfg = _resolve(config)
    if len(input_shape) != 4:
        raise ValueError(f"ResidualBlock takes 4D inputs, got shape {tuple(input_shape)}")
    builder = _Builder(cfg, channels_of(input_shape, cfg["data_format"]))
    if not builder.projection() and builder.in_channels != builder.out:
        raise ValueError(f"ResidualBlock: an identity shortcut needs {builder.out} input "
                         f"channels, got {builder.in_channels} (set `conv_shortcut`)")
    out = (_v1 if cfg["version"] == 1 else _v2)(builder)
    return BlockGraph(tuple(builder.ops), out)
