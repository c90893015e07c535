"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep
Convolutional Neural Networks", NeurIPS 2012; the single-tower variant of torchvision
(Krizhevsky, "One weird trick for parallelizing convolutional neural networks", 2014).

torchvision ``alexnet`` layer for layer: five ReLU convs (11x11/4, 5x5, three 3x3), three
3x3/2 max pools, two 4096-unit ReLU FC layers with dropout, the classifier.
"""
from __future__ import annotations

import functools

from keras_cnnkit.models.assembly import Family, assemble, fc_head
from keras_cnnkit.models.registry import register_model

#: (name, filters, kernel, stride, padding, max pool after) of the five convs.
ALEXNET_CONVS = (
    ("conv1", 64, 11, 4, 2, True),
    ("conv2", 192, 5, 1, 2, True),
    ("conv3", 384, 3, 1, 1, False),
    ("conv4", 256, 3, 1, 1, False),
    ("conv5", 256, 3, 1, 1, True),
)

#: 63 px is the smallest input that leaves a 1x1 map after the third pool.
ALEXNET = Family("AlexNet", default_size=224, min_size=63)


def alexnet_body(x, ctx, convs):
    """The convs of ``convs`` with explicit zero padding, each pool 3x3 stride 2."""
    import keras

    for conv_name, filters, kernel, stride, pad, pool in convs:
        x = keras.layers.ZeroPadding2D(pad, data_format=ctx.data_format,
                                       name=f"{conv_name}_pad")(x)
        x = ctx.block("ConvBNAct", {"filters": ctx.width(filters), "kernel_size": kernel,
                                    "padding": "valid", "use_bn": False,
                                    "activation": "relu"}, x, stride=stride,
                      names={"conv": conv_name, "act": f"{conv_name}_relu"})
        if pool:
            x = ctx.layer(keras.layers.MaxPooling2D(3, strides=2, data_format=ctx.data_format,
                                                    name=f"{conv_name}_pool"), x, stride=2)
    return x


@register_model
def build_alexnet(include_top=True, weights=None, input_tensor=None, input_shape=None,
                  pooling=None, classes=1000, classifier_activation="softmax",
                  name="alexnet", dropout=0.5, **options):
    """AlexNet (torchvision's variant; 61,100,840 parameters at 224x224, 1000 classes).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications.  There are no Keras
            ImageNet weights; ``weights`` may be a weights file path.
        dropout: dropout before each hidden FC layer (0.5 in the paper).
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`.
    """
    return assemble(ALEXNET, functools.partial(alexnet_body, convs=ALEXNET_CONVS),
                    include_top=include_top, weights=weights, input_tensor=input_tensor,
                    input_shape=input_shape, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, name=name,
                    head=functools.partial(fc_head, names=("fc6", "fc7")), dropout=dropout,
                    **options)
