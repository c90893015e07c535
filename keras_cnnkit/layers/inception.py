"""``InceptionModule``: GoogLeNet (naive, v1) and Inception-V3 modules.

* Szegedy et al., "Going Deeper with Convolutions", CVPR 2015,
  https://arxiv.org/abs/1409.4842 (seeds 001-004).
* Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016,
  https://arxiv.org/abs/1512.00567 (seed 002).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from keras_cnnkit.blockspec.core import spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


@register
class InceptionModule(SpecBlock):
    """Parallel 1×1 / 3×3 / 5×5 / pooling branches, concatenated over channels (2D).

    Every conv is conv → BN(scale=False) → activation, as keras' ``conv2d_bn`` (with
    ``use_bn=False``: conv with bias → activation).  ``filters`` lists the branch widths
    in this order:

    ===================  ==========================================================
    ``naive``            1×1, 3×3, 5×5 (+ 3×3 max pool) (64, 128, 32)
    ``v1``               1×1, 3×3 reduce, 3×3, 5×5 reduce, 5×5, pool proj (GoogLeNet
                         table 1 columns; inception (3a): 64, 96, 128, 16, 32, 32)
    ``v3_a``             1×1, 5×5 reduce, 5×5, 3×3dbl reduce, 3×3dbl, pool proj
                         (64, 48, 64, 64, 96, ``pool_features``=32): keras mixed0-2
    ``v3_reduction_a``   3×3/2, 3×3dbl reduce, 3×3dbl/2 (384, 64, 96): mixed3
    ``v3_b``             1×1, 7×7 reduce, 7×7, 7×7dbl reduce, 7×7dbl, pool proj
                         (192, ``channels_7x7``=128, 192, c7, 192, 192); 7×7 as 1×7
                         then 7×1: mixed4-7
    ``v3_reduction_b``   3×3 reduce, 3×3/2, 7×7x3 reduce, 7×7x3/2 (192, 320, 192, 192):
                         mixed8
    ``v3_c``             1×1, 3×3 reduce, 3×3 (1×3 ‖ 3×1), 3×3dbl reduce, 3×3dbl
                         (1×3 ‖ 3×1), pool proj (320, 384, 384, 448, 384, 192): mixed9-10
    ===================  ==========================================================

    Args:
        variant: one of the table's rows.
        filters: the branch widths (``None``: the variant's defaults).
        pool_features: ``v3_a`` pool-projection width (keras: 32, 64, 64).
        channels_7x7: ``v3_b`` inner 7×7 width c7 (keras: 128, 160, 160, 192).
        kernel_5x5: kernel of the "5×5" branch of ``naive``/``v1`` (3 reproduces
            torchvision's GoogLeNet, pytorch/vision issue #906).
        activation: after each BN.
        use_bn: conv → BN → act (True) or conv with bias → act.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norms.
    """

    DEFAULTS = spec_defaults("InceptionModule")

    def __init__(self, variant=DEFAULTS["variant"], filters=DEFAULTS["filters"],
                 pool_features=DEFAULTS["pool_features"], channels_7x7=DEFAULTS["channels_7x7"],
                 kernel_5x5=DEFAULTS["kernel_5x5"], activation=DEFAULTS["activation"],
                 use_bn=DEFAULTS["use_bn"], data_format=DEFAULTS["data_format"],
                 bn_epsilon=DEFAULTS["bn_epsilon"], bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "variant": variant, "filters": None if filters is None else list(filters),
            "pool_features": pool_features, "channels_7x7": channels_7x7,
            "kernel_5x5": kernel_5x5,
            "activation": activation, "use_bn": use_bn, "data_format": data_format,
            "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum}, **kwargs)
