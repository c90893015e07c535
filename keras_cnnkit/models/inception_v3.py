"""Inception-V3: Szegedy et al., "Rethinking the Inception Architecture for Computer
Vision", CVPR 2016, https://arxiv.org/abs/1512.00567.

Layer for layer keras.applications ``InceptionV3``: five ``conv2d_bn`` stem units
(``ConvBNAct`` with an unscaled batch norm) and two max pools, then the eleven
``InceptionModule`` blocks ``mixed0``-``mixed10``.  keras leaves the convolutions unnamed;
here they are named ``stem{i}_*`` and ``mixed{j}_<branch>_*``.
"""
from __future__ import annotations

from keras_cnnkit.models.assembly import Family, assemble
from keras_cnnkit.models.registry import register_model
from keras_cnnkit.models.weights import keras_apps_file

#: (filters, kernel, stride, padding) of the stem's conv2d_bn units; ``None`` is a
#: 3x3/2 max pool.
INCEPTION_V3_STEM = ((32, 3, 2, "valid"), (32, 3, 1, "valid"), (64, 3, 1, "same"), None,
                     (80, 1, 1, "valid"), (192, 3, 1, "valid"), None)
#: (name, InceptionModule variant, branch widths, stride, layer names keras gives inner
#: ops) of mixed0-mixed10 (Figs. 5-7; widths and names as in keras.applications).
INCEPTION_V3_MODULES = (
    ("mixed0", "v3_a", (64, 48, 64, 64, 96, 32), 1, {}),
    ("mixed1", "v3_a", (64, 48, 64, 64, 96, 64), 1, {}),
    ("mixed2", "v3_a", (64, 48, 64, 64, 96, 64), 1, {}),
    ("mixed3", "v3_reduction_a", (384, 64, 96), 2, {}),
    ("mixed4", "v3_b", (192, 128, 192, 128, 192, 192), 1, {}),
    ("mixed5", "v3_b", (192, 160, 192, 160, 192, 192), 1, {}),
    ("mixed6", "v3_b", (192, 160, 192, 160, 192, 192), 1, {}),
    ("mixed7", "v3_b", (192, 192, 192, 192, 192, 192), 1, {}),
    ("mixed8", "v3_reduction_b", (192, 320, 192, 192), 2, {}),
    ("mixed9", "v3_c", (320, 384, 384, 448, 384, 192), 1, {"b3x3_concat": "mixed9_0"}),
    ("mixed10", "v3_c", (320, 384, 384, 448, 384, 192), 1, {"b3x3_concat": "mixed9_1"}),
)


def _imagenet(include_top: bool, size: int, knobs: dict):
    del size, knobs
    if include_top:
        return keras_apps_file("inception_v3",
                               "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                               "9a0d58056eeedaa3f26cb7ebd46da564")
    return keras_apps_file("inception_v3",
                           "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "bcbd6486424b2319ff4ef7d526e38f63")


INCEPTION_V3 = Family("InceptionV3", default_size=299, min_size=75, imagenet=_imagenet)


def inception_stem(x, ctx, stem):
    """conv2d_bn units (``ConvBNAct``, BN without scale) and 3x3/2 max pools."""
    import keras

    conv_id = pool_id = 0
    for unit in stem:
        if unit is None:
            pool_id += 1
            x = ctx.layer(keras.layers.MaxPooling2D(3, strides=2, data_format=ctx.data_format,
                                                    name=f"pool{pool_id}"), x, stride=2)
            continue
        filters, kernel, stride, padding = unit
        conv_id += 1
        x = ctx.block("ConvBNAct", {"filters": ctx.width(filters), "kernel_size": kernel,
                                    "padding": padding, "bn_scale": False}, x, stride=stride,
                      prefix=f"stem{conv_id}_")
    return x


def inception_modules(x, ctx, modules):
    """``InceptionModule`` blocks; each output concat carries the module's name."""
    for name, variant, widths, stride, inner_names in modules:
        x = ctx.block("InceptionModule", {"variant": variant,
                                          "filters": tuple(ctx.width(f) for f in widths)},
                      x, prefix=f"{name}_", names={"concat": name, **inner_names},
                      stride=stride, stride_key=None,
                      dilation_key=None)
    return x


def inception_v3_body(x, ctx):
    """The stem, then mixed0-mixed10."""
    return inception_modules(inception_stem(x, ctx, INCEPTION_V3_STEM), ctx,
                             INCEPTION_V3_MODULES)


@register_model
def build_inception_v3(include_top=True, weights=None, input_tensor=None, input_shape=None,
                       pooling=None, classes=1000, classifier_activation="softmax",
                       name="inception_v3", **options):
    """Inception-V3, as keras.applications ``InceptionV3`` (same layers, weights, outputs).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications; ``weights`` is None,
            ``"imagenet"`` or a weights file path.  Inputs are at least 75x75.
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`.
            Its grid reductions are strided inside the modules, so ``output_stride`` is
            32 only; it has no residual branches, so ``drop_path_rate`` is 0.
    """
    return assemble(INCEPTION_V3, inception_v3_body, include_top=include_top,
                    weights=weights, input_tensor=input_tensor, input_shape=input_shape,
                    pooling=pooling, classes=classes,
                    classifier_activation=classifier_activation, name=name, **options)
