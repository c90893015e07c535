"""ResNet50 (v1 and v2) and SE-ResNet50.

* He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
  https://arxiv.org/abs/1512.03385 (v1).
* He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016,
  https://arxiv.org/abs/1603.05027 (v2, pre-activation).
* Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018,
  https://arxiv.org/abs/1709.01507 (SE-ResNet50).

ResNet50/ResNet50V2 are layer for layer keras.applications ``ResNet50``/``ResNet50V2``:
a stem, then 16 bottleneck ``ResidualBlock`` blocks named ``conv{stage}_block{i}_*``.
"""
from __future__ import annotations

import functools

from keras_cnnkit.models.assembly import Family, assemble
from keras_cnnkit.models.registry import register_model
from keras_cnnkit.models.weights import keras_apps_file

#: (bottleneck filters, blocks, downsampling stride) per stage (Table 1, 50-layer).
RESNET50_STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))
_HASHES = {
    1: ("resnet50", "2cb95161c43110f7111970584f804107", "4d473c1dd8becc155b73f8504c6f6626"),
    2: ("resnet50v2", "3ef43a0b657b3be2300d5770ece849e0", "fac2f116257151a9d068a22e544a4917"),
}
_BN = {"bn_epsilon": 1.001e-5}


def _imagenet(include_top: bool, size: int, knobs: dict):
    del size
    weights_name, top_hash, notop_hash = _HASHES[knobs["version"]]
    suffix = "" if include_top else "_notop"
    return keras_apps_file("resnet", f"{weights_name}_weights_tf_dim_ordering_tf_kernels"
                                     f"{suffix}.h5", top_hash if include_top else notop_hash)


RESNET = Family("ResNet50", default_size=224, min_size=32, dilatable=True, residual=True,
                imagenet=_imagenet)
SE_RESNET = Family("SE-ResNet50", default_size=224, min_size=32, dilatable=True,
                   residual=True)


def resnet_body(x, ctx, stages, version: int, block_config: dict | None = None,
                use_bias: bool = True):
    """keras' ResNet stem, the bottleneck stages of ``stages``, v2's final BN-ReLU.

    v1 downsamples in the first block of a stage; v2, as keras does, in the last block
    of the stage before.
    ``block_config`` adds arguments to every block (squeeze-excite for SE-ResNet).
    """
    import keras

    preact = version == 2
    x = keras.layers.ZeroPadding2D(3, data_format=ctx.data_format, name="conv1_pad")(x)
    x = ctx.block("ConvBNAct", {"filters": ctx.width(64), "kernel_size": 7, "padding": "valid",
                                "use_bias": use_bias, "use_bn": not preact,
                                "activation": None if preact else "relu", **_BN}, x, stride=2,
                  names={"conv": "conv1_conv", "bn": "conv1_bn", "act": "conv1_relu"})
    x = keras.layers.ZeroPadding2D(1, data_format=ctx.data_format, name="pool1_pad")(x)
    x = ctx.layer(keras.layers.MaxPooling2D(3, strides=2, data_format=ctx.data_format,
                                            name="pool1_pool"), x, stride=2)
    strides = [stride for _, _, stride in stages]
    if preact:
        # keras' v2 downsamples at the end of the previous stage instead.
        strides = strides[1:] + [1]
    for stage, ((filters, blocks, _), stride) in enumerate(zip(stages, strides), start=2):
        for i in range(1, blocks + 1):
            strided = i == (blocks if preact else 1)
            cfg = {"filters": ctx.width(filters), "variant": "bottleneck", "version": version,
                   **(block_config or {})}
            if not use_bias:
                cfg["use_bias"] = False
            x = ctx.block("ResidualBlock", cfg, x, prefix=f"conv{stage}_block{i}_",
                          stride=stride if strided else 1, residual=True)
    if preact:
        x = keras.layers.BatchNormalization(axis=ctx.channel_axis, epsilon=1.001e-5,
                                            name="post_bn")(x)
        x = ctx.record(keras.layers.Activation("relu", name="post_relu")(x))
    return x


def _build(family, version, include_top, weights, input_tensor, input_shape, pooling,
           classes, classifier_activation, name, options, **body_kwargs):
    return assemble(
        family, functools.partial(resnet_body, stages=RESNET50_STAGES, version=version,
                                  **body_kwargs),
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, knobs={"version": version},
        num_residual_blocks=sum(n for _, n, _ in RESNET50_STAGES), **options)


@register_model
def build_resnet50(include_top=True, weights=None, input_tensor=None, input_shape=None,
                   pooling=None, classes=1000, classifier_activation="softmax", name=None,
                   version=1, **options):
    """ResNet50 v1 (keras ``ResNet50``) or, with ``version=2``, v2 (keras ``ResNet50V2``).

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications; ``weights`` is None,
            ``"imagenet"`` or a weights file path.
        version: 1 (post-activation) or 2 (pre-activation).
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`;
            ``output_stride`` 8/16 dilates the last stages, ``drop_path_rate`` applies to
            all 16 blocks.
    """
    if version not in (1, 2):
        raise ValueError(f"`version` must be 1 or 2, got {version!r}")
    return _build(RESNET, version, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation,
                  name or ("resnet50" if version == 1 else "resnet50v2"), options)


@register_model
def build_resnet50_v2(include_top=True, weights=None, input_tensor=None, input_shape=None,
                      pooling=None, classes=1000, classifier_activation="softmax",
                      name="resnet50v2", **options):
    """ResNet50 v2, as keras.applications ``ResNet50V2``: ``build_resnet50(version=2)``."""
    return build_resnet50(include_top, weights, input_tensor, input_shape, pooling, classes,
                          classifier_activation, name, version=2, **options)


@register_model
def build_se_resnet50(include_top=True, weights=None, input_tensor=None, input_shape=None,
                      pooling=None, classes=1000, classifier_activation="softmax",
                      name="se_resnet50", se_ratio=1 / 16, **options):
    """SE-ResNet50: ResNet50 v1 with squeeze-excite (reduction 16) closing every branch.

    As in the SENet paper (and timm's ``seresnet50``) the convolutions have no bias:
    28,088,024 trainable parameters at 1000 classes.  No Keras ImageNet weights exist.

    Args:
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in keras.applications.
        se_ratio: squeeze width as a fraction of the block's output channels.
        **options: the common options of :class:`keras_cnnkit.models.assembly.Options`.
    """
    return _build(SE_RESNET, 1, include_top, weights, input_tensor, input_shape, pooling,
                  classes, classifier_activation, name, options,
                  block_config={"use_se": True, "se_ratio": se_ratio}, use_bias=False)
