"""Every block's parameter count equals its hand formula, at two shapes each.

BN holds 4 numbers per channel (gamma, beta, moving mean, moving variance); with
``scale=False`` (Inception) 3.
"""
import keras
import pytest

from keras_cnnkit import layers as L


def params(layer, input_shape):
    """Parameter count of ``layer`` built on ``input_shape`` (batch excluded)."""
    x = keras.Input(input_shape)
    return keras.Model(x, layer(x)).count_params()


def _inverted_residual(c, f, t, se=0):
    e = c * t
    expand = (c * e + 4 * e) if t != 1 else 0
    se_params = (e * se + se + se * e + e) if se else 0
    return expand + (9 * e + 4 * e) + se_params + (e * f + 4 * f)


def _dense_block(c, layers, k, taps, width=4):
    total = 0
    for i in range(layers):
        cin = c + i * k
        total += 4 * cin + cin * width * k + 4 * width * k + taps * width * k * k
    return total


CASES = [
    # (id, layer factory, input shape, expected)
    ("conv_bn_act_2d", lambda: L.ConvBNAct(7, 3), (9, 9, 5), 9 * 5 * 7 + 4 * 7),
    ("conv_bn_act_1d", lambda: L.ConvBNAct(32, 5, use_bn=False), (12, 16), 5 * 16 * 32 + 32),
    ("dilated_2d", lambda: L.DilatedConv(8, 3, dilation_rate=2), (12, 12, 4), 9 * 4 * 8 + 32),
    ("dilated_1d", lambda: L.DilatedConv(6, 5, dilation_rate=3, use_bn=False), (40, 3),
     5 * 3 * 6 + 6),
    ("ir_t6_s2", lambda: L.InvertedResidual(24, expansion=6, strides=2), (15, 15, 16),
     _inverted_residual(16, 24, 6)),
    ("ir_t1", lambda: L.InvertedResidual(16, expansion=1), (8, 8, 32),
     _inverted_residual(32, 16, 1)),
    # SE width: 24·4·0.25 = 24, already a multiple of 8.
    ("ir_t4_se", lambda: L.InvertedResidual(24, expansion=4, use_se=True), (8, 8, 24),
     _inverted_residual(24, 24, 4, se=24)),
    ("dense_3x12", lambda: L.DenseBlock(3, growth_rate=12), (8, 8, 16), _dense_block(16, 3, 12, taps=9)),
    ("dense_2x32_1d", lambda: L.DenseBlock(2), (20, 64), _dense_block(64, 2, 32, taps=3)),
    ("transition_half", lambda: L.TransitionBlock(0.5), (8, 8, 64), 4 * 64 + 64 * 32),
    ("transition_07", lambda: L.TransitionBlock(0.7), (8, 8, 30), 4 * 30 + 30 * 21),
    # GoogLeNet inception (3a): 192 → 64 | 96→128 | 16→32 | pool→32; BN(scale=False).
    ("inception_v1_3a", lambda: L.InceptionModule("v1", filters=(64, 96, 128, 16, 32, 32)),
     (28, 28, 192),
     192 * 64 + 192 * 96 + 9 * 96 * 128 + 192 * 16 + 25 * 16 * 32 + 192 * 32
     + 3 * (64 + 96 + 128 + 16 + 32 + 32)),
    ("inception_naive", lambda: L.InceptionModule("naive", filters=(8, 12, 4), use_bn=False),
     (10, 10, 6), (6 * 8 + 8) + (9 * 6 * 12 + 12) + (25 * 6 * 4 + 4)),
    ("res_basic_v1_proj", lambda: L.ResidualBlock(32, "basic", strides=2), (8, 8, 16),
     (16 * 32 + 32 + 4 * 32) + (9 * 16 * 32 + 32 + 4 * 32) + (9 * 32 * 32 + 32 + 4 * 32)),
    ("res_bottleneck_v2_id", lambda: L.ResidualBlock(16, version=2), (8, 8, 64),
     4 * 64 + (64 * 16 + 4 * 16) + (9 * 16 * 16 + 4 * 16) + (16 * 64 + 64)),
    ("se_32", lambda: L.SqueezeExcite(0.25), (6, 6, 32), 32 * 8 + 8 + 8 * 32 + 32),
    ("se_20_1d_divisor1", lambda: L.SqueezeExcite(0.25, divisor=1), (30, 20),
     20 * 5 + 5 + 5 * 20 + 20),
    # v1, g=3, 24 → 24: 1×1 24→6 /3, BN, dw 3×3, BN, 1×1 6→24 /3, BN.
    ("shuffle_v1_s1", lambda: L.ShuffleUnit(24, version=1, groups=3), (8, 8, 24),
     24 * 6 // 3 + 4 * 6 + 9 * 6 + 4 * 6 + 6 * 24 // 3 + 4 * 24),
    # v2, stride 2, 24 → 48: both branches end in 24 channels.
    ("shuffle_v2_s2", lambda: L.ShuffleUnit(48, strides=2, version=2), (8, 8, 24),
     (9 * 24 + 4 * 24 + 24 * 24 + 4 * 24)
     + (24 * 24 + 4 * 24 + 9 * 24 + 4 * 24 + 24 * 24 + 4 * 24)),
    ("group_conv_g4", lambda: L.GroupConv(16, 3, groups=4), (8, 8, 8), 9 * 8 * 16 // 4 + 16),
    ("group_conv_1d_g2", lambda: L.GroupConv(6, 5, groups=2, use_bias=False), (20, 4),
     5 * 4 * 6 // 2),
    ("deformable_v1", lambda: L.DeformableConv2D(8, 3), (8, 8, 4),
     9 * 4 * 8 + 8 + 9 * 4 * 18 + 18),
    ("deformable_v2_g2", lambda: L.DeformableConv2D(8, 3, modulated=True, deformable_groups=2,
                                                    use_bias=False), (8, 8, 4),
     9 * 4 * 8 + 9 * 4 * 54 + 54),
    ("head_gap", lambda: L.ClassifierHead(10), (7, 7, 64), 64 * 10 + 10),
    ("head_gmp_hidden_1d", lambda: L.ClassifierHead(5, "gmp", hidden_units=[16]), (9, 12),
     12 * 16 + 16 + 16 * 5 + 5),
    ("head_flatten", lambda: L.ClassifierHead(3, "flatten_dense"), (4, 4, 8), 128 * 3 + 3),
    ("head_conv1x1", lambda: L.ClassifierHead(4, "conv1x1"), (5, 5, 6), 6 * 4 + 4),
    ("factorized_asym", lambda: L.FactorizedConv(8, 7, mode="asymmetric"), (16, 16, 4),
     7 * 4 * 8 + 4 * 8 + 7 * 8 * 8 + 4 * 8),
    ("bottleneck_bn", lambda: L.Bottleneck1x1(32, bottleneck_filters=8, expand=True),
     (8, 8, 32), 32 * 8 + 32 + 9 * 8 * 8 + 32 + 8 * 32 + 128),
    ("dws_bn_1d", lambda: L.DepthwiseSeparableConv(16, 5), (20, 8), 5 * 8 + 32 + 8 * 16 + 64),
    ("channel_shuffle", lambda: L.ChannelShuffle(4), (4, 4, 8), 0),
    ("channel_slice", lambda: L.ChannelSlice(2, 6), (4, 4, 8), 0),
    ("drop_path", lambda: L.DropPath(0.2), (4, 4, 8), 0),
    ("relu6", L.ReLU6, (4, 4, 8), 0),
]


@pytest.mark.parametrize("make,shape,expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_params_match_hand_formula(make, shape, expected):
    """The built block's parameter count equals the formula worked out by hand."""
    assert params(make(), shape) == expected


@pytest.mark.parametrize("layer,shape,expected", [
    (lambda: L.InvertedResidual(24, strides=2, data_format="channels_first"), (16, 15, 15),
     (None, 24, 8, 8)),
    (lambda: L.ShuffleUnit(48, strides=2, version=1, groups=2,
                           data_format="channels_first"), (16, 8, 8), (None, 48, 4, 4)),
    (lambda: L.InceptionModule("v3_reduction_a", data_format="channels_first"),
     (288, 35, 35), (None, 768, 17, 17)),
    (lambda: L.DenseBlock(6, data_format="channels_first"), (64, 56, 56),
     (None, 64 + 6 * 32, 56, 56)),
])
def test_channels_first_output_shapes(layer, shape, expected):
    """channels_first shapes (execution is skipped where TF's CPU conv lacks NCHW)."""
    block = layer()
    assert tuple(block.compute_output_shape((None, *shape))) == expected
    x = keras.Input(shape)
    assert tuple(block(x).shape) == expected
