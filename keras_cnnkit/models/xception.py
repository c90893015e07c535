"""Xception: Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions",
CVPR 2017, https://arxiv.org/abs/1610.02357.

Layer for layer keras.applications ``Xception``: the two-conv stem ``block1``, the entry
flow (blocks 2-4), the middle flow (blocks 5-12), the exit flow (blocks 13-14), each an
``XceptionBlock``.
"""
from __future__ import annotations


from keras_cnnkit.models.assembly import Family, assemble
from keras_cnnkit.models.registry import register_model
from keras_cnnkit.models.weights import keras_apps_file

#: (separable conv widths, stride, pre-activation of the first conv, shortcut) per block,
#: blocks 2-14 (Fig. 5).
XCEPTION_BLOCKS = (
    ((128, 128), 2, False, "auto"),
    ((256, 256), 2, True, "auto"),
    ((728, 728), 2, True, "auto"),
    *(((728, 728, 728), 1, True, "auto"),) * 8,
    ((728, 1024), 2, True, "auto"),
)
#: The exit flow's last block: post-activated separable convs, no shortcut.
XCEPTION_EXIT = (1536, 2048)


def _imagenet(include_top: bool, size: int, knobs: dict):
    del size, knobs
    if include_top:
        return keras_apps_file("xception", "xception_weights_tf_dim_ordering_tf_kernels.h5",
                               "0a58e3b7378bc2990ea3b43d5981f1f6")
    return keras_apps_file("xception", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                           "b0042744bf5b25fce3cb969f33bebb97")


XCEPTION = Family("Xception", default_size=299, min_size=71, dilatable=True, residual=True,
                  imagenet=_imagenet)


def xception_body(x, ctx, blocks=XCEPTION_BLOCKS, exit_filters=XCEPTION_EXIT):
    """Stem convs, the residual separable blocks of ``blocks``, the exit block."""
    for i, (filters, stride) in enumerate(((32, 2), (64, 1)), start=1):
        x = ctx.block("ConvBNAct", {"filters": ctx.width(filters), "kernel_size": 3,
                                    "padding": "valid"}, x, stride=stride,
                      names={"conv": f"block1_conv{i}", "bn": f"block1_conv{i}_bn",
                             "act": f"block1_conv{i}_act"})
    for b, (filters, stride, first_act, shortcut) in enumerate(blocks, start=2):
        x = ctx.block("XceptionBlock", {"filters": tuple(ctx.width(f) for f in filters),
                                        "first_activation": first_act,
                                        "shortcut": shortcut},
                      x, prefix=f"block{b}_", stride=stride, residual=True)
    return ctx.block("XceptionBlock", {"filters": tuple(ctx.width(f) for f in exit_filters),
                                       "pre_activation": False, "shortcut": None},
                     x, prefix=f"block{len(blocks) + 2}_")


@register_model
def build_xception(include_top=True, weights=None, input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax",
                   name="xception", **options):
    """Xception, as keras.applications ``Xception`` (same layers, weights and outputs).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications; ``weights`` is None,
            ``"imagenet"`` or a weights file path.
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`;
            ``output_stride`` 8/16 drops the last poolings and dilates the blocks after
            them, ``drop_path_rate`` applies to the 12 residual blocks.
    """
    return assemble(XCEPTION, xception_body, include_top=include_top, weights=weights,
                    input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                    classes=classes, classifier_activation=classifier_activation, name=name,
                    num_residual_blocks=len(XCEPTION_BLOCKS), **options)
