"""``ResidualBlock``: basic and bottleneck, v1 and pre-activation v2.

* He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
  https://arxiv.org/abs/1512.03385 (seeds 000-004).
* He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016,
  https://arxiv.org/abs/1603.05027.
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from keras_cnnkit.blockspec.core import spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


@register
class ResidualBlock(SpecBlock):
    """y = shortcut(x) + F(x), with a 1×1 projection shortcut when shapes differ (2D).

    ``variant="bottleneck"``: 1×1 reduce to ``filters`` → k×k → 1×1 expand to
    ``filters·expansion`` (keras ResNet50 ``residual_block_v1`` / ResNet50V2
    ``residual_block_v2``, layer for layer, biases included).  ``variant="basic"``:
    two k×k convs with ``filters`` channels (ResNet18/34).  ``version=1`` adds, then
    applies the activation (``out``); ``version=2`` pre-activates (BN → ReLU first)
    and adds last.

    Args:
        filters: bottleneck width (bottleneck) or output channels (basic).
        variant: ``"basic"`` or ``"bottleneck"``.
        version: 1 (post-activation) or 2 (pre-activation).
        strides: of the block (v1: on the first 1×1, as keras; v2: on the k×k).
        kernel_size, dilation_rate: of the k×k conv(s).
        expansion: bottleneck output channels / ``filters`` (4).
        conv_shortcut: ``"auto"`` (projection when channels or, in v1, strides
            change), ``True`` or ``False``.
        use_bias: conv biases; ``None`` follows keras (v1: every conv; v2: convs not
            followed by BN).
        activation: the block's activation.
        use_se: squeeze-excite at the end of the residual branch (SENet).
        se_ratio: its width relative to the output channels.
        drop_path_rate: stochastic depth on the residual branch.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norms (keras: 1.001e-5, 0.99).
    """

    DEFAULTS = spec_defaults("ResidualBlock")

    def __init__(self, filters, variant=DEFAULTS["variant"], version=DEFAULTS["version"],
                 strides=DEFAULTS["strides"], kernel_size=DEFAULTS["kernel_size"],
                 dilation_rate=DEFAULTS["dilation_rate"], expansion=DEFAULTS["expansion"],
                 conv_shortcut=DEFAULTS["conv_shortcut"], use_bias=DEFAULTS["use_bias"],
                 activation=DEFAULTS["activation"], use_se=DEFAULTS["use_se"],
                 se_ratio=DEFAULTS["se_ratio"], drop_path_rate=DEFAULTS["drop_path_rate"],
                 data_format=DEFAULTS["data_format"], bn_epsilon=DEFAULTS["bn_epsilon"],
                 bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "filters": filters, "variant": variant, "version": version, "strides": strides,
            "kernel_size": kernel_size, "dilation_rate": dilation_rate,
            "expansion": expansion, "conv_shortcut": conv_shortcut, "use_bias": use_bias,
            "activation": activation, "use_se": use_se, "se_ratio": se_ratio,
            "drop_path_rate": drop_path_rate, "data_format": data_format,
            "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum}, **kwargs)
