"""Keras 3 files: ``keras.ops`` calls, custom layers with sub-layers, multi-output layers.

Functional code (``x + 3.0``, ``keras.ops.split``, ``x[..., :6]``) is saved as operation
nodes whose call arguments say what they compute; the file frontend and the live one
map them alike, with Keras' own shapes.  A custom layer the linter cannot analyse keeps
its parameters (the weights it stores under its own path, sub-layers included), and
does not blind what follows it: the shapes Keras recorded where its outputs are read
are used, one per output.  Expected figures are Keras' own (``count_params()``,
``KerasTensor.shape``) or hand formulas.
"""
import math

import keras
import pytest
import static_model_files as smf
from keras import layers as L
from keras import ops

from keras_cnnkit.analysis.cost import summarize
from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
from keras_cnnkit.analysis.frontends.static_file import load_graph
from keras_cnnkit.lint.api import lint

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name,abstract-method,too-many-ancestors
# pylint: disable=arguments-differ


def _ops_model():
    inp = keras.Input((8, 8, 6), name="img")
    x = L.Conv2D(12, 3, padding="same", name="conv")(inp)
    seq = ops.reshape(x, (-1, 64, 12))
    pieces = ops.split(x, [4, 6], axis=-1)
    outputs = [
        x + 3.0, 2.0 * x, x - (x + 3.0), ops.multiply(x, x), ops.relu6(x),
        ops.concatenate([x, x], axis=-1), ops.transpose(seq, (0, 2, 1)),
        ops.mean(x, axis=(1, 2), keepdims=True), ops.max(x, axis=-1), x[:, 1:5, :, :6],
        x[..., ::2], x[:, 0], x[..., :6], ops.expand_dims(x, 1), ops.silu(x),
        ops.pad(x, [[0, 0], [1, 1], [2, 2], [0, 0]]), ops.image.resize(x, (16, 16)),
        x / 2.0, ops.softmax(x, axis=-1), ops.clip(x, 0.0, 6.0), ops.stack([x, x], axis=1),
        ops.sqrt(ops.abs(x)), ops.matmul(seq, ops.transpose(seq, (0, 2, 1))),
        ops.einsum("bhwc,bkc->bhwk", x, seq), ops.sum(x, axis=-1), ops.hard_silu(x),
        L.Conv2D(3, 1, name="after_split")(pieces[2]),
    ]
    return keras.Model(inp, outputs, name="ops")


def _keras_shapes(model) -> dict:
    """Keras' own output shape of every operation (batch excluded)."""
    out = {}
    for operation in model.operations:
        node = operation._inbound_nodes[0]  # pylint: disable=protected-access
        out[operation.name] = [tuple(t.shape[1:]) for t in node.outputs]
    return out


@pytest.fixture(scope="module")
def ops_files(tmp_path_factory):
    """The ops model and its ``.keras``/``.h5`` files."""
    root = tmp_path_factory.mktemp("ops")
    model = _ops_model()
    return model, [smf.save_quietly(model, root / f"ops.{fmt}") for fmt in ("keras", "h5")]


def test_ops_are_read_as_ops_with_keras_shapes(ops_files):
    """No opaque node; every node's shape is Keras'; static = live; params, MACs."""
    model, paths = ops_files
    shapes = _keras_shapes(model)
    live = graph_from_keras(model)
    for graph in (live, *(load_graph(p) for p in paths)):
        assert [n.name for n in graph if n.op == "opaque"] == []
        for name, outs in shapes.items():
            if name == "img":
                continue
            names = [name] + [f"{name}/{i}" for i in range(1, len(outs))]
            assert [graph[n].output_shape for n in names] == outs, name
        summary = summarize(graph)
        assert summary.params == model.count_params() == 12 * 9 * 6 + 12 + 6 * 3 + 3
        # the convs, the matmul (64×12)·(12×64), the einsum 8·8·64·12
        assert summary.macs == (8 * 8 * 12 * 9 * 6 + 64 * 12 * 64 + 8 * 8 * 64 * 12
                                + 8 * 8 * 3 * 6)
        assert not [n.name for n in graph if "inferred_shape" in n.attrs]
    static = load_graph(paths[0])
    assert {n.name: (n.op, n.inputs, n.attrs) for n in static} == \
        {n.name: (n.op, n.inputs, n.attrs) for n in live}
    assert (static["split/2"].attrs["start"], static["split/2"].attrs["stop"]) == (6, 12)
    assert static["after_split"].inputs == ["split/2"]


