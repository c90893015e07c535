"""DenseNet blocks: ``DenseBlock`` and ``TransitionBlock``.

Huang, Liu, van der Maaten & Weinberger, "Densely Connected Convolutional Networks",
CVPR 2017, https://arxiv.org/abs/1608.06993 (seed 002).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from keras_cnnkit.blockspec.core import spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


@register
class DenseBlock(SpecBlock):
    """``num_layers`` densely connected layers, each BN-ReLU-1×1-BN-ReLU-3×3, concatenated.

    Every layer sees all earlier feature maps and adds ``growth_rate`` channels, so the
    block outputs ``C + num_layers·growth_rate`` channels (keras ``densenet.dense_block``).
    1D and 2D.

    Args:
        num_layers: layers in the block (DenseNet121: 6, 12, 24, 16).
        growth_rate: channels each layer adds (k, 32 in DenseNet121).
        bottleneck_width: 1×1 bottleneck filters as a multiple of ``growth_rate`` (4);
            0 drops the bottleneck.
        kernel_size, dilation_rate: of the k×k conv.
        activation: after each BN.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norms (keras: 1.001e-5, 0.99).
    """

    DEFAULTS = spec_defaults("DenseBlock")

    def __init__(self, num_layers, growth_rate=DEFAULTS["growth_rate"],
                 bottleneck_width=DEFAULTS["bottleneck_width"],
                 kernel_size=DEFAULTS["kernel_size"], dilation_rate=DEFAULTS["dilation_rate"],
                 activation=DEFAULTS["activation"], data_format=DEFAULTS["data_format"],
                 bn_epsilon=DEFAULTS["bn_epsilon"], bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "num_layers": num_layers, "growth_rate": growth_rate,
            "bottleneck_width": bottleneck_width, "kernel_size": kernel_size,
            "dilation_rate": dilation_rate, "activation": activation,
            "data_format": data_format, "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum},
            **kwargs)


@register
class TransitionBlock(SpecBlock):
    """BN → ReLU → 1×1 conv (``compression`` × channels) → 2×2 average pool, stride 2.

    keras ``densenet.transition_block``; 1D and 2D.

    Args:
        compression: output channels as a fraction of the input's, in (0, 1] (θ = 0.5).
        strides: pooling size and stride (2; 1 drops the pool).
        activation: after the BN.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norm.
    """

    DEFAULTS = spec_defaults("TransitionBlock")

    def __init__(self, compression=DEFAULTS["compression"], strides=DEFAULTS["strides"],
                 activation=DEFAULTS["activation"], data_format=DEFAULTS["data_format"],
                 bn_epsilon=DEFAULTS["bn_epsilon"], bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "compression": compression, "strides": strides, "activation": activation,
            "data_format": data_format, "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum},
            **kwargs)
