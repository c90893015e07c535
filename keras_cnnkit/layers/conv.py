"""``ConvBNAct`` (conv, optional batch norm and activation) and ``DilatedConv``, 1D and 2D.

``DilatedConv``: Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions",
ICLR 2016, https://arxiv.org/abs/1511.07122 (seeds 001, 004).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from keras_cnnkit.blockspec.core import spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


@register
class ConvBNAct(SpecBlock):
    """Conv → BatchNorm (``use_bn``) → activation; Conv1D or Conv2D by the input rank.

    Args:
        filters: output channels.
        kernel_size, strides, dilation_rate: int or tuple, as in ``keras.layers.Conv2D``.
        padding: ``"same"`` or ``"valid"``.
        groups: grouped convolution (native Keras groups).
        activation: any Keras activation name, ``"relu6"`` or ``None``.
        use_bn: add ``BatchNormalization`` after the conv.
        use_bias: conv bias; defaults to ``not use_bn`` (a bias before BN is redundant).
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norm.
        bn_scale: learn the BN scale (False where a ReLU follows, as keras' Inception).
    """

    DEFAULTS = spec_defaults("ConvBNAct")

    def __init__(self, filters, kernel_size=DEFAULTS["kernel_size"], strides=DEFAULTS["strides"],
                 padding=DEFAULTS["padding"], dilation_rate=DEFAULTS["dilation_rate"],
                 groups=DEFAULTS["groups"], activation=DEFAULTS["activation"],
                 use_bn=DEFAULTS["use_bn"], use_bias=DEFAULTS["use_bias"],
                 data_format=DEFAULTS["data_format"], bn_epsilon=DEFAULTS["bn_epsilon"],
                 bn_momentum=DEFAULTS["bn_momentum"], bn_scale=DEFAULTS["bn_scale"], **kwargs):
        super().__init__({
            "filters": filters, "kernel_size": kernel_size, "strides": strides,
            "padding": padding, "dilation_rate": dilation_rate, "groups": groups,
            "activation": activation, "use_bn": use_bn, "use_bias": use_bias,
            "data_format": data_format, "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum,
            "bn_scale": bn_scale}, **kwargs)


@register
class DilatedConv(SpecBlock):
    """Dilated (atrous) conv → BatchNorm → activation, 1D or 2D.

    A k-tap kernel with dilation d covers ``d·(k−1)+1`` inputs per axis with k weights:
    a larger receptive field at the same parameter count.  Arguments as
    :class:`ConvBNAct`; ``dilation_rate`` defaults to 2 and cannot be combined with
    ``strides`` > 1.
    """

    DEFAULTS = spec_defaults("DilatedConv")

    def __init__(self, filters, kernel_size=DEFAULTS["kernel_size"],
                 dilation_rate=DEFAULTS["dilation_rate"], strides=DEFAULTS["strides"],
                 padding=DEFAULTS["padding"], groups=DEFAULTS["groups"],
                 activation=DEFAULTS["activation"], use_bn=DEFAULTS["use_bn"],
                 use_bias=DEFAULTS["use_bias"], data_format=DEFAULTS["data_format"],
                 bn_epsilon=DEFAULTS["bn_epsilon"], bn_momentum=DEFAULTS["bn_momentum"],
                 bn_scale=DEFAULTS["bn_scale"], **kwargs):
        super().__init__({
            "filters": filters, "kernel_size": kernel_size, "strides": strides,
            "padding": padding, "dilation_rate": dilation_rate, "groups": groups,
            "activation": activation, "use_bn": use_bn, "use_bias": use_bias,
            "data_format": data_format, "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum,
            "bn_scale": bn_scale}, **kwargs)
