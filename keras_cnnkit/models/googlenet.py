"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions", CVPR 2015,
https://arxiv.org/abs/1409.4842, with optional auxiliary classifiers.

The layout of Table 1 as torchvision builds it: batch-normalised convs instead of the
paper's local response normalisation, nine ``InceptionModule`` (variant ``"v1"``)
blocks, global average pooling, dropout and the classifier.  The "5x5" branches are
5x5 as in the paper; ``kernel_5x5=3`` reproduces torchvision's ``googlenet`` (its known
deviation, pytorch/vision issue #906).
"""
from __future__ import annotations

import functools

from keras_cnnkit.models.assembly import Family, assemble, dense_head, head_dtype
from keras_cnnkit.models.registry import register_model

#: (name, widths #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj) per module;
#: ``None`` is a stride-2 max pool (Table 1).
GOOGLENET_MODULES = (
    ("inception3a", (64, 96, 128, 16, 32, 32)),
    ("inception3b", (128, 128, 192, 32, 96, 64)),
    None,
    ("inception4a", (192, 96, 208, 16, 48, 64)),
    ("inception4b", (160, 112, 224, 24, 64, 64)),
    ("inception4c", (128, 128, 256, 24, 64, 64)),
    ("inception4d", (112, 144, 288, 32, 64, 64)),
    ("inception4e", (256, 160, 320, 32, 128, 128)),
    None,
    ("inception5a", (256, 160, 320, 32, 128, 128)),
    ("inception5b", (384, 192, 384, 48, 128, 128)),
)
#: The modules whose outputs feed the auxiliary classifiers.
AUX_TAPS = ("inception4a", "inception4d")
#: The auxiliary classifiers' 5x5/3 average pool needs a 5x5 map at stride 16.
AUX_MIN_SIZE = 65

GOOGLENET = Family("GoogLeNet", default_size=224, min_size=32)


def googlenet_body(x, ctx, kernel_5x5: int = 5, modules=GOOGLENET_MODULES):
    """Stem (7x7/2 conv, pool, 1x1 and 3x3 convs, pool), then modules and pools."""
    import keras

    fmt = ctx.data_format
    x = keras.layers.ZeroPadding2D(3, data_format=fmt, name="conv1_pad")(x)
    x = ctx.block("ConvBNAct", {"filters": ctx.width(64), "kernel_size": 7,
                                "padding": "valid"}, x, stride=2, prefix="conv1_")
    x = ctx.layer(keras.layers.MaxPooling2D(3, strides=2, padding="same", data_format=fmt,
                                            name="pool1"), x, stride=2)
    x = ctx.block("ConvBNAct", {"filters": ctx.width(64), "kernel_size": 1}, x, prefix="conv2_")
    x = ctx.block("ConvBNAct", {"filters": ctx.width(192), "kernel_size": 3}, x,
                  prefix="conv3_")
    x = ctx.layer(keras.layers.MaxPooling2D(3, strides=2, padding="same", data_format=fmt,
                                            name="pool2"), x, stride=2)
    pool_id = 2
    for module in modules:
        if module is None:
            pool_id += 1
            # The last pool is 2x2 (Table 1); the others 3x3, all stride 2.
            size = 2 if pool_id == 4 else 3
            x = ctx.layer(keras.layers.MaxPooling2D(size, strides=2, padding="same",
                                                    data_format=fmt, name=f"pool{pool_id}"),
                          x, stride=2)
            continue
        name, widths = module
        x = ctx.block("InceptionModule", {"variant": "v1", "kernel_5x5": kernel_5x5,
                                          "filters": tuple(ctx.width(f) for f in widths)},
                      x, prefix=f"{name}_", names={"concat": name}, stride_key=None,
                      dilation_key=None)
        ctx.named[name] = x
    return x


def aux_classifier(x, ctx, prefix: str, classes: int, classifier_activation):
    """An auxiliary classifier: 5x5/3 average pool, 1x1 conv (128), FC 1024, dropout 0.7."""
    import keras

    fmt = ctx.data_format
    spatial = x.shape[1:3] if fmt == "channels_last" else x.shape[2:]
    if any(s < 5 for s in spatial):
        raise ValueError(f"GoogLeNet's auxiliary classifiers need inputs of at least "
                         f"{AUX_MIN_SIZE}x{AUX_MIN_SIZE} (a 5x5 map at stride 16)")
    x = keras.layers.AveragePooling2D(5, strides=3, data_format=fmt, name=prefix + "pool")(x)
    x = ctx.block("ConvBNAct", {"filters": ctx.width(128), "kernel_size": 1}, x,
                  prefix=prefix + "conv_")
    x = keras.layers.Flatten(data_format=fmt, name=prefix + "flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name=prefix + "fc")(x)
    x = keras.layers.Dropout(0.7, name=prefix + "dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, dtype=head_dtype(),
                              name=prefix + "predictions")(x)


def googlenet_head(x, ctx, classes: int, classifier_activation, aux_logits: bool = False):
    """The main classifier and, with ``aux_logits``, the two auxiliary ones (outputs
    ``[main, aux1, aux2]``)."""
    main = dense_head(x, ctx, classes, classifier_activation)
    if not aux_logits:
        return main
    aux = [aux_classifier(ctx.named[tap], ctx, f"aux{i}_", classes, classifier_activation)
           for i, tap in enumerate(AUX_TAPS, start=1)]
    return [main, *aux]


@register_model
def build_googlenet(include_top=True, weights=None, input_tensor=None, input_shape=None,
                    pooling=None, classes=1000, classifier_activation="softmax",
                    name="googlenet", aux_logits=False, kernel_5x5=5, dropout=0.2,
                    **options):
    """GoogLeNet (Inception v1), optionally with its two auxiliary classifiers.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications.  There are no Keras
            ImageNet weights; ``weights`` may be a weights file path.
        aux_logits: add the auxiliary classifiers after inception4a and inception4d; the
            model then returns ``[main, aux1, aux2]`` (weight them 0.3 in the loss, as
            the paper does).  Needs inputs of at least 65x65.
        kernel_5x5: kernel of the "5x5" branches (3 reproduces torchvision).
        dropout: dropout before the classifier (torchvision's 0.2).
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`.
    """
    if aux_logits and not include_top:
        raise ValueError("`aux_logits=True` adds classifiers: it needs include_top=True")
    return assemble(GOOGLENET, functools.partial(googlenet_body, kernel_5x5=kernel_5x5),
                    include_top=include_top, weights=weights, input_tensor=input_tensor,
                    input_shape=input_shape, pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, name=name,
                    head=functools.partial(googlenet_head, aux_logits=aux_logits),
                    dropout=dropout, **options)
