"""Spec of ``InceptionModule``: GoogLeNet (naive, v1) and Inception-V3 modules.

* Szegedy et al., "Going Deeper with Convolutions", CVPR 2015,
  https://arxiv.org/abs/1409.4842 (Inception v1 / GoogLeNet; seeds 001-004).
* Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
  https://arxiv.org/abs/1512.00567 (Inception-V3: factorised and asymmetric convs, the
  wide "NININ" modules; seed 002).

The V3 variants are keras.applications ``inception_v3`` mixed0-10, branch for branch:
every conv is ``conv2d_bn`` (Conv2D without bias → BatchNormalization(scale=False) →
ReLU), created in keras' order, concatenated in keras' order.  Each conv unit is named
``<branch>_conv``, ``<branch>_bn``, ``<branch>_act``, the pooling ``pool`` and the
output ``concat`` (V3-C's inner merges: ``b3x3_concat``, ``b3x3dbl_concat``).
"""
from __future__ import annotations

from keras_cnnkit.blockspec.core import (
    BLOCK_INPUT,
    BlockGraph,
    check_choice,
    check_int,
    register_spec,
    with_defaults,
)
from keras_cnnkit.blockspec.specs.conv import (
    append_ops,
    check_common,
    concat_op,
    conv_bn_act_ops,
    pool_op,
    rank_of,
)

#: The width arguments of each variant, in ``filters`` order, with their defaults:
#: GoogLeNet's inception (3a) for ``naive`` and ``v1``, keras' for the V3 variants.
VARIANT_WIDTHS = {
    "naive": (("b1x1", "b3x3", "b5x5"), (64, 128, 32)),
    "v1": (("b1x1", "b3x3_reduce", "b3x3", "b5x5_reduce", "b5x5", "pool_proj"),
           (64, 96, 128, 16, 32, 32)),
    "v3_a": (("b1x1", "b5x5_reduce", "b5x5", "b3x3dbl_reduce", "b3x3dbl", "pool_proj"),
             (64, 48, 64, 64, 96, 32)),
    "v3_reduction_a": (("b3x3", "b3x3dbl_reduce", "b3x3dbl"), (384, 64, 96)),
    "v3_b": (("b1x1", "b7x7_reduce", "b7x7", "b7x7dbl_reduce", "b7x7dbl", "pool_proj"),
             (192, 128, 192, 128, 192, 192)),
    "v3_reduction_b": (("b3x3_reduce", "b3x3", "b7x7x3_reduce", "b7x7x3"),
                       (192, 320, 192, 192)),
    "v3_c": (("b1x1", "b3x3_reduce", "b3x3", "b3x3dbl_reduce", "b3x3dbl", "pool_proj"),
             (320, 384, 384, 448, 384, 192)),
}

INCEPTION_DEFAULTS = {
    "variant": "v1", "filters": None, "pool_features": None, "channels_7x7": None,
    "kernel_5x5": 5,
    "activation": "relu", "use_bn": True, "data_format": None,
    "bn_epsilon": 1e-3, "bn_momentum": 0.99,
}


def variant_filters(cfg: dict) -> tuple:
    """The branch widths of ``cfg``'s variant (see :data:`VARIANT_WIDTHS`)."""
    names, defaults = VARIANT_WIDTHS[cfg["variant"]]
    if cfg["filters"] is not None:
        filters = tuple(cfg["filters"])
        if len(filters) != len(names):
            raise ValueError(f"`filters` of variant {cfg['variant']!r} holds {len(names)} "
                             f"widths ({', '.join(names)}), got {cfg['filters']!r}")
        for f in filters:
            check_int(f, "filters")
        return filters
    filters = list(defaults)
    if cfg["pool_features"] is not None:
        filters[-1] = cfg["pool_features"]
    if cfg["channels_7x7"] is not None:
        filters[1] = filters[3] = cfg["channels_7x7"]
    return tuple(filters)


def _resolve(config: dict) -> dict:
    cfg = check_common(with_defaults("InceptionModule", config, INCEPTION_DEFAULTS))
    check_choice(cfg["variant"], "variant", tuple(VARIANT_WIDTHS))
    check_int(cfg["kernel_5x5"], "kernel_5x5")
    if cfg["pool_features"] is not None:
        if cfg["variant"] != "v3_a":
            raise ValueError("`pool_features` applies to variant 'v3_a' only")
        check_int(cfg["pool_features"], "pool_features")
    if cfg["channels_7x7"] is not None:
        if cfg["variant"] != "v3_b":
            raise ValueError("`channels_7x7` applies to variant 'v3_b' only")
        check_int(cfg["channels_7x7"], "channels_7x7")
    variant_filters(cfg)
    return cfg


