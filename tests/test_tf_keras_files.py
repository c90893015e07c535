"""tf_keras (Keras 2) files with TF-op layers: read statically, costed like Keras 3's.

Functional code such as ``x + 3.0`` or ``tf.nn.relu6(x)`` is saved by tf_keras as
``TFOpLambda`` layers naming the TensorFlow function and its arguments
(``x[..., :6]`` as a ``SlicingOpLambda``).  The files are written here by tf_keras in a
subprocess (tf_keras and Keras 3 are not mixed in one process); every figure the tests
compare against is tf_keras' own, recorded there: ``count_params()`` and each layer's
output shape.  keras.applications' MobileNetV3Small (hard-swish written as TF ops) must
give Keras 3's MACs and findings.
"""
import json
import math
import os

import pytest
import static_model_files as smf

from keras_cnnkit.analysis.cost import summarize
from keras_cnnkit.analysis.frontends.static_file import load_graph
from keras_cnnkit.analysis.ops import Trait, op_def
from keras_cnnkit.lint.api import lint

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

pytest.importorskip("tf_keras")

_WRITE = """
    import json, os
    import tensorflow as tf
    import tf_keras as k2

    out = {out!r}
    facts = {{}}

    def save(model, name, formats=("h5", "json")):
        for fmt in formats:
            path = os.path.join(out, name + "." + fmt)
            if fmt == "json":
                with open(path, "w") as fh:
                    fh.write(model.to_json())
            else:
                model.save(path)
        facts[name] = {{"params": int(model.count_params()),
                        "shapes": {{l.name: [list(t.shape[1:]) for t in tf.nest.flatten(l.output)]
                                   for l in model.layers}}}}

    inp = k2.Input((8, 8, 6), name="img")
    x = k2.layers.Conv2D(12, 3, padding="same", name="conv")(inp)
    seq = tf.reshape(tf.concat([tf.nn.relu6(x * x), x - (x + 3.0)], axis=-1), [-1, 64, 24])
    parts = tf.split(x, [4, 8], axis=-1)
    outputs = [
        2.0 * x, x / 2.0, tf.math.maximum(x, 0.0), tf.nn.silu(x), tf.math.sigmoid(x),
        tf.nn.softmax(x, axis=-1), tf.clip_by_value(x, 0.0, 6.0), tf.math.sqrt(x * x),
        seq, tf.transpose(seq, perm=[0, 2, 1]), tf.linalg.matmul(seq, seq, transpose_b=True),
        tf.reduce_mean(x, axis=[1, 2], keepdims=True), tf.math.reduce_max(x, axis=-1),
        x[:, 1:5, :, :6], x[..., ::2], x[:, 0], tf.expand_dims(x, 1),
        tf.squeeze(tf.reduce_mean(x, axis=[1, 2], keepdims=True), axis=[1, 2]),
        tf.pad(x, [[0, 0], [1, 1], [2, 2], [0, 0]]), tf.image.resize(x, (16, 16)),
        parts[1], k2.layers.Conv2D(5, 1, name="after_split")(parts[1]),
    ]
    save(k2.Model(inp, outputs, name="tf_ops"), "tf_ops")

    class Block(k2.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = k2.layers.Conv2D(8, 3, padding="same")
            self.bn = k2.layers.BatchNormalization()

        def call(self, inputs):
            return tf.nn.relu(self.bn(self.conv(inputs)))

    img = k2.Input((16, 16, 3), name="img")
    y = k2.layers.Conv2D(4, 3, name="after")(Block(name="block")(img))
    save(k2.Model(img, k2.layers.GlobalAveragePooling2D(name="gap")(y)), "custom",
         formats=("h5",))
    save(k2.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None),
         "mobilenet_v3_small")
    save(k2.applications.ConvNeXtTiny(input_shape=(32, 32, 3), weights=None),
         "convnext_tiny", formats=("json",))
    with open(os.path.join(out, "facts.json"), "w") as fh:
        json.dump(facts, fh)
"""


