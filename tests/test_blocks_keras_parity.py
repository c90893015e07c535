"""Block specs emitted with :func:`emit` equal keras.applications' private builders.

The reference is keras' own code (``_inverted_res_block``, ``residual_block_v1``, ...):
the emitted layers must have the same classes, names, weight shapes and configs, in the
same order, so the builders that use these specs load keras.applications weight files.
"""
import keras
import pytest
from keras.src.applications import densenet, inception_v3, mobilenet, mobilenet_v2, resnet

from keras_cnnkit.layers import emit


def _signature(model, with_names=True):
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        config = layer.get_config()
        name = config.pop("name")
        config.pop("dtype", None)
        if config.get("axis") == 3:  # keras writes the channels_last axis as 3 or -1
            config["axis"] = -1
        rows.append(((name,) if with_names else ())
                    + (type(layer).__name__, [tuple(w.shape) for w in layer.weights], config))
    return rows


def _ours(block, config, shape, **emit_kwargs):
    x = keras.Input(shape)
    return keras.Model(x, emit(block, config, x, **emit_kwargs))


def _ref(fn, shape):
    x = keras.Input(shape)
    return keras.Model(x, fn(x))


@pytest.mark.parametrize("size,channels,filters,expansion,strides,block_id", [
    (16, 32, 16, 1, 1, 0), (16, 16, 24, 6, 2, 1), (15, 24, 24, 6, 1, 2), (15, 24, 32, 6, 2, 3),
])
def test_inverted_residual_is_keras_mobilenet_v2(size, channels, filters, expansion, strides,
                                                 block_id):
    """InvertedResidual == keras ``mobilenet_v2._inverted_res_block``."""
    shape = (size, size, channels)
    ref = _ref(lambda x: mobilenet_v2._inverted_res_block(  # pylint: disable=protected-access
        x, expansion, strides, 1.0, filters, block_id), shape)
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    ours = _ours("InvertedResidual", {"filters": filters, "expansion": expansion,
                                      "strides": strides}, shape, prefix=prefix)
    assert _signature(ours) == _signature(ref)


@pytest.mark.parametrize("strides,block_id", [((2, 2), 2), ((1, 1), 3)])
def test_depthwise_separable_is_keras_mobilenet(strides, block_id):
    """DepthwiseSeparableConv == keras ``mobilenet._depthwise_conv_block``."""
    shape = (16, 16, 32)
    ref = _ref(lambda x: mobilenet._depthwise_conv_block(  # pylint: disable=protected-access
        x, 64, 1.0, 1, strides, block_id), shape)
    names = {op: f"conv_{op.replace('pad', 'pad_' + str(block_id)).replace('dw', f'dw_{block_id}').replace('pw', f'pw_{block_id}')}"  # noqa: E501  pylint: disable=line-too-long
             for op in ("pad", "dw", "dw_bn", "dw_relu", "pw", "pw_bn", "pw_relu")}
    ours = _ours("DepthwiseSeparableConv", {"filters": 64, "strides": strides,
                                            "activation": "relu6"}, shape, names=names)
    assert _signature(ours) == _signature(ref)


def test_dense_and_transition_blocks_are_keras_densenet():
    """DenseBlock/TransitionBlock == keras ``densenet.dense_block``/``transition_block``."""
    shape = (8, 8, 64)
    ref = _ref(lambda x: densenet.dense_block(x, 3, "conv2"), shape)
    ours = _ours("DenseBlock", {"num_layers": 3}, shape, prefix="conv2_")
    assert _signature(ours) == _signature(ref)
    shape = (8, 8, 160)
    ref = _ref(lambda x: densenet.transition_block(x, 0.5, "pool2"), shape)
    ours = _ours("TransitionBlock", {"compression": 0.5}, shape, prefix="pool2_")
    assert _signature(ours) == _signature(ref)


@pytest.mark.parametrize("channels,filters,strides,conv_shortcut,name", [
    (64, 64, 1, True, "conv2_block1"), (256, 64, 1, False, "conv2_block2"),
    (256, 128, 2, True, "conv3_block1"),
])
def test_residual_v1_is_keras_resnet(channels, filters, strides, conv_shortcut, name):
    """ResidualBlock v1 == keras ``resnet.residual_block_v1``."""
    shape = (8, 8, channels)
    ref = _ref(lambda x: resnet.residual_block_v1(x, filters, stride=strides,
                                                  conv_shortcut=conv_shortcut, name=name),
               shape)
    ours = _ours("ResidualBlock", {"filters": filters, "strides": strides}, shape,
                 prefix=name + "_")
    assert _signature(ours) == _signature(ref)


@pytest.mark.parametrize("channels,strides,conv_shortcut,name", [
    (64, 1, True, "conv2_block1"), (256, 1, False, "conv2_block2"),
    (256, 2, False, "conv2_block3"),
])
def test_residual_v2_is_keras_resnet_v2(channels, strides, conv_shortcut, name):
    """ResidualBlock v2 == keras ``resnet.residual_block_v2``."""
    shape = (8, 8, channels)
    ref = _ref(lambda x: resnet.residual_block_v2(x, 64, stride=strides,
                                                  conv_shortcut=conv_shortcut, name=name),
               shape)
    ours = _ours("ResidualBlock", {"filters": 64, "strides": strides, "version": 2}, shape,
                 prefix=name + "_", names={"0_pool": "max_pooling2d"})
    # keras leaves the strided shortcut's max pool unnamed: compare without names there.
    assert _signature(ours, with_names=False) == _signature(ref, with_names=False)
    assert [n for n, *_ in _signature(ours) if "pool" not in n] == \
        [n for n, *_ in _signature(ref) if "pool" not in n]


@pytest.fixture(scope="module")
def inception_v3_model():
    """keras' InceptionV3 at its smallest input (weights not needed)."""
    return inception_v3.InceptionV3(weights=None, include_top=False, input_shape=(75, 75, 3))


@pytest.mark.parametrize("module,config", [
    ("mixed0", {"variant": "v3_a", "pool_features": 32}),
    ("mixed2", {"variant": "v3_a", "pool_features": 64}),
    ("mixed3", {"variant": "v3_reduction_a"}),
    ("mixed4", {"variant": "v3_b", "channels_7x7": 128}),
    ("mixed6", {"variant": "v3_b", "channels_7x7": 160}),
    ("mixed7", {"variant": "v3_b", "channels_7x7": 192}),
    ("mixed8", {"variant": "v3_reduction_b"}),
    ("mixed10", {"variant": "v3_c"}),
])
def test_inception_module_is_keras_inception_v3(inception_v3_model, module, config):  # noqa: E501  pylint: disable=redefined-outer-name
    """InceptionModule V3 variants == the mixed modules of keras InceptionV3."""
    layers = inception_v3_model.layers
    end = [layer.name for layer in layers].index(module)
    # The module's input: the previous mixedN, or the stem's last max pool before mixed0.
    mixed = [layer for layer in layers[:end]
             if layer.name.startswith("mixed") and "_" not in layer.name]
    pools = [layer for layer in layers[:end] if isinstance(layer, keras.layers.MaxPooling2D)]
    x = (mixed or pools)[-1].output
    ref = keras.Model(x, inception_v3_model.get_layer(module).output)
    ours = _ours("InceptionModule", config, tuple(x.shape[1:]))
    assert _signature(ours, with_names=False) == _signature(ref, with_names=False)
    assert ours.count_params() == ref.count_params()
