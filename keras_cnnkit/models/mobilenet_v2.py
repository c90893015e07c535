"""MobileNetV2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018, https://arxiv.org/abs/1801.04381.

Layer for layer keras.applications ``MobileNetV2`` at every ``alpha``: the stem and the
last 1x1 conv are ``ConvBNAct`` blocks, the body is 17 ``InvertedResidual`` blocks named
``expanded_conv_*`` and ``block_{i}_*`` as keras names them.
"""
from __future__ import annotations

import functools

from keras_cnnkit.blockspec import make_divisible
from keras_cnnkit.models.assembly import Family, assemble
from keras_cnnkit.models.registry import register_model
from keras_cnnkit.models.weights import WeightsFile

#: (expansion t, output channels c, repeats n, first stride s) per stage (Table 2).
MOBILENET_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
_BN = {"bn_epsilon": 1e-3, "bn_momentum": 0.999}


def _imagenet(include_top: bool, size: int, knobs: dict) -> WeightsFile:
    alpha = knobs["alpha"]
    if alpha not in IMAGENET_ALPHAS:
        raise ValueError(f"MobileNetV2 ImageNet weights exist for alpha in {IMAGENET_ALPHAS}; "
                         f"got alpha={alpha}")
    fname = (f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size}"
             f"{'' if include_top else '_no_top'}.h5")
    return WeightsFile(fname, _BASE_URL + fname)


MOBILENET_V2 = Family("MobileNetV2", default_size=224, min_size=32, dilatable=True,
                      residual=True, weight_sizes=(96, 128, 160, 192, 224),
                      imagenet=_imagenet)


def mobilenet_v2_body(x, ctx, alpha: float, stages=MOBILENET_V2_STAGES):
    """Stem conv, the inverted-residual stages of ``stages``, the last 1x1 conv."""
    x = ctx.block("ConvBNAct", {"filters": make_divisible(32 * alpha, 8), "kernel_size": 3,
                                "activation": "relu6", **_BN}, x, stride=2,
                  names={"conv": "Conv1", "bn": "bn_Conv1", "act": "Conv1_relu"})
    block_id = 0
    for expansion, channels, repeats, stride in stages:
        filters = make_divisible(int(channels * alpha), 8)
        for i in range(repeats):
            prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
            x = ctx.block("InvertedResidual", {"filters": filters, "expansion": expansion,
                                               **_BN}, x, prefix=prefix,
                          stride=stride if i == 0 else 1, residual=i > 0)
            block_id += 1
    last = make_divisible(1280 * alpha, 8) if alpha > 1.0 else 1280
    return ctx.block("ConvBNAct", {"filters": last, "kernel_size": 1, "padding": "valid",
                                   "activation": "relu6", **_BN}, x,
                     names={"conv": "Conv_1", "bn": "Conv_1_bn", "act": "out_relu"})


def resolve_alpha(alpha: float, options: dict) -> float:
    """MobileNets take ``alpha``; the common ``width_multiplier`` is an alias of it."""
    width = options.pop("width_multiplier", None)
    if width is None or width == alpha:
        return alpha
    if alpha != 1.0:
        raise ValueError(f"pass either `alpha` or `width_multiplier`, not both (got alpha="
                         f"{alpha}, width_multiplier={width})")
    return width


@register_model
def build_mobilenet_v2(include_top=True, weights=None, input_tensor=None, input_shape=None,
                       pooling=None, classes=1000, classifier_activation="softmax", name=None,
                       alpha=1.0, **options):
    """MobileNetV2, as keras.applications ``MobileNetV2`` (same layers, weights, outputs).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications; ``weights`` is None,
            ``"imagenet"`` (alpha in 0.35, 0.5, 0.75, 1.0, 1.3, 1.4; inputs 96-224) or a
            weights file path.
        alpha: width multiplier (``width_multiplier`` is an alias).
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`;
            ``output_stride`` 8/16 dilates the last stages, ``drop_path_rate`` applies to
            the 10 residual blocks.
    """
    alpha = resolve_alpha(alpha, options)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise ValueError(f"`alpha` must be a positive number, got {alpha!r}")
    return assemble(
        MOBILENET_V2, functools.partial(mobilenet_v2_body, alpha=alpha),
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
        name=name or (lambda rows: f"mobilenetv2_{alpha:0.2f}_{rows}"),
        knobs={"alpha": alpha},
        num_residual_blocks=sum(n - 1 for _, _, n, _ in MOBILENET_V2_STAGES), **options)
