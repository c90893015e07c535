"""Subclassed Keras models are linted by tracing them through ONNX.

The model follows seed 000's Char_CNN (PyTorch in the seed; Keras here): two Conv1D
blocks with batch norm, ReLU and max pooling, then a Flatten + Dense head with dropout
and batch norm.  Its functional twin, carrying the same weights, is linted by the Keras
frontend; the traced subclassed model must get the same findings.
"""
import collections

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")

from keras import layers as L  # noqa: E402  pylint: disable=wrong-import-position

import keras_cnnkit  # noqa: E402  pylint: disable=wrong-import-position
from keras_cnnkit.analysis.frontends.trace import (  # noqa: E402
    TraceError,
    graph_from_subclassed,
)

SHAPE = (300, 16)   # feature_size 300, embedding_dim 16 (an embedded text input)


class CharCNN(keras.Model):  # pylint: disable=abstract-method,too-many-ancestors
    """A character-level text CNN as a subclassed Keras model (inputs already embedded)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = L.Conv1D(24, 3, padding="same", name="conv1")
        self.bn1 = L.BatchNormalization(name="bn1")
        self.pool1 = L.MaxPooling1D(2, name="pool1")
        self.conv2 = L.Conv1D(48, 3, padding="same", name="conv2")
        self.bn2 = L.BatchNormalization(name="bn2")
        self.pool2 = L.MaxPooling1D(2, name="pool2")
        self.flatten = L.Flatten(name="flatten")
        self.fc1 = L.Dense(128, name="fc1")
        self.drop = L.Dropout(0.3, name="drop")
        self.bn3 = L.BatchNormalization(name="bn3")
        self.fc2 = L.Dense(2, activation="softmax", name="fc2")

    def call(self, x, training=False):  # pylint: disable=arguments-differ
        if len(x.shape) == 2:          # Python control flow in call()
            x = keras.ops.expand_dims(x, -1)
        x = self.pool1(keras.ops.relu(self.bn1(self.conv1(x), training=training)))
        x = self.pool2(keras.ops.relu(self.bn2(self.conv2(x), training=training)))
        x = self.fc1(self.flatten(x))
        x = keras.ops.relu(self.bn3(self.drop(x, training=training), training=training))
        return self.fc2(x)


def functional_twin(model):
    """The same network written with the functional API, sharing nothing but weights."""
    inp = keras.Input(SHAPE)
    x = L.Conv1D(24, 3, padding="same", name="conv1")(inp)
    x = L.MaxPooling1D(2, name="pool1")(L.ReLU()(L.BatchNormalization(name="bn1")(x)))
    x = L.Conv1D(48, 3, padding="same", name="conv2")(x)
    x = L.MaxPooling1D(2, name="pool2")(L.ReLU()(L.BatchNormalization(name="bn2")(x)))
    x = L.Dense(128, name="fc1")(L.Flatten(name="flatten")(x))
    x = L.ReLU()(L.BatchNormalization(name="bn3")(L.Dropout(0.3, name="drop")(x)))
    twin = keras.Model(inp, L.Dense(2, activation="softmax", name="fc2")(x))
    twin.set_weights(model.get_weights())
    return twin


@pytest.fixture(scope="module")
def char_cnn():
    """A built CharCNN with seeded random (trained-like, non-zero) weights."""
    model = CharCNN(name="char_cnn")
    model(np.zeros((1, *SHAPE), "float32"))
    rng = np.random.default_rng(0)
    for weight in model.weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))
    return model


def _by_layer(report, symbols):
    return sorted((f.symbol, f.layer, f.params_before, f.params_after)
                  for f in report.rule_findings if f.symbol in symbols)


def test_twin_is_the_same_function(char_cnn):
    x = np.random.default_rng(1).normal(size=(2, *SHAPE)).astype("float32")
    np.testing.assert_allclose(functional_twin(char_cnn)(x), char_cnn(x), rtol=1e-5,
                               atol=1e-6)


def test_subclassed_gets_the_twins_findings(char_cnn):
    # every finding (min_impact=0), and bottlenecks as narrow as 12 (the default 32 would
    # leave these small convs alone)
    options = {"missing-bottleneck": {"min_width": 12}}
    traced = keras_cnnkit.lint(char_cnn, input_shape=SHAPE, min_impact=0, options=options)
    twin = keras_cnnkit.lint(functional_twin(char_cnn), min_impact=0, options=options)
    assert traced.graph.frontend == "trace" and twin.graph.frontend == "keras"
    symbols = {"flatten-dense-head", "missing-bottleneck"}
    assert _by_layer(traced, symbols) == _by_layer(twin, symbols) == [
        # fc1 over the flattened 75×48 map: 3,600·128 + 128 → 48·128 + 128
        ("flatten-dense-head", "fc1", 460_928, 6_272),
        # conv1d 24→48 k=3: 24·3·48 + 48 = 3,504 → 24·12 + 12 + 12·3·48 + 48 = 2,076 (conv1,
        # 16→24, would need a 24/4 = 6-wide bottleneck: under min_width, not proposed)
        ("missing-bottleneck", "conv2", 3_504, 2_076),
    ]
    # Everything else the twin finds, but for what inference-mode tracing changes: the
    # Dropout between fc1 and bn3 is not in the trace, so fc1's bias feeds bn3 directly.
    twin_keys = collections.Counter((f.symbol, f.layer) for f in twin.rule_findings)
    assert twin_keys.pop(("dropout-before-batchnorm", "drop")) == 1
    twin_keys[("bias-before-batchnorm", "fc1")] += 1
    assert collections.Counter((f.symbol, f.layer) for f in traced.rule_findings) == twin_keys
    assert traced.summary.params == twin.summary.params == char_cnn.count_params() == 466_666
    assert traced.summary.macs == twin.summary.macs


def test_trace_names_keras_layers_and_needs_a_shape(char_cnn):
    graph = graph_from_subclassed(char_cnn, SHAPE)
    layers = {n.layer for n in graph if n.op in ("conv", "dense", "batchnorm", "pool")}
    assert layers == {"conv1", "conv2", "fc1", "fc2", "bn1", "bn2", "bn3", "pool1", "pool2"}
    with pytest.raises(TraceError, match="input_shape"):
        keras_cnnkit.lint(char_cnn)