@pytest.fixture(scope="module")
def tf_keras_files(tmp_path_factory):
    """``{name: (facts, {suffix: path})}`` for the files tf_keras wrote."""
    out = tmp_path_factory.mktemp("tf_keras")
    proc = smf.run_python(_WRITE.format(out=str(out)), out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads((out / "facts.json").read_text())
    return {name: (fact, {p.suffix[1:]: str(p) for p in out.glob(f"{name}.*")})
            for name, fact in facts.items()}


def test_tf_ops_are_read_as_ops(tf_keras_files):
    """Every TF-op layer maps onto an op kind: no opaque node, tf_keras' shapes, params."""
    facts, paths = tf_keras_files["tf_ops"]
    for path in paths.values():
        graph = load_graph(path)
        assert [n.name for n in graph if n.op == "opaque"] == []
        for name, shapes in facts["shapes"].items():
            if name == "img":
                continue
            node = graph[name]
            assert list(node.output_shape) == shapes[0], name
        summary = summarize(graph)
        assert summary.params == facts["params"] == 12 * 9 * 6 + 12 + 8 * 5 + 5
        # conv 8·8·12·9·6, the matmul (64×24)·(24×64), the 1×1 conv on the 8-channel part
        assert summary.macs == 8 * 8 * 12 * 9 * 6 + 64 * 24 * 64 + 8 * 8 * 5 * 8
    graph = load_graph(paths["h5"])
    kinds = {}
    for node in graph:
        kinds.setdefault(node.source_class, set()).add(node.op)
    assert kinds["tf.math.multiply"] == {"rescale", "multiply"}   # 2.0 * x and x * x
    assert kinds["tf.math.maximum"] == kinds["tf.nn.silu"] == {"activation"}
    assert kinds["tf.math.reduce_mean"] == {"global_pool"}
    assert kinds["tf.__operators__.getitem"] == {"strided_slice"}
    assert [n.attrs.get("scale") for n in graph if n.op == "rescale"
            and n.source_class == "tf.math.multiply"] == [2.0]
    assert {n.attrs["activation"] for n in graph if n.source_class in (
        "tf.math.maximum", "tf.clip_by_value")} == {"relu", "relu6"}
    assert graph["tf.split/1"].attrs == {"axis": 2, "start": 4, "stop": 12,
                                         "data_format": "channels_last"}
    assert graph["after_split"].inputs == ["tf.split/1"]


def test_custom_layer_keeps_params_and_does_not_blind(tf_keras_files):
    """A Keras 2 custom layer with sub-layers: opaque, its stored weights counted.  A
    tf_keras .h5 records no shapes, but the conv after it stores its kernel: the conv is
    analysed (8 input channels; the spatial size, and so its MACs, unknown), and so is
    what follows."""
    facts, paths = tf_keras_files["custom"]
    graph = load_graph(paths["h5"])
    assert graph["block"].op == "opaque" and graph["block"].output_shape == (None, None, 8)
    assert graph["block"].params == 3 * 3 * 3 * 8 + 8 + 4 * 8
    assert graph["after"].op == "conv" and graph["after"].input_shapes == [(None, None, 8)]
    assert graph["gap"].op == "global_pool" and graph["gap"].output_shape == (4,)
    summary = summarize(graph)
    assert summary.params == facts["params"]
    assert sorted(summary.unknown) == ["after", "block", "gap"]


def test_convnext_config_reads_with_its_tf_ops(tf_keras_files):
    """tf_keras ConvNeXt (x + y and LayerScale as TF ops): params = count_params()."""
    facts, paths = tf_keras_files["convnext_tiny"]
    report = lint(paths["json"])
    assert report.summary.params == facts["params"]
    assert not report.summary.unknown


def _weighted(graph):
    return [n for n in graph if op_def(n.op).has(Trait.WEIGHTED)]


def _conv_dense_macs(model) -> int:
    """Keras 3's conv and dense MACs from each layer's kernel and output shape."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                              keras.layers.Dense)):
            total += math.prod(layer.kernel.shape) * math.prod(layer.output.shape[1:-1])
    return total


def test_mobilenet_v3_matches_keras3(tf_keras_files):
    """tf_keras MobileNetV3Small .h5: exit-free lint, Keras 3's MACs and findings."""
    keras = pytest.importorskip("keras")
    facts, paths = tf_keras_files["mobilenet_v3_small"]
    model = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None)
    reference = lint(model, select=["ALL"])
    for path in paths.values():
        report = lint(path, select=["ALL"])
        assert report.summary.params == facts["params"] == model.count_params()
        assert report.summary.macs == reference.summary.macs == _conv_dense_macs(model)
        assert not report.summary.unknown
        mine, theirs = _weighted(report.graph), _weighted(reference.graph)
        assert [n.attrs["kernel"] for n in mine if "kernel" in n.attrs] == \
            [n.attrs["kernel"] for n in theirs if "kernel" in n.attrs]
        names = {a.layer: b.layer for a, b in zip(mine, theirs)}
        assert sorted((f.code, names.get(f.layer, f.layer)) for f in report.findings) == \
            sorted((f.code, f.layer) for f in reference.findings)


def test_cli_exit_status(tf_keras_files, tmp_path):
    """The CLI lints every file tf_keras wrote (exit 0 or 1, never 2)."""
    from keras_cnnkit.lint.cli import main

    paths = [p for _, files in tf_keras_files.values() for p in files.values()]
    out = tmp_path / "report.json"
    assert main([*paths, "--format", "json", "--no-config", "-o", str(out)]) in (0, 1)
    report = json.loads(out.read_text())
    assert report["errors"] == [] and len(report["models"]) == len(paths)
    assert all(os.path.exists(m["file"]) for m in report["models"])