class _Builder:
    """Collects the ops of one module; ``unit`` adds a conv2d_bn unit."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.ops: list = []

    def unit(self, name: str, src: str, filters: int, kernel_size, strides=1,
             padding: str = "same") -> str:
        """Conv (no bias with BN) → BN(scale=False) → activation; returns its output."""
        unit_cfg = {
            "filters": filters, "kernel_size": kernel_size, "strides": strides,
            "padding": padding, "activation": self.cfg["activation"],
            "use_bn": self.cfg["use_bn"], "data_format": self.cfg["data_format"],
            "bn_epsilon": self.cfg["bn_epsilon"], "bn_momentum": self.cfg["bn_momentum"],
        }
        return append_ops(self.ops, *conv_bn_act_ops(name + "_", unit_cfg, (src,), 2,
                                                     bn_scale=False))

    def chain(self, name: str, src: str, layers: list) -> str:
        """Units ``name_1``, ``name_2``, ... of ``(filters, kernel[, strides, padding])``."""
        for i, args in enumerate(layers, start=1):
            src = self.unit(f"{name}_{i}", src, *args)
        return src

    def pool(self, kind: str, strides: int, padding: str) -> str:
        """A 3×3 pooling of the block input, named ``pool``."""
        return append_ops(self.ops, pool_op("pool", kind, 2, (BLOCK_INPUT,), 3, strides,
                                            padding, self.cfg["data_format"]))

    def concat(self, name: str, inputs: tuple) -> str:
        """Concatenate ``inputs`` over channels."""
        return append_ops(self.ops, concat_op(name, inputs, self.cfg["data_format"]))


def _naive(b: _Builder, f: tuple) -> tuple:
    return (b.unit("b1x1", BLOCK_INPUT, f[0], 1), b.unit("b3x3", BLOCK_INPUT, f[1], 3),
            b.unit("b5x5", BLOCK_INPUT, f[2], b.cfg["kernel_5x5"]), b.pool("max", 1, "same"))


def _v1(b: _Builder, f: tuple) -> tuple:
    b1 = b.unit("b1x1", BLOCK_INPUT, f[0], 1)
    b3 = b.chain("b3x3", BLOCK_INPUT, [(f[1], 1), (f[2], 3)])
    b5 = b.chain("b5x5", BLOCK_INPUT, [(f[3], 1), (f[4], b.cfg["kernel_5x5"])])
    return b1, b3, b5, b.unit("bpool", b.pool("max", 1, "same"), f[5], 1)


def _v3_a(b: _Builder, f: tuple) -> tuple:
    b1 = b.unit("b1x1", BLOCK_INPUT, f[0], 1)
    b5 = b.chain("b5x5", BLOCK_INPUT, [(f[1], 1), (f[2], 5)])
    b3 = b.chain("b3x3dbl", BLOCK_INPUT, [(f[3], 1), (f[4], 3), (f[4], 3)])
    return b1, b5, b3, b.unit("bpool", b.pool("avg", 1, "same"), f[5], 1)


def _v3_reduction_a(b: _Builder, f: tuple) -> tuple:
    b3 = b.unit("b3x3", BLOCK_INPUT, f[0], 3, 2, "valid")
    dbl = b.chain("b3x3dbl", BLOCK_INPUT, [(f[1], 1), (f[2], 3), (f[2], 3, 2, "valid")])
    return b3, dbl, b.pool("max", 2, "valid")


def _v3_b(b: _Builder, f: tuple) -> tuple:
    b1 = b.unit("b1x1", BLOCK_INPUT, f[0], 1)
    b7 = b.chain("b7x7", BLOCK_INPUT, [(f[1], 1), (f[1], (1, 7)), (f[2], (7, 1))])
    dbl = b.chain("b7x7dbl", BLOCK_INPUT, [(f[3], 1), (f[3], (7, 1)), (f[3], (1, 7)),
                                           (f[3], (7, 1)), (f[4], (1, 7))])
    return b1, b7, dbl, b.unit("bpool", b.pool("avg", 1, "same"), f[5], 1)


def _v3_reduction_b(b: _Builder, f: tuple) -> tuple:
    b3 = b.chain("b3x3", BLOCK_INPUT, [(f[0], 1), (f[1], 3, 2, "valid")])
    b7 = b.chain("b7x7x3", BLOCK_INPUT, [(f[2], 1), (f[3], (1, 7)), (f[3], (7, 1)),
                                         (f[3], 3, 2, "valid")])
    return b3, b7, b.pool("max", 2, "valid")


def _v3_c(b: _Builder, f: tuple) -> tuple:
    b1 = b.unit("b1x1", BLOCK_INPUT, f[0], 1)
    b3 = b.unit("b3x3_1", BLOCK_INPUT, f[1], 1)
    b3 = b.concat("b3x3_concat", (b.unit("b3x3_2a", b3, f[2], (1, 3)),
                                  b.unit("b3x3_2b", b3, f[2], (3, 1))))
    dbl = b.chain("b3x3dbl", BLOCK_INPUT, [(f[3], 1), (f[4], 3)])
    dbl = b.concat("b3x3dbl_concat", (b.unit("b3x3dbl_3a", dbl, f[4], (1, 3)),
                                      b.unit("b3x3dbl_3b", dbl, f[4], (3, 1))))
    return b1, b3, dbl, b.unit("bpool", b.pool("avg", 1, "same"), f[5], 1)


_VARIANTS = {"naive": _naive, "v1": _v1, "v3_a": _v3_a, "v3_reduction_a": _v3_reduction_a,
             "v3_b": _v3_b, "v3_reduction_b": _v3_reduction_b, "v3_c": _v3_c}


@register_spec("InceptionModule", resolve=_resolve, defaults=INCEPTION_DEFAULTS)
def inception_module(config: dict, input_shape: tuple) -> BlockGraph:
    """Parallel branches over the same input, concatenated over channels.

    ``kernel_5x5`` (variants naive and v1) is the kernel of the "5×5" branch: 5 as in
    the paper, 3 reproduces torchvision's GoogLeNet (pytorch/vision issue #906).
    """
    cfg = _resolve(config)
    rank_of(input_shape, "InceptionModule", (2,))
    builder = _Builder(cfg)
    branches = _VARIANTS[cfg["variant"]](builder, variant_filters(cfg))
    out = builder.concat("concat", branches)
    return BlockGraph(tuple(builder.ops), out)
