"""``GroupConv``: split == native == ``keras.layers.Conv2D(groups)``, and ONNX export."""
import keras
import numpy as np
import pytest

from conftest import channels_first_runs
from keras_cnnkit.layers import GroupConv
from keras_cnnkit.layers.group_conv import resolve_implementation


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("shape,kwargs", [
    ((2, 9, 9, 12), {"filters": 6, "kernel_size": 3, "groups": 3}),
    ((2, 10, 8, 8), {"filters": 16, "kernel_size": (3, 5), "groups": 4, "strides": 2,
                     "padding": "valid"}),
    ((2, 9, 9, 4), {"filters": 4, "kernel_size": 3, "groups": 2, "dilation_rate": 2,
                    "use_bias": False}),
    ((2, 20, 6), {"filters": 9, "kernel_size": 5, "groups": 3}),
])
def test_split_equals_native_and_keras_conv(shape, kwargs, rng):
    """Both implementations agree with each other and with Keras' grouped conv."""
    x = rng.standard_normal(shape).astype("float32")
    split = GroupConv(implementation="split", **kwargs)
    native = GroupConv(implementation="native", **kwargs)
    split.build(x.shape)
    native.build(x.shape)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in split.weights]
    split.set_weights(weights)
    native.set_weights(weights)
    keras_cls = keras.layers.Conv1D if len(shape) == 3 else keras.layers.Conv2D
    reference = keras_cls(**{"padding": "same", **kwargs})
    reference.build(x.shape)
    reference.set_weights(weights)
    expected = _np(reference(x))
    np.testing.assert_allclose(_np(split(x)), expected, atol=1e-5)
    np.testing.assert_allclose(_np(native(x)), expected, atol=1e-5)
    assert tuple(split.compute_output_shape(x.shape)) == expected.shape


def test_channels_first(rng):
    """channels_first: shapes always; values where the backend runs NCHW convs."""
    layer = GroupConv(8, 3, groups=2, data_format="channels_first", implementation="split")
    assert layer.compute_output_shape((None, 4, 6, 6)) == (None, 8, 6, 6)
    x = keras.Input((4, 6, 6))
    assert tuple(layer(x).shape) == (None, 8, 6, 6)
    if not channels_first_runs():
        pytest.skip("TensorFlow's CPU convolution only runs channels_last")
    data = rng.standard_normal((2, 4, 6, 6)).astype("float32")
    last = GroupConv(8, 3, groups=2, implementation="split")
    last.build((2, 6, 6, 4))
    last.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(layer(data)),
                               np.transpose(_np(last(np.transpose(data, (0, 2, 3, 1)))),
                                            (0, 3, 1, 2)), atol=1e-5)


def test_auto_resolution():
    """auto: split on TensorFlow (exportable), native on JAX and PyTorch."""
    assert resolve_implementation("auto", "tensorflow") == "split"
    assert resolve_implementation("auto", "jax") == "native"
    assert resolve_implementation("auto", "torch") == "native"
    assert resolve_implementation("native", "tensorflow") == "native"


def test_split_exports_to_onnx(rng, tmp_path):
    """A model with split group convs converts with tf2onnx; onnxruntime agrees to 1e-4."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf2onnx converts TensorFlow graphs")
    tf = pytest.importorskip("tensorflow")
    tf2onnx = pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")
    inputs = keras.Input((12, 12, 8), name="image")
    x = GroupConv(16, 3, groups=4, implementation="split")(inputs)
    x = keras.layers.ReLU()(x)
    x = GroupConv(8, 1, groups=2, strides=2, implementation="auto")(x)
    model = keras.Model(inputs, x)
    data = rng.standard_normal((2, 12, 12, 8)).astype("float32")
    spec = (tf.TensorSpec((None, 12, 12, 8), tf.float32, name="image"),)
    function = tf.function(lambda image: model(image, training=False))
    path = str(tmp_path / "group_conv.onnx")
    onnx_model, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=17,
                                                  output_path=path)
    groups = [a.i for node in onnx_model.graph.node if node.op_type == "Conv"
              for a in node.attribute if a.name == "group"]
    conv_nodes = [n for n in onnx_model.graph.node if n.op_type == "Conv"]
    assert len(conv_nodes) == 4 + 2  # split: one ordinary convolution per group
    assert all(g == 1 for g in groups)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: data})
    np.testing.assert_allclose(out, _np(model(data)), atol=1e-4, rtol=1e-4)
