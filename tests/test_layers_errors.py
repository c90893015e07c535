"""Bad arguments raise ``ValueError`` naming the argument, at construction."""
import pytest

from keras_cnnkit import layers as L


@pytest.mark.parametrize("make,argument", [
    (lambda: L.ConvBNAct(10, groups=3), "groups"),
    (lambda: L.GroupConv(10, 3, groups=4), "groups"),
    (lambda: L.ConvBNAct(-8), "filters"),
    (lambda: L.ConvBNAct(8, kernel_size=-3), "kernel_size"),
    (lambda: L.ConvBNAct(8, strides=(1, 0)), "strides"),
    (lambda: L.DilatedConv(8, dilation_rate=-2), "dilation_rate"),
    (lambda: L.DepthwiseSeparableConv(8, depth_multiplier=0), "depth_multiplier"),
    (lambda: L.DenseBlock(-1), "num_layers"),
    (lambda: L.DenseBlock(4, growth_rate=0), "growth_rate"),
    (lambda: L.GroupConv(8, kernel_size=0), "kernel_size"),
    (lambda: L.DeformableConv2D(8, kernel_size=-1), "kernel_size"),
    (lambda: L.ChannelSlice(-1, 4), "start"),
    (lambda: L.ClassifierHead(-3), "classes"),
    (lambda: L.InvertedResidual(16, expansion=0.5), "expansion"),
    (lambda: L.InvertedResidual(16, expansion=0), "expansion"),
    (lambda: L.ResidualBlock(16, expansion=0), "expansion"),
    (lambda: L.ConvBNAct(8, data_format="NHWC"), "data_format"),
    (lambda: L.InceptionModule(data_format="channels_middle"), "data_format"),
    (lambda: L.ChannelShuffle(2, data_format="nchw"), "data_format"),
    (lambda: L.GroupConv(8, data_format="nchw"), "data_format"),
    (lambda: L.DeformableConv2D(8, data_format="nchw"), "data_format"),
    (lambda: L.InceptionModule("v2"), "variant"),
    (lambda: L.InceptionModule("v1", filters=(1, 2, 3)), "filters"),
    (lambda: L.ResidualBlock(8, version=3), "version"),
    (lambda: L.FactorizedConv(8, 4), "kernel_size"),
    (lambda: L.FactorizedConv(8, mode="diagonal"), "mode"),
    (lambda: L.Bottleneck1x1(8, use_bias=[True]), "use_bias"),
    (lambda: L.TransitionBlock(compression=1.5), "compression"),
    (lambda: L.SqueezeExcite(se_ratio=0), "se_ratio"),
    (lambda: L.ShuffleUnit(7, version=2), "filters"),
    (lambda: L.GroupConv(8, implementation="fast"), "implementation"),
    (lambda: L.DropPath(1.5), "rate"),
    (lambda: L.ClassifierHead(10, dropout=1.0), "dropout"),
    (lambda: L.ConvBNAct(8, strides=2, dilation_rate=2), "dilation_rate"),
])
def test_bad_argument_raises_value_error_naming_it(make, argument):
    """The message names the offending argument in backticks."""
    with pytest.raises(ValueError, match=f"`{argument}`"):
        make()


def test_unknown_argument_is_rejected_by_spec():
    """Specs reject arguments they do not know (a typo in a builder's config)."""
    from keras_cnnkit.blockspec.core import resolve_config

    with pytest.raises(ValueError, match="expnasion"):
        resolve_config("InvertedResidual", {"filters": 8, "expnasion": 6})


@pytest.mark.parametrize("make,shape,message", [
    (lambda: L.ResidualBlock(16, conv_shortcut=False), (8, 8, 32), "identity shortcut"),
    (lambda: L.GroupConv(8, groups=4), (8, 8, 6), "groups"),
    (lambda: L.ShuffleUnit(24, version=1, groups=3), (8, 8, 12), "filters"),
    (lambda: L.ChannelShuffle(4), (8, 8, 6), "groups"),
    (lambda: L.ChannelSlice(0, 9), (8, 8, 6), "stop"),
    (lambda: L.DeformableConv2D(8, deformable_groups=3), (8, 8, 4), "deformable_groups"),
    (lambda: L.InvertedResidual(8), (8, 8), "rank"),
])
def test_bad_input_shape_raises_value_error(make, shape, message):
    """Arguments that only fail against the input shape fail when the block is built."""
    import keras

    with pytest.raises(ValueError, match=message):
        make()(keras.Input(shape))
