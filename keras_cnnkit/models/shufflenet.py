"""ShuffleNetV2: Ma, Zhang, Zheng & Sun, "ShuffleNet V2: Practical Guidelines for
Efficient CNN Architecture Design", ECCV 2018, https://arxiv.org/abs/1807.11164
(channel shuffle).

torchvision's ``shufflenet_v2_x{0_5,1_0,1_5,2_0}`` layer for layer: a 3x3/2 conv and a
3x3/2 max pool, three stages of ``ShuffleUnit`` (version 2; the first unit of each stage
strided), a 1x1 conv, global pooling and the classifier.
"""
from __future__ import annotations

import functools

from keras_cnnkit.models.assembly import Family, assemble
from keras_cnnkit.models.registry import register_model

#: Output channels of stages 2-4 and of conv5 per width multiplier (Table 5).
SHUFFLENET_V2_WIDTHS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
#: Units per stage 2-4 (Table 5).
SHUFFLENET_V2_REPEATS = (4, 8, 4)
STEM_CHANNELS = 24
#: torchvision's batch-norm epsilon (PyTorch's default).
_BN = {"bn_epsilon": 1e-5}

SHUFFLENET_V2 = Family("ShuffleNetV2", default_size=224, min_size=32)


def shufflenet_v2_body(x, ctx, widths, repeats=SHUFFLENET_V2_REPEATS):
    """Stem conv and pool, the shuffle stages, the last 1x1 conv."""
    import keras

    fmt = ctx.data_format
    x = keras.layers.ZeroPadding2D(1, data_format=fmt, name="conv1_pad")(x)
    x = ctx.block("ConvBNAct", {"filters": STEM_CHANNELS, "kernel_size": 3,
                                "padding": "valid", **_BN}, x, stride=2, prefix="conv1_")
    # Zero padding equals PyTorch's -inf padding here: the input is post-ReLU.
    x = keras.layers.ZeroPadding2D(1, data_format=fmt, name="pool1_pad")(x)
    x = ctx.layer(keras.layers.MaxPooling2D(3, strides=2, data_format=fmt, name="pool1"), x,
                  stride=2)
    for stage, (channels, units) in enumerate(zip(widths, repeats), start=2):
        for i in range(1, units + 1):
            x = ctx.block("ShuffleUnit", {"filters": channels, "version": 2, **_BN}, x,
                          prefix=f"stage{stage}_unit{i}_", stride=2 if i == 1 else 1)
    return ctx.block("ConvBNAct", {"filters": widths[-1], "kernel_size": 1, **_BN}, x,
                     prefix="conv5_")


def _check_width(width) -> float:
    if width not in SHUFFLENET_V2_WIDTHS:
        raise ValueError(f"ShuffleNetV2 `width_multiplier` must be one of "
                         f"{sorted(SHUFFLENET_V2_WIDTHS)}, got {width!r}")
    return float(width)


@register_model
def build_shufflenet_v2(include_top=True, weights=None, input_tensor=None, input_shape=None,
                        pooling=None, classes=1000, classifier_activation="softmax",
                        name=None, width_multiplier=1.0, **options):
    """ShuffleNetV2 at ``width_multiplier`` 0.5, 1.0, 1.5 or 2.0 (torchvision's four).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications.  There are no Keras
            ImageNet weights; ``weights`` may be a weights file path.
        width_multiplier: the "x" of ``shufflenet_v2_x1_0``; picks Table 5's widths.
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`.
            The units concatenate rather than add and are strided inside, so
            ``drop_path_rate`` is 0 and ``output_stride`` 32.
    """
    width = _check_width(width_multiplier)
    return assemble(
        SHUFFLENET_V2, functools.partial(shufflenet_v2_body, widths=SHUFFLENET_V2_WIDTHS[width]),
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation,
        name=name or f"shufflenet_v2_x{str(width).replace('.', '_')}", **options)


for _width in SHUFFLENET_V2_WIDTHS:
    register_model(name=f"shufflenet_v2_x{str(_width).replace('.', '_')}",
                   width_multiplier=_width)(build_shufflenet_v2)
