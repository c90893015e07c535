"""``SqueezeExcite``: channel attention from a global average.

Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
https://arxiv.org/abs/1709.01507 (seeds 001, 004).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from keras_cnnkit.blockspec.core import spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


@register
class SqueezeExcite(SpecBlock):
    """GAP → 1×1 conv (reduce, bias) → act → 1×1 conv (expand, bias) → gate → × input.

    Works on 1D and 2D inputs.  The squeeze width is
    ``make_divisible(channels * se_ratio, divisor)`` (timm/MobileNet rounding; use
    ``divisor=1`` for plain rounding).

    Args:
        se_ratio: squeeze width relative to the input channels, in (0, 1].
        divisor: round the squeeze width to a multiple of this.
        activation: activation after the reduce conv.
        gate: gate activation (``"sigmoid"``, ``"hard_sigmoid"``, ...).
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
    """

    DEFAULTS = spec_defaults("SqueezeExcite")

    def __init__(self, se_ratio=DEFAULTS["se_ratio"], divisor=DEFAULTS["divisor"],
                 activation=DEFAULTS["activation"], gate=DEFAULTS["gate"],
                 data_format=DEFAULTS["data_format"], **kwargs):
        super().__init__({
            "se_ratio": se_ratio, "divisor": divisor, "activation": activation, "gate": gate,
            "data_format": data_format}, **kwargs)
