"""``ClassifierHead``: global-average, global-max, Flatten+Dense and NIN 1×1-conv heads.

* Lin, Chen & Yan, "Network In Network", ICLR 2014, https://arxiv.org/abs/1312.4400
  (seeds 000, 002, 003: GAP replaces fully connected layers; 1×1 convs as classifier).
* Simonyan & Zisserman, ICLR 2015 (VGG's Flatten + Dense head; seed 003).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from keras_cnnkit.blockspec.core import spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


@register
class ClassifierHead(SpecBlock):
    """Feature map → ``(batch, classes)`` scores; 1D or 2D.

    =================  ====================================================================
    ``gap``            GlobalAveragePooling → Dense(hidden…) → Dense(classes): no spatial
                       weights, any input size
    ``gmp``            the same with global max pooling
    ``flatten_dense``  Flatten → Dense(hidden…) → Dense(classes) (VGG/AlexNet): weights
                       grow with the map size, fixed input size
    ``conv1x1``        Conv(hidden[0], ``kernel_size``, valid) → 1×1 convs → 1×1 conv to
                       ``classes`` → GAP → ``classifier_activation`` (NIN; Dense-equivalent
                       weights, any input size)
    =================  ====================================================================

    Args:
        classes: number of classes.
        variant: one of the table's rows.
        hidden_units: widths of hidden Dense layers (or convs for ``conv1x1``).
        kernel_size: ``conv1x1``: kernel of the first hidden conv (the map size turns it
            into FC6 of seed 002's example).
        dropout: rate of a Dropout before each Dense/conv layer (0: none).
        activation: of the hidden layers.
        classifier_activation: of the output (``None`` for logits).
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
    """

    DEFAULTS = spec_defaults("ClassifierHead")

    def __init__(self, classes, variant=DEFAULTS["variant"], hidden_units=DEFAULTS["hidden_units"],
                 kernel_size=DEFAULTS["kernel_size"], dropout=DEFAULTS["dropout"],
                 activation=DEFAULTS["activation"],
                 classifier_activation=DEFAULTS["classifier_activation"],
                 data_format=DEFAULTS["data_format"], **kwargs):
        super().__init__({
            "classes": classes, "variant": variant, "hidden_units": list(hidden_units or ()),
            "kernel_size": kernel_size, "dropout": dropout, "activation": activation,
            "classifier_activation": classifier_activation, "data_format": data_format},
            **kwargs)
