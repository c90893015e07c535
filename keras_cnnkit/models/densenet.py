"""DenseNet121/169/201: Huang, Liu, van der Maaten & Weinberger, "Densely Connected
Convolutional Networks", CVPR 2017, https://arxiv.org/abs/1608.06993.

Layer for layer keras.applications ``DenseNet121/169/201``: a 7x7 stem, four
``DenseBlock`` stages (growth rate 32, named ``conv{stage}_block{i}_*``) joined by
``TransitionBlock`` layers (``pool{stage}_*``), a final BN-ReLU.
"""
from __future__ import annotations

import functools

from keras_cnnkit.models.assembly import Family, assemble
from keras_cnnkit.models.registry import register_model
from keras_cnnkit.models.weights import keras_apps_file

#: Dense layers per block (Table 1: DenseNet-121, -169, -201).
DENSENET_BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}
GROWTH_RATE = 32
_HASHES = {
    121: ("9d60b8095a5708f2dcce2bca79d332c7", "30ee3e1110167f948a6b9946edeeb738"),
    169: ("d699b8f76981ab1b30698df4c175e90b", "b8c4d4c20dd625c148057b9ff1c1176b"),
    201: ("1ceb130c1ea1b78c3bf6114dbdfd8807", "c13680b51ded0fb44dff2d8f86ac8bb1"),
}
_EPS = 1.001e-5


def _imagenet(include_top: bool, size: int, knobs: dict):
    del size
    depth = knobs["depth"]
    top_hash, notop_hash = _HASHES[depth]
    suffix = "" if include_top else "_notop"
    return keras_apps_file("densenet",
                           f"densenet{depth}_weights_tf_dim_ordering_tf_kernels{suffix}.h5",
                           top_hash if include_top else notop_hash)


DENSENET = Family("DenseNet", default_size=224, min_size=32, dilatable=True,
                  imagenet=_imagenet)


def densenet_body(x, ctx, blocks, growth_rate: int = GROWTH_RATE):
    """Stem, dense blocks with halving transitions between them, final BN-ReLU."""
    import keras

    fmt = ctx.data_format
    x = keras.layers.ZeroPadding2D(3, data_format=fmt, name="conv1_pad")(x)
    x = ctx.block("ConvBNAct", {"filters": ctx.width(64), "kernel_size": 7, "padding": "valid",
                                "bn_epsilon": _EPS}, x, stride=2,
                  names={"conv": "conv1_conv", "bn": "conv1_bn", "act": "conv1_relu"})
    x = keras.layers.ZeroPadding2D(1, data_format=fmt, name="pool1_pad")(x)
    x = ctx.layer(keras.layers.MaxPooling2D(3, strides=2, data_format=fmt, name="pool1"), x,
                  stride=2)
    for i, num_layers in enumerate(blocks):
        x = ctx.block("DenseBlock", {"num_layers": num_layers,
                                     "growth_rate": ctx.width(growth_rate)}, x,
                      prefix=f"conv{i + 2}_", stride_key=None)
        if i < len(blocks) - 1:
            x = ctx.block("TransitionBlock", {"compression": 0.5}, x, prefix=f"pool{i + 2}_",
                          stride=2, dilation_key=None)
    x = keras.layers.BatchNormalization(axis=ctx.channel_axis, epsilon=_EPS, name="bn")(x)
    return ctx.record(keras.layers.Activation("relu", name="relu")(x))


def _densenet(depth: int, include_top, weights, input_tensor, input_shape, pooling, classes,
              classifier_activation, name, options):
    return assemble(
        DENSENET, functools.partial(densenet_body, blocks=DENSENET_BLOCKS[depth]),
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, knobs={"depth": depth},
        **options)


@register_model
def build_densenet121(include_top=True, weights=None, input_tensor=None, input_shape=None,
                      pooling=None, classes=1000, classifier_activation="softmax",
                      name="densenet121", **options):
    """DenseNet121, as keras.applications ``DenseNet121`` (same layers, weights, outputs).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications; ``weights`` is None,
            ``"imagenet"`` or a weights file path.
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`;
            ``output_stride`` 8/16 drops the last transitions' pooling and dilates the
            dense blocks after them.  DenseNet concatenates instead of adding, so it has
            no residual branch for ``drop_path_rate``.
    """
    return _densenet(121, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name, options)


@register_model
def build_densenet169(include_top=True, weights=None, input_tensor=None, input_shape=None,
                      pooling=None, classes=1000, classifier_activation="softmax",
                      name="densenet169", **options):
    """DenseNet169, as keras.applications ``DenseNet169``; arguments as
    :func:`build_densenet121`."""
    return _densenet(169, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name, options)


@register_model
def build_densenet201(include_top=True, weights=None, input_tensor=None, input_shape=None,
                      pooling=None, classes=1000, classifier_activation="softmax",
                      name="densenet201", **options):
    """DenseNet201, as keras.applications ``DenseNet201``; arguments as
    :func:`build_densenet121`."""
    return _densenet(201, include_top, weights, input_tensor, input_shape, pooling, classes,
                     classifier_activation, name, options)
