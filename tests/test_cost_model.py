"""The cost model: per-op params, MACs, FLOPs and memory against figures worked out here.

MACs are computed in the tests from the Keras layers' kernel shapes and output shapes;
FLOPs from the convention stated in :mod:`keras_cnnkit.analysis.cost` applied by hand.
Whole-model agreement with TensorFlow's profiler is in ``test_keras_apps_lint.py``.
"""
import json
import math

import keras
import pytest
from keras import layers as L

from keras_cnnkit.analysis.cost import node_cost, replacement_costs, summarize
from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
from keras_cnnkit.analysis.ir import Graph, Node, OpKind


def one_layer(layer, *shapes):
    """(graph, keras layer, output tensor) of ``layer`` applied to fresh inputs."""
    inputs = [keras.Input(s) for s in shapes]
    out = layer(inputs if len(inputs) > 1 else inputs[0])
    graph = graph_from_keras(keras.Model(inputs, out))
    return graph, out


def cost_of(graph, name):
    """The cost of node ``name``."""
    return node_cost(graph[name])


def elems(tensor):
    """Elements of one sample of a Keras tensor."""
    return math.prod(tensor.shape[1:])


def test_conv_with_bias_and_fused_activation():
    """FLOPs = 2·MACs + 1 per output for the bias + 1 per output for the ReLU."""
    layer = L.Conv2D(8, 3, padding="same", activation="relu", name="c")
    graph, out = one_layer(layer, (10, 10, 4))
    macs = math.prod(layer.kernel.shape) * math.prod(out.shape[1:-1])
    cost = cost_of(graph, "c")
    assert cost.params == layer.count_params()
    assert cost.macs == macs == 10 * 10 * 8 * 3 * 3 * 4
    assert cost.flops == 2 * macs + elems(out) + elems(out)
    assert cost.activation_bytes == 4 * elems(out)
    assert cost.bytes_moved == 4 * (10 * 10 * 4 + elems(out) + layer.count_params())


def test_grouped_depthwise_transposed_and_dense():
    """MACs of every weighted op from the kernel shape and the output (or input) shape."""
    gconv = L.Conv2D(8, 3, groups=4, use_bias=False, name="g")
    graph, out = one_layer(gconv, (9, 9, 8))
    assert cost_of(graph, "g").macs == math.prod(gconv.kernel.shape) * math.prod(out.shape[1:-1])

    dw = L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same", name="dw")
    graph, out = one_layer(dw, (10, 10, 4))
    assert cost_of(graph, "dw").macs == (math.prod(dw.kernel.shape)
                                         * math.prod(out.shape[1:-1]))

    sep = L.SeparableConv2D(6, 3, name="sep")
    graph, out = one_layer(sep, (10, 10, 4))
    positions = math.prod(out.shape[1:-1])
    expected = (math.prod(sep.depthwise_kernel.shape) + math.prod(sep.pointwise_kernel.shape))
    assert (cost_of(graph, "sep/depthwise").macs + cost_of(graph, "sep").macs
            == expected * positions)

    tconv = L.Conv2DTranspose(4, 3, strides=2, name="t")
    graph, _ = one_layer(tconv, (5, 5, 3))
    assert cost_of(graph, "t").macs == 5 * 5 * math.prod(tconv.kernel.shape)

    dense = L.Dense(5, name="d")
    graph, _ = one_layer(dense, (7, 6))
    cost = cost_of(graph, "d")
    assert cost.macs == 7 * math.prod(dense.kernel.shape)
    assert cost.flops == 2 * cost.macs + 7 * 5


