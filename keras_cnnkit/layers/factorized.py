"""``FactorizedConv`` (stacked 3×3 or asymmetric 1×n/n×1) and ``Bottleneck1x1``.

* Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
  Recognition", ICLR 2015, https://arxiv.org/abs/1409.1556 (stacked 3×3; seeds 001-004).
* Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
  https://arxiv.org/abs/1512.00567 (asymmetric factorisation; seed 002).
* Lin, Chen & Yan, "Network In Network", ICLR 2014, https://arxiv.org/abs/1312.4400
  (1×1 convolutions; seeds 000-004).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from keras_cnnkit.blockspec.core import spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


@register
class FactorizedConv(SpecBlock):
    """A k×k conv factorised into small convs with the same receptive field.

    ``mode="stacked"``: (k−1)/2 stacked 3×3 convs (k odd; 1D or 2D): two 3×3 layers
    cost ``2·9·C·F`` against ``25·C·F`` for one 5×5 and add a non-linearity.
    ``mode="asymmetric"``: a 1×k then a k×1 conv (2D): ``2·k·C·F`` against ``k²·C·F``.
    Every conv is conv → BN → activation; the last one has ``strides`` and ``filters``.

    Args:
        filters: output channels.
        kernel_size: k of the k×k conv being replaced (an int).
        mode: ``"stacked"`` or ``"asymmetric"``.
        strides: of the block (on the last conv).
        padding: ``"same"`` or ``"valid"`` (every conv).
        intermediate_filters: width of the inner convs (``None``: ``filters``).
        activation: after each conv.
        use_bn: BN after each conv.
        use_bias: conv biases; ``None`` means ``not use_bn``.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norms.
    """

    DEFAULTS = spec_defaults("FactorizedConv")

    def __init__(self, filters, kernel_size=DEFAULTS["kernel_size"], mode=DEFAULTS["mode"],
                 strides=DEFAULTS["strides"], padding=DEFAULTS["padding"],
                 intermediate_filters=DEFAULTS["intermediate_filters"],
                 activation=DEFAULTS["activation"], use_bn=DEFAULTS["use_bn"],
                 use_bias=DEFAULTS["use_bias"], data_format=DEFAULTS["data_format"],
                 bn_epsilon=DEFAULTS["bn_epsilon"], bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "filters": filters, "kernel_size": kernel_size, "mode": mode, "strides": strides,
            "padding": padding, "intermediate_filters": intermediate_filters,
            "activation": activation, "use_bn": use_bn, "use_bias": use_bias,
            "data_format": data_format, "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum},
            **kwargs)


@register
class Bottleneck1x1(SpecBlock):
    """1×1 reduce → k×k → optional 1×1 expand (conv → BN → activation each); 1D or 2D.

    Without ``expand``: ``C → bottleneck_filters → filters`` (seed 000: 24 → 12 → 48 costs
    5,532 parameters instead of 10,416).  With ``expand``: ``C → b → b → filters``
    (seeds 001/004: 256 → 64 → 64 → 256 costs 69,632 instead of 589,824).

    Args:
        filters: output channels.
        bottleneck_filters: width of the 1×1 reduction (``None``: ``filters // 4``).
        kernel_size, strides: of the k×k conv.
        expand: add the 1×1 expansion conv.
        padding: of the k×k conv.
        activation: after each conv.
        use_bn: BN after each conv.
        use_bias: a bool for every conv, or one bool per conv (reduce, k×k[, expand]);
            ``None`` means ``not use_bn``.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norms.
    """

    DEFAULTS = spec_defaults("Bottleneck1x1")

    def __init__(self, filters, bottleneck_filters=DEFAULTS["bottleneck_filters"],
                 kernel_size=DEFAULTS["kernel_size"], strides=DEFAULTS["strides"],
                 expand=DEFAULTS["expand"], padding=DEFAULTS["padding"],
                 activation=DEFAULTS["activation"], use_bn=DEFAULTS["use_bn"],
                 use_bias=DEFAULTS["use_bias"], data_format=DEFAULTS["data_format"],
                 bn_epsilon=DEFAULTS["bn_epsilon"], bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "filters": filters, "bottleneck_filters": bottleneck_filters,
            "kernel_size": kernel_size, "strides": strides, "expand": expand,
            "padding": padding, "activation": activation, "use_bn": use_bn,
            "use_bias": use_bias, "data_format": data_format, "bn_epsilon": bn_epsilon,
            "bn_momentum": bn_momentum}, **kwargs)
