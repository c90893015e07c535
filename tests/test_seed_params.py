"""The seeds' parameter counts (``SEEDS.md``), built with this package's blocks.

Every expected number is the seed's own arithmetic (hand formulas at other shapes are in
``test_layers_params.py``).
"""
import keras

from keras_cnnkit.layers import (
    Bottleneck1x1,
    ClassifierHead,
    ConvBNAct,
    DepthwiseSeparableConv,
    FactorizedConv,
)


def params(layer, input_shape):
    """Parameter count of ``layer`` built on ``input_shape`` (batch excluded)."""
    x = keras.Input(input_shape)
    return keras.Model(x, layer(x)).count_params()


def test_seed000_1x1_before_3x3():
    """24 → 48 channels, 3×3: 10,416; with a 12-channel 1×1 first: 5,520 / 5,532."""
    assert params(ConvBNAct(48, 3, use_bn=False), (16, 16, 24)) == 24 * 3 * 3 * 48 + 48 == 10416
    # The seed leaves out the 1×1's bias ...
    assert params(Bottleneck1x1(48, bottleneck_filters=12, use_bn=False,
                                use_bias=[False, True]), (16, 16, 24)) == 5520
    # ... with it, 5,532.
    assert params(Bottleneck1x1(48, bottleneck_filters=12, use_bn=False),
                  (16, 16, 24)) == 5532


def test_seed000_char_cnn_conv1d():
    """Conv1D 24 → 48, k=3: 3,504; Conv1D 24 → 12 (k=1) first: 300 + 1,776 = 2,076."""
    assert params(ConvBNAct(48, 3, use_bn=False), (100, 24)) == 3504
    assert params(Bottleneck1x1(48, bottleneck_filters=12, use_bn=False), (100, 24)) == 2076


def test_seed000_depthwise_separable_channels_first():
    """(3, 5, 5) input to 4 channels: standard 112; depthwise 30 + pointwise 16 = 46."""
    assert params(ConvBNAct(4, 3, use_bn=False, data_format="channels_first"),
                  (3, 5, 5)) == 112
    assert params(DepthwiseSeparableConv(4, use_bn=False, activation=None,
                                         data_format="channels_first"), (3, 5, 5)) == 46


def test_seed001_bottleneck_no_bias():
    """256 → 256, 3×3: 589,824; 1×1 → 64, 3×3, 1×1 → 256: 69,632 (no biases)."""
    assert params(ConvBNAct(256, 3, use_bn=False, use_bias=False), (8, 8, 256)) == 589824
    assert params(Bottleneck1x1(256, bottleneck_filters=64, expand=True, use_bn=False,
                                use_bias=False), (8, 8, 256)) == 69632


def test_seed001_depthwise_no_bias():
    """3 → 256, 3×3: 6,912; depthwise + pointwise: 27 + 768 = 795 (no biases)."""
    assert params(ConvBNAct(256, 3, use_bn=False, use_bias=False), (8, 8, 3)) == 6912
    assert params(DepthwiseSeparableConv(256, use_bn=False, use_bias=False),
                  (8, 8, 3)) == 795


def test_seed003_two_3x3_vs_one_5x5():
    """(7, 7, 3) input, 3 filters: two stacked 3×3 = 162 weights, one 5×5 = 225."""
    stacked = FactorizedConv(3, 5, mode="stacked", padding="valid", use_bn=False,
                             use_bias=False)
    single = ConvBNAct(3, 5, padding="valid", use_bn=False, use_bias=False)
    assert params(stacked, (7, 7, 3)) == 162
    assert params(single, (7, 7, 3)) == 225
    # Both give the seed's (3, 3, 3) output.
    assert stacked.compute_output_shape((None, 7, 7, 3)) == (None, 3, 3, 3)
    assert single.compute_output_shape((None, 7, 7, 3)) == (None, 3, 3, 3)


def test_seed002_nin_head_equals_fc_weights():
    """m×3×3×128 → 3×3×128×4096 conv → 1×1×4096×10 conv: the FC head's weights."""
    fc = 3 * 3 * 128 * 4096 + 4096 + 4096 * 10 + 10
    assert params(ClassifierHead(10, "conv1x1", hidden_units=[4096], kernel_size=3),
                  (3, 3, 128)) == fc
    assert params(ClassifierHead(10, "flatten_dense", hidden_units=[4096]), (3, 3, 128)) == fc
