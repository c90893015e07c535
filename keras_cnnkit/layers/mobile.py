"""MobileNet blocks: ``DepthwiseSeparableConv`` (V1) and ``InvertedResidual`` (V2).

* Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
  Applications", 2017, https://arxiv.org/abs/1704.04861 (seeds 000-004).
* Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
  https://arxiv.org/abs/1801.04381 (seed 002).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from keras_cnnkit.blockspec.core import spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


@register
class DepthwiseSeparableConv(SpecBlock):
    """k×k depthwise conv → [BN → act] → 1×1 pointwise conv → [BN → act]; 1D or 2D.

    Parameters: ``C·k²·m (+C·m) + C·m·filters (+filters)`` against ``C·k²·filters`` for
    a standard conv; cost ratio ``1/filters + 1/k²`` (seed 003).

    Args:
        filters: output channels of the pointwise conv.
        kernel_size, strides, dilation_rate: of the depthwise conv.
        depth_multiplier: depthwise outputs per input channel.
        padding: ``"same"`` (strided: explicit pad + "valid", as keras MobileNet) or
            ``"valid"``.
        activation: after the pointwise conv (``None`` for none).
        mid_activation: after the depthwise conv; ``None`` means ``activation``,
            ``"linear"`` means none (Xception style).
        use_bn: BN after the pointwise conv.
        mid_use_bn: BN after the depthwise conv; ``None`` means ``use_bn``.
        use_bias: bias of both convs; ``None``: a conv has a bias when no BN follows it.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norms.
    """

    DEFAULTS = spec_defaults("DepthwiseSeparableConv")

    def __init__(self, filters, kernel_size=DEFAULTS["kernel_size"], strides=DEFAULTS["strides"],
                 depth_multiplier=DEFAULTS["depth_multiplier"],
                 dilation_rate=DEFAULTS["dilation_rate"], padding=DEFAULTS["padding"],
                 activation=DEFAULTS["activation"], mid_activation=DEFAULTS["mid_activation"],
                 use_bn=DEFAULTS["use_bn"], mid_use_bn=DEFAULTS["mid_use_bn"],
                 use_bias=DEFAULTS["use_bias"], data_format=DEFAULTS["data_format"],
                 bn_epsilon=DEFAULTS["bn_epsilon"], bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "filters": filters, "kernel_size": kernel_size, "strides": strides,
            "dilation_rate": dilation_rate, "depth_multiplier": depth_multiplier,
            "padding": padding, "activation": activation,
            "mid_activation": mid_activation, "use_bn": use_bn, "mid_use_bn": mid_use_bn,
            "use_bias": use_bias, "data_format": data_format, "bn_epsilon": bn_epsilon,
            "bn_momentum": bn_momentum}, **kwargs)


@register
class InvertedResidual(SpecBlock):
    """MobileNetV2 block: 1×1 expand → ReLU6 → depthwise → ReLU6 → 1×1 linear project.

    The projection has no activation (a ReLU on the narrow tensor destroys information,
    seed 002); the identity shortcut is added only when ``strides`` is 1 and the input
    already has ``filters`` channels.  Strided blocks pad with keras' ``correct_pad``
    and run the depthwise conv "valid", exactly like ``keras.applications.MobileNetV2``.

    Args:
        filters: output channels.
        expansion: expansion factor t (>= 1; 1 drops the expand conv).
        strides, kernel_size, dilation_rate: of the depthwise conv.
        activation: of the expand and depthwise convs.
        use_se: squeeze-excite after the depthwise activation (MobileNetV3 style).
        se_ratio: its width relative to the expanded channels.
        drop_path_rate: stochastic depth on the residual branch (only with a shortcut).
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norms (keras: 1e-3, 0.999).
    """

    DEFAULTS = spec_defaults("InvertedResidual")

    def __init__(self, filters, expansion=DEFAULTS["expansion"], strides=DEFAULTS["strides"],
                 kernel_size=DEFAULTS["kernel_size"], dilation_rate=DEFAULTS["dilation_rate"],
                 activation=DEFAULTS["activation"], use_se=DEFAULTS["use_se"],
                 se_ratio=DEFAULTS["se_ratio"], drop_path_rate=DEFAULTS["drop_path_rate"],
                 data_format=DEFAULTS["data_format"], bn_epsilon=DEFAULTS["bn_epsilon"],
                 bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "filters": filters, "expansion": expansion, "strides": strides,
            "kernel_size": kernel_size, "dilation_rate": dilation_rate,
            "activation": activation, "use_se": use_se,
            "se_ratio": se_ratio, "drop_path_rate": drop_path_rate, "data_format": data_format,
            "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum}, **kwargs)
