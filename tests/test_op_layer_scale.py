"""The ``layer_scale`` op kind: ConvNeXt's per-channel learned scale ``x · γ``, γ of shape (C,).

Expected figures come from Keras (``count_params()``, the layer's ``gamma`` shape, output
shapes) and from the stated convention (1 FLOP per element), never from the code under test.
"""
import math

import keras
import numpy as np
import pytest

from keras_cnnkit.analysis.cost import node_cost
from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
from keras_cnnkit.analysis.frontends.static_file import load_graph
from keras_cnnkit.analysis.ops.layer_scale import LAYER_SCALE
from keras_cnnkit.lint.api import lint
from keras_cnnkit.rewrite import model_from_graph

LayerScale = pytest.importorskip("keras.src.applications.convnext").LayerScale


def scaled_model():
    """x → Conv2D(12) → LayerScale(12) → + x."""
    x = keras.Input((6, 5, 12), name="x")
    y = keras.layers.Conv2D(12, 3, padding="same", name="conv")(x)
    y = LayerScale(0.5, 12, name="scale")(y)
    return keras.Model(x, keras.layers.Add(name="add")([x, y]))


def test_layer_scale_node_and_costs():
    """One node: params = C (Keras' count), FLOPs = 1 per element, no MACs."""
    model = scaled_model()
    graph = graph_from_keras(model)
    node = graph["scale"]
    assert node.op == LAYER_SCALE and node.attrs["channels"] == 12
    assert node.output_shape == (6, 5, 12)
    cost = node_cost(node)
    keras_layer = model.get_layer("scale")
    assert cost.params == keras_layer.count_params() == 12
    assert cost.known and cost.macs == 0
    assert cost.flops == 6 * 5 * 12
    assert cost.bytes_moved == 4 * (2 * 6 * 5 * 12 + 12)


def test_layer_scale_rebuilds_from_ir():
    """Codegen: the rebuilt model computes the same function once the weights are copied."""
    model = scaled_model()
    rebuilt = model_from_graph(graph_from_keras(model))
    assert rebuilt.count_params() == model.count_params()
    for layer in ("conv", "scale"):
        rebuilt.get_layer(layer).set_weights(model.get_layer(layer).get_weights())
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 12)).astype("float32")
    np.testing.assert_allclose(rebuilt.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def convnext_tiny():
    """keras.applications' ConvNeXtTiny with random weights."""
    keras.backend.clear_session()
    return keras.applications.ConvNeXtTiny(weights=None)


def _check_convnext(report, model):
    scales = [layer for layer in model._flatten_layers(include_self=False)  # pylint: disable=protected-access
              if type(layer).__name__ == "LayerScale"]
    assert len(scales) == 3 + 3 + 9 + 3
    graph = report.graph
    assert not [n.name for n in graph if n.op == "opaque"]
    nodes = [n for n in graph if n.op == LAYER_SCALE]
    assert len(nodes) == len(scales)
    assert report.summary.params == model.count_params()
    assert not report.summary.unknown and not report.summary.param_mismatches
    for node, layer in zip(nodes, scales):
        assert node_cost(node).params == math.prod(layer.gamma.shape) == layer.count_params()
        assert node_cost(node).flops == math.prod(node.output_shape)


def test_convnext_tiny_live_has_no_opaque_layer_scale(convnext_tiny):
    """Linted live: every LayerScale is a layer_scale node; params = count_params()."""
    _check_convnext(lint(convnext_tiny), convnext_tiny)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_convnext_tiny_file_has_no_opaque_layer_scale(convnext_tiny, tmp_path, ext):
    """Read statically from a saved file: the same nodes, params = count_params()."""
    path = tmp_path / f"convnext_tiny{ext}"
    convnext_tiny.save(path)
    assert sum(1 for n in load_graph(path) if n.op == LAYER_SCALE) == 18
    _check_convnext(lint(str(path)), convnext_tiny)