class Block(L.Layer):
    """A custom layer holding sub-layers (its weights are theirs)."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = L.Conv2D(filters, 3, padding="same")
        self.bn = L.BatchNormalization()

    def call(self, inputs):
        return ops.relu(self.bn(self.conv(inputs)))

    def get_config(self):
        return dict(super().get_config(), filters=self.filters)


class TwoWay(L.Layer):
    """A custom layer with two outputs of different shapes."""

    def call(self, inputs):
        return inputs[..., :2], ops.mean(inputs, axis=(1, 2))


def _custom_model(shape=(16, 16, 3)):
    inp = keras.Input(shape, name="img")
    x = Block(8, name="block")(inp)
    y = L.Conv2D(4, 3, name="after")(x)
    first, pooled = TwoWay(name="two")(y)
    z = L.Conv2D(5, 1, name="on_first")(first)
    head = L.Dense(7, name="on_second")(pooled)
    return keras.Model(inp, [z, head], name="custom")


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_custom_layers_keep_params_and_do_not_blind(tmp_path, fmt):
    """Nested weights counted; layers after an opaque one keep their shapes and costs;
    each output of a two-output layer has its own shape (not output 0's)."""
    model = _custom_model()
    path = smf.save_quietly(model, tmp_path / f"custom.{fmt}")
    graph = load_graph(path)
    summary = summarize(graph)
    assert summary.params == model.count_params()
    assert graph["block"].params == 3 * 3 * 3 * 8 + 8 + 4 * 8
    assert graph["after"].op == "conv" and graph["after"].output_shape == (14, 14, 4)
    assert graph["on_first"].input_shapes == [(14, 14, 2)]
    assert graph["on_second"].op == "dense" and graph["on_second"].input_shapes == [(4,)]
    assert graph["two/output_1"].output_shape == (4,)
    assert summary.macs == 14 * 14 * 4 * 9 * 8 + 14 * 14 * 5 * 2 + 4 * 7
    report = lint(path, select=["opaque-layer"])
    assert sorted(f.layer for f in report.findings) == ["block", "two"]


def test_unknown_size_file_keeps_structure_live_gets_default_size(tmp_path):
    """Inputs of unknown size: from the file, layers after a custom one keep their channels
    (params exact, MACs unknown); the live model is analysed at 224² with Keras' shapes."""
    model = _custom_model(shape=(None, None, 3))
    path = smf.save_quietly(model, tmp_path / "custom.keras")
    graph = load_graph(path)
    assert graph["after"].op == "conv" and graph["after"].output_shape == (None, None, 4)
    summary = summarize(graph)
    assert summary.params == model.count_params()
    assert "after" in summary.unknown
    assert graph.notes == ["input 'img' of unknown size (None, None, 3) analysed at "
                           "(224, 224, 3) (give --input-shape to choose another size)"]
    live = lint(model)
    assert live.graph["after"].output_shape == (222, 222, 4)
    assert live.summary.macs == (224 * 224 * 8 * 9 * 3 + 222 * 222 * 4 * 9 * 8
                                 + 222 * 222 * 5 * 2 + 4 * 7)
    assert any("analysed at (224, 224, 3)" in note for note in live.summary.notes)


def test_live_opaque_layers_keep_their_own_output_shapes():
    """Live: every output of a multi-output custom layer has Keras' shape."""
    graph = graph_from_keras(_custom_model())
    assert graph["two"].output_shape == (14, 14, 2)
    assert graph["two/output_1"].output_shape == (4,)
    assert graph["on_second"].inputs == ["two/output_1"]
    assert math.prod(graph["on_second"].input_shapes[0]) == 4


def test_live_opaque_layers_count_the_macs_of_their_known_sub_layers():
    """Live, a custom layer is run once with its sub-layers' calls recorded: its MACs and
    FLOPs are its conv's and batch norm's (lower bounds: its own ops.relu is not seen, and
    its cost stays unknown); the opaque-layer finding says so."""
    model = _custom_model()
    report = lint(model, select=["opaque-layer"])
    graph = report.graph
    assert graph["block"].attrs["inner_macs"] == 16 * 16 * 8 * 9 * 3
    # conv: 2 per MAC + 1 per output for the bias; batch norm: 2 per element
    block_flops = 2 * 16 * 16 * 8 * 9 * 3 + 16 * 16 * 8 + 2 * 16 * 16 * 8
    assert graph["block"].attrs["inner_flops"] == block_flops
    assert graph["two"].attrs.get("inner_macs") is None      # no sub-layers: unknown
    assert report.summary.macs == (16 * 16 * 8 * 9 * 3 + 14 * 14 * 4 * 9 * 8
                                   + 14 * 14 * 5 * 2 + 4 * 7)
    after_flops = (2 * 14 * 14 * 4 * 9 * 8 + 14 * 14 * 4) + (2 * 14 * 14 * 5 * 2
                                                             + 14 * 14 * 5) + (2 * 4 * 7 + 7)
    assert report.summary.flops == block_flops + after_flops
    assert "block" in report.summary.unknown
    (finding,) = [f for f in report.findings if f.layer == "block"]
    assert ("its MACs and FLOPs are those of the known layers it calls (55,296 MACs, "
            "116,736 FLOPs; its other work is not counted)") in finding.message
    assert block_flops == 116_736
