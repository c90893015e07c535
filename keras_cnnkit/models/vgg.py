"""VGG16: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, https://arxiv.org/abs/1409.1556 (configuration D).

Layer for layer keras.applications ``VGG16`` (each ``Conv2D(activation="relu")`` is
emitted as a ``ConvBNAct`` without batch norm: conv ``blockB_convI`` then a weightless
``blockB_convI_relu``), so its weight files load.
"""
from __future__ import annotations

import functools

from keras_cnnkit.models.assembly import Family, assemble, fc_head
from keras_cnnkit.models.registry import register_model
from keras_cnnkit.models.weights import keras_apps_file

#: (filters, 3x3 convs) per block, then a 2x2 max pool (Table 1, column D).
VGG16_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def _imagenet(include_top: bool, size: int, knobs: dict):
    del size, knobs
    if include_top:
        return keras_apps_file("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                               "64373286793e3c8b2b4e3219cbf3544b")
    return keras_apps_file("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "6d6bbae143d832006294945121d1f1fc")


VGG16 = Family("VGG16", default_size=224, min_size=32, imagenet=_imagenet)


def vgg_body(x, ctx, blocks):
    """Stacks of 3x3 ReLU convs, each stack closed by a 2x2 max pool."""
    import keras

    for b, (filters, convs) in enumerate(blocks, start=1):
        for i in range(1, convs + 1):
            x = ctx.block("ConvBNAct", {"filters": ctx.width(filters), "kernel_size": 3,
                                        "use_bn": False, "activation": "relu"}, x,
                          names={"conv": f"block{b}_conv{i}", "act": f"block{b}_conv{i}_relu"})
        x = ctx.layer(keras.layers.MaxPooling2D(2, strides=2, data_format=ctx.data_format,
                                                name=f"block{b}_pool"), x, stride=2)
    return x


@register_model
def build_vgg16(include_top=True, weights=None, input_tensor=None, input_shape=None,
                pooling=None, classes=1000, classifier_activation="softmax", name="vgg16",
                **options):
    """VGG16, as keras.applications ``VGG16`` (same layers, weights and outputs).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications; ``weights`` is None,
            ``"imagenet"`` or a weights file path.
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`
            (``in_channels``, ``features_only``, ``out_indices``, ``width_multiplier``,
            ``dropout``); VGG has no residual branches and cannot be dilated.
    """
    return assemble(VGG16, functools.partial(vgg_body, blocks=VGG16_BLOCKS),
                    include_top=include_top, weights=weights, input_tensor=input_tensor,
                    input_shape=input_shape, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, name=name, head=fc_head,
                    **options)