@pytest.mark.parametrize("layer, shapes, flops_per", [
    (L.BatchNormalization(name="x"), [(10, 10, 4)], lambda out, ins: 2 * out),
    (L.LayerNormalization(name="x"), [(10, 10, 4)], lambda out, ins: 7 * out),
    (L.Add(name="x"), [(6, 6, 4)] * 3, lambda out, ins: 2 * out),
    (L.Average(name="x"), [(6, 6, 4)] * 2, lambda out, ins: 2 * out),
    (L.Multiply(name="x"), [(6, 6, 4), (1, 1, 4)], lambda out, ins: out),
    (L.MaxPooling2D(3, strides=2, padding="same", name="x"), [(10, 10, 4)],
     lambda out, ins: 9 * out),
    (L.AveragePooling2D(2, name="x"), [(10, 10, 4)], lambda out, ins: 4 * out),
    (L.GlobalAveragePooling2D(name="x"), [(10, 10, 4)], lambda out, ins: ins),
    (L.Softmax(name="x"), [(10,)], lambda out, ins: 5 * out),
    (L.ReLU(name="x"), [(10, 10, 4)], lambda out, ins: out),
    (L.ReLU(6.0, name="x"), [(10, 10, 4)], lambda out, ins: out),
    (L.Activation("sigmoid", name="x"), [(10, 10, 4)], lambda out, ins: 4 * out),
    (L.Activation("swish", name="x"), [(10, 10, 4)], lambda out, ins: 5 * out),
    (L.Rescaling(0.5, name="x"), [(10, 10, 4)], lambda out, ins: 2 * out),
    (L.UpSampling2D(2, interpolation="bilinear", name="x"), [(5, 5, 4)],
     lambda out, ins: 7 * out),
    (L.UpSampling2D(2, name="x"), [(5, 5, 4)], lambda out, ins: 0),
    (L.Concatenate(name="x"), [(5, 5, 4), (5, 5, 2)], lambda out, ins: 0),
    (L.Flatten(name="x"), [(5, 5, 4)], lambda out, ins: 0),
    (L.ZeroPadding2D(1, name="x"), [(5, 5, 4)], lambda out, ins: 0),
    (L.Dropout(0.5, name="x"), [(5, 5, 4)], lambda out, ins: 0),
], ids=lambda v: getattr(v, "__class__").__name__ if isinstance(v, L.Layer) else "")
def test_flop_convention(layer, shapes, flops_per):
    """Element-wise, normalisation, pooling and data-movement ops per the stated rule."""
    graph, out = one_layer(layer, *shapes)
    cost = cost_of(graph, "x")
    assert cost.known and cost.macs == 0
    assert cost.flops == flops_per(elems(out), math.prod(shapes[0]))
    assert cost.params == layer.count_params()


def test_unknown_costs_are_listed_not_zero():
    """A custom activation and a Lambda have unknown cost; the summary lists both."""
    def my_act(t):
        return t * 2.0

    x = keras.Input((6, 6, 3))
    y = L.Activation(my_act, name="custom")(x)
    y = L.Lambda(lambda t: t + 1.0, name="lam")(y)
    y = L.Conv2D(2, 1, name="conv")(y)
    graph = graph_from_keras(keras.Model(x, y))
    custom = cost_of(graph, "custom")
    assert not custom.known and custom.flops is None
    summary = summarize(graph)
    assert summary.unknown == ["custom", "lam"]
    assert summary.macs == 6 * 6 * 2 * 3     # only the conv


def test_peak_activation_memory():
    """Tensors are freed after their last consumer: a skip keeps the input alive."""
    x = keras.Input((10,), name="x")
    a = L.Dense(20, name="a")(x)
    b = L.Dense(30, name="b")(a)
    c = L.Dense(10, name="c")(b)
    out = L.Add(name="add")([x, c])
    summary = summarize(graph_from_keras(keras.Model(x, out)))
    # live while computing b: x(10) + a(20) + b(30) floats
    assert summary.peak_activation_bytes == 4 * (10 + 20 + 30)
    assert summary.activation_bytes == 4 * (10 + 20 + 30 + 10 + 10)


def test_observed_params_mismatch_is_reported():
    """A frontend's observed count that disagrees with the formula is listed."""
    graph = Graph(name="g")
    graph.add(Node("x", OpKind.INPUT, output_shape=(4,), attrs={"shape": (4,)}))
    graph.add(Node("d", OpKind.DENSE, ["x"], [(4,)], (3,),
                   {"in_features": 4, "units": 3, "use_bias": True}, params=99, layer="d"))
    graph.outputs = ["d"]
    summary = summarize(graph)
    assert summary.params == 4 * 3 + 3
    assert summary.param_mismatches == [{"layer": "d", "formula": 15, "observed": 99}]


def test_opaque_params_come_from_observation():
    """Opaque layers have no formula: the observed count is used and flagged."""
    graph = Graph(name="g")
    graph.add(Node("x", OpKind.INPUT, output_shape=(4,), attrs={"shape": (4,)}))
    graph.add(Node("o", OpKind.OPAQUE, ["x"], [(4,)], (4,), {"class_name": "Custom"},
                   params=7))
    summary = summarize(graph)
    assert summary.params == 7 and summary.params_from_observed == ["o"]
    assert summary.unknown == ["o"]


def test_replacement_costs_and_json():
    """Before/after of a fragment are node costs summed; the summary is JSON-ready."""
    layer = L.Conv2D(8, 3, padding="same", name="c")
    graph, _ = one_layer(layer, (10, 10, 4))
    before, after = replacement_costs(graph, ["c"], [graph["c"]])
    assert before == after == node_cost(graph["c"])
    data = json.loads(json.dumps(summarize(graph).to_dict()))
    assert data["params"] == layer.count_params()
    assert data["nodes"][1]["macs"] == 10 * 10 * 8 * 3 * 3 * 4
