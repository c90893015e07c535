"""MobileNet (v1): Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", 2017, https://arxiv.org/abs/1704.04861.

Layer for layer keras.applications ``MobileNet`` at every ``alpha`` and
``depth_multiplier``: a ``ConvBNAct`` stem, 13 ``DepthwiseSeparableConv`` blocks named
``conv_dw_{i}``/``conv_pw_{i}`` and keras' 1x1-conv classifier (``conv_preds``).
"""
from __future__ import annotations

import functools

from keras_cnnkit.models.assembly import Family, assemble, head_dtype
from keras_cnnkit.models.mobilenet_v2 import resolve_alpha
from keras_cnnkit.models.registry import register_model
from keras_cnnkit.models.weights import WeightsFile

#: (pointwise filters, stride) of the 13 depthwise separable blocks (Table 1).
MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))
IMAGENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)
_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet/"
_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}


def _imagenet(include_top: bool, size: int, knobs: dict) -> WeightsFile:
    if knobs["depth_multiplier"] != 1:
        raise ValueError("MobileNet ImageNet weights exist only for depth_multiplier=1; got "
                         f"depth_multiplier={knobs['depth_multiplier']}")
    alpha = knobs["alpha"]
    if alpha not in IMAGENET_ALPHAS:
        raise ValueError(f"MobileNet ImageNet weights exist for alpha in {IMAGENET_ALPHAS}; "
                         f"got alpha={alpha}")
    fname = f"mobilenet_{_ALPHA_TEXT[alpha]}_{size}_tf{'' if include_top else '_no_top'}.h5"
    return WeightsFile(fname, _BASE_URL + fname)


MOBILENET = Family("MobileNet", default_size=224, min_size=32, dilatable=True,
                   weight_sizes=(128, 160, 192, 224), imagenet=_imagenet)


def mobilenet_body(x, ctx, alpha: float, depth_multiplier: int, blocks=MOBILENET_BLOCKS):
    """A strided ReLU6 stem conv, then the depthwise separable blocks of ``blocks``."""
    x = ctx.block("ConvBNAct", {"filters": int(32 * alpha), "kernel_size": 3,
                                "activation": "relu6"}, x, stride=2,
                  names={"conv": "conv1", "bn": "conv1_bn", "act": "conv1_relu"})
    for i, (filters, stride) in enumerate(blocks, start=1):
        names = {"pad": f"conv_pad_{i}", "dw": f"conv_dw_{i}", "dw_bn": f"conv_dw_{i}_bn",
                 "dw_relu": f"conv_dw_{i}_relu", "pw": f"conv_pw_{i}",
                 "pw_bn": f"conv_pw_{i}_bn", "pw_relu": f"conv_pw_{i}_relu"}
        x = ctx.block("DepthwiseSeparableConv",
                      {"filters": int(filters * alpha), "depth_multiplier": depth_multiplier,
                       "activation": "relu6"}, x, stride=stride, names=names)
    return x


def conv_preds_head(x, ctx, classes: int, classifier_activation):
    """keras' MobileNet top: pool (kept 4D), dropout, 1x1 conv, reshape, activation."""
    import keras

    x = keras.layers.GlobalAveragePooling2D(data_format=ctx.data_format, keepdims=True,
                                            name="avg_pool")(x)
    x = keras.layers.Dropout(ctx.options.dropout, name="dropout")(x)
    x = keras.layers.Conv2D(classes, 1, padding="same", data_format=ctx.data_format,
                            dtype=head_dtype(), name="conv_preds")(x)
    x = keras.layers.Reshape((classes,), name="reshape_2")(x)
    return keras.layers.Activation(classifier_activation, dtype=head_dtype(),
                                   name="predictions")(x)


@register_model
def build_mobilenet(include_top=True, weights=None, input_tensor=None, input_shape=None,
                    pooling=None, classes=1000, classifier_activation="softmax", name=None,
                    alpha=1.0, depth_multiplier=1, dropout=1e-3, **options):
    """MobileNet (v1), as keras.applications ``MobileNet`` (same layers, weights, outputs).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications; ``weights`` is None,
            ``"imagenet"`` (alpha in 0.25, 0.5, 0.75, 1.0; inputs 128-224) or a path.
        alpha: width multiplier (``width_multiplier`` is an alias).
        depth_multiplier: depthwise channel multiplier (resolution multiplier in keras).
        dropout: dropout before the classifier (keras' default 1e-3).
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`;
            ``output_stride`` 8/16 dilates the last blocks.  MobileNet has no residual
            branches, so ``drop_path_rate`` must be 0.
    """
    alpha = resolve_alpha(alpha, options)
    return assemble(
        MOBILENET, functools.partial(mobilenet_body, alpha=alpha,
                                     depth_multiplier=depth_multiplier),
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
        name=name or (lambda rows: f"mobilenet_{alpha:0.2f}_{rows}"), head=conv_preds_head,
        knobs={"alpha": alpha, "depth_multiplier": depth_multiplier}, dropout=dropout,
        **options)
