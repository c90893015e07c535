"""The static file frontend: formats, Keras 2/3 configs, nesting, sharing, shapes, params.

Expected values are worked out by hand from the layer definitions (a conv's parameters
are ``k·k·C_in·C_out + C_out``, a ``valid`` 3×3 conv on 32×32 gives 30×30...).
"""
import io
import json
import shutil
import zipfile

import h5py
import pytest
import static_model_files as smf

from keras_cnnkit.analysis.frontends import static_file
from keras_cnnkit.analysis.frontends.containers import detect_format, read_model_file
from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.errors import ModelFileError

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

#: Hand-counted parameters of the zoo's nested/shared model (conv: k·k·Cin·Cout + Cout).
NESTED_PARAMS = {"c1": 3 * 3 * 3 * 8 + 8, "bn": 4 * 8, "shared": 3 * 3 * 8 * 8 + 8,
                 "subseq/sc": 8 * 4 + 4, "fc": 4 * 10 + 10}
NESTED_NODES = ["img", "c1", "bn", "shared", "shared@1", "add", "subseq/sc", "subseq/sr",
                "lam", "gap", "fc"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Real Keras 3 files of the nested/shared model, a Sequential and a block model."""
    import keras
    from keras_cnnkit.layers.conv import ConvBNAct

    root = tmp_path_factory.mktemp("zoo")
    files = {}
    model = smf.nested_shared_model()
    files["m.keras"] = smf.save_quietly(model, root / "m.keras")
    files["m.h5"] = smf.save_quietly(model, root / "m.h5")
    files["m.json"] = smf.write_json(root / "m.json", model.to_json())
    seq = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="c"),
                            keras.layers.Flatten(name="f"), keras.layers.Dense(2, name="d")],
                           name="seq")
    files["s.keras"] = smf.save_quietly(seq, root / "s.keras")
    files["s.h5"] = smf.save_quietly(seq, root / "s.h5")
    inp = keras.Input((16, 16, 3), name="x")
    blk = keras.Model(inp, ConvBNAct(8, name="blk")(inp), name="blockmodel")
    files["b.keras"] = smf.save_quietly(blk, root / "b.keras")
    files["b.h5"] = smf.save_quietly(blk, root / "b.h5")
    return files


@pytest.mark.parametrize("name", ["m.keras", "m.h5", "m.json"])
def test_nested_shared_lambda_model(zoo, name):
    """Nested Sequential, shared conv, Lambda: names, shapes, stored params."""
    graph = static_file.load_graph(zoo[name])
    assert list(graph.nodes) == NESTED_NODES
    assert graph.inputs == ["img"] and graph.outputs == ["fc"]
    assert graph.frontend == "file" and graph.source == zoo[name]
    assert graph["c1"].output_shape == (30, 30, 8)       # valid 3×3 on 32×32
    assert graph["shared@1"].inputs == ["shared"]
    assert graph["shared@1"].attrs["shares_weights_with"] == "shared"
    assert graph["add"].inputs == ["shared", "shared@1"]
    assert graph["subseq/sc"].output_shape == (30, 30, 4)
    lam = graph["lam"]
    assert lam.op == OpKind.OPAQUE and lam.source_class == "Lambda"
    assert lam.output_shape == (30, 30, 4)  # the shape Keras recorded for its consumer
    assert graph["fc"].output_shape == (10,)
    if name == "m.json":
        assert all(n.params is None for n in graph)
    else:
        observed = {n.name: n.params for n in graph if n.params}
        assert observed == NESTED_PARAMS
        assert graph["shared@1"].params is None


def test_format_is_detected_by_content_not_suffix(zoo, tmp_path):
    """Each container is read by its magic bytes whatever its suffix."""
    for src, fake, fmt in (("m.h5", "model.json", "h5"), ("m.keras", "model.h5", "keras"),
                           ("m.json", "model.keras", "json")):
        target = tmp_path / fake
        shutil.copy(zoo[src], target)
        assert detect_format(str(target)) == fmt
        assert list(static_file.load_graph(target).nodes) == NESTED_NODES


def test_keras2_config_gives_the_same_graph(tmp_path, zoo):
    """tf_keras' spelling (trimmed real output) reads as the Keras 3 file does."""
    k2 = static_file.load_graph(smf.write_legacy_h5(
        tmp_path / "k2.h5", smf.KERAS2_NESTED_CONFIG, smf.KERAS2_NESTED_WEIGHTS))
    k3 = static_file.load_graph(zoo["m.h5"])
    assert list(k2.nodes) == list(k3.nodes)
    for node in k3:
        other = k2[node.name]
        assert (other.inputs, other.params) == (node.inputs, node.params)
        if node.name not in ("lam", "gap", "fc"):
            assert (other.op, other.output_shape) == (node.op, node.output_shape)
    # Keras 2 files record no shapes: after the Lambda the shapes are unknown.
    assert k2["lam"].output_shape is None and k2["fc"].op == OpKind.OPAQUE


def test_keras2_synthetic_chain_matches_keras3(tmp_path):
    """The same chain in Keras 2 and Keras 3 spelling gives the same graph."""
    k3 = static_file.load_graph(smf.write_json(tmp_path / "a.json", smf.conv_chain_config(6)))
    k2 = static_file.load_graph(smf.write_json(tmp_path / "b.json",
                                               smf.conv_chain_config(6, keras2=True)))
    assert [(n.name, n.op, n.output_shape) for n in k2] == \
        [(n.name, n.op, n.output_shape) for n in k3]


def test_sequential_files(zoo):
    """Keras 3 Sequential in both containers."""
    for name in ("s.keras", "s.h5"):
        graph = static_file.load_graph(zoo[name])
        assert [n.op for n in graph] == ["input", "conv", "flatten", "dense"]
        assert graph["c"].output_shape == (14, 14, 4)
        assert graph["f"].output_shape == (14 * 14 * 4,)
        assert graph["c"].params == 3 * 3 * 3 * 4 + 4
        assert graph["d"].params == 784 * 2 + 2


def test_sequential_with_batch_input_shape_on_first_layer(tmp_path):
    """Older tf.keras writes no InputLayer; the first layer carries the shape."""
    config = {"class_name": "Sequential", "config": {"name": "old", "layers": [
        {"class_name": "Conv2D", "config": {"name": "c", "batch_input_shape": [None, 8, 8, 3],
                                            "filters": 16, "kernel_size": [3, 3],
                                            "padding": "same", "use_bias": False}},
        {"class_name": "GlobalAveragePooling2D", "config": {"name": "g"}}]}}
    graph = static_file.load_graph(smf.write_json(tmp_path / "old.json", config))
    assert list(graph.nodes) == ["c_input", "c", "g"]
    assert graph["c"].output_shape == (8, 8, 16) and graph["g"].output_shape == (16,)


def test_keras_cnnkit_block_is_expanded(zoo):
    """A ConvBNAct block becomes its inner ops with their stored params."""
    for name in ("b.keras", "b.h5"):
        graph = static_file.load_graph(zoo[name])
        assert list(graph.nodes) == ["x", "blk/conv", "blk/bn", "blk/act"]
        assert graph["blk/conv"].params == 3 * 3 * 3 * 8   # use_bn → no bias
        assert graph["blk/bn"].params == 4 * 8


def test_archive_without_layer_names_uses_the_saver_scheme(zoo, tmp_path):
    """Archives written before Keras recorded layer names in the weights file."""
    with zipfile.ZipFile(zoo["m.keras"]) as zf:
        config = zf.read("config.json")
        weights = zf.read("model.weights.h5")
    buffer = io.BytesIO(weights)
    with h5py.File(buffer, "a") as h5:
        def strip(_, obj):
            if "name" in obj.attrs:
                del obj.attrs["name"]
        h5.visititems(strip)
        if "name" in h5["vars"].attrs:
            del h5["vars"].attrs["name"]
    path = smf.write_keras_archive(tmp_path / "old.keras", config, buffer.getvalue())
    graph = static_file.load_graph(path)
    assert {n.name: n.params for n in graph if n.params} == NESTED_PARAMS


def test_multi_input_multi_output(tmp_path):
    """Two inputs concatenated, two Dense heads."""
    layers = [smf.k3_input("a", [8, 8, 3]), smf.k3_input("b", [8, 8, 5]),
              smf.k3_layer("Concatenate", "cat", ["a", "b"], axis=-1),
              smf.k3_layer("Conv2D", "conv", ["cat"], filters=16, kernel_size=[3, 3],
                           padding="valid"),
              smf.k3_layer("GlobalAveragePooling2D", "gap", ["conv"]),
              smf.k3_layer("Dense", "head1", ["gap"], units=4),
              smf.k3_layer("Dense", "head2", ["gap"], units=2)]
    config = smf.k3_functional("two", layers, ["a", "b"], ["head1", "head2"])
    graph = static_file.load_graph(smf.write_json(tmp_path / "two.json", config))
    assert graph.inputs == ["a", "b"] and graph.outputs == ["head1", "head2"]
    assert graph["cat"].output_shape == (8, 8, 8)
    assert graph["conv"].output_shape == (6, 6, 16)


def test_layers_listed_out_of_order_are_sorted(tmp_path):
    """Calls are ordered topologically, not by listing."""
    config = smf.conv_chain_config(4)
    config["config"]["layers"].reverse()
    graph = static_file.load_graph(smf.write_json(tmp_path / "rev.json", config))
    assert list(graph.nodes) == ["x", "c0", "r1", "c2", "r3"]


@pytest.mark.parametrize("requested, expected", [
    (None, (224, 224, 3)),            # the documented default for unknown dims
    ((299, 299), (299, 299, 3)),      # one value per unknown dim
    ((128, 96, 3), (128, 96, 3)),     # the full shape
])
def test_unknown_input_size(tmp_path, requested, expected):
    """Unknown dims: default 224, or --input-shape as unknown dims or full shape."""
    layers = [smf.k3_input("x", [None, None, 3]),
              smf.k3_layer("Conv2D", "c", ["x"], filters=8, kernel_size=[3, 3],
                           strides=[2, 2], padding="same")]
    path = smf.write_json(tmp_path / "dyn.json", smf.k3_functional("dyn", layers, ["x"], ["c"]))
    graph = static_file.load_graph(path, input_shape=requested)
    assert graph["x"].output_shape == expected
    assert graph["x"].attrs["declared_shape"] == (None, None, 3)
    assert graph["c"].output_shape == (-(-expected[0] // 2), -(-expected[1] // 2), 8)


@pytest.mark.parametrize("requested, problem", [
    ((299, 299, 4), "conflicts with input 'x'"),
    ((1, 2, 3, 4, 5), "does not fit input 'x'"),
])
def test_input_shape_that_does_not_fit(tmp_path, requested, problem):
    """An --input-shape contradicting the model is an error naming the input."""
    layers = [smf.k3_input("x", [None, None, 3]), smf.k3_layer("ReLU", "r", ["x"])]
    path = smf.write_json(tmp_path / "dyn.json", smf.k3_functional("dyn", layers, ["x"], ["r"]))
    with pytest.raises(ModelFileError, match=problem):
        static_file.load_graph(path, input_shape=requested)


def test_fully_unknown_input_needs_input_shape(tmp_path):
    """A fully unknown input shape must be given."""
    layers = [smf.k3_input("x", [None, None, None]), smf.k3_layer("ReLU", "r", ["x"])]
    path = smf.write_json(tmp_path / "dyn.json", smf.k3_functional("dyn", layers, ["x"], ["r"]))
    with pytest.raises(ModelFileError, match="pass --input-shape"):
        static_file.load_graph(path)
    assert static_file.load_graph(path, input_shape=(64, 64, 3))["r"].output_shape == (64, 64, 3)


def test_wrong_input_size_is_caught_by_the_dense_kernel(zoo, tmp_path):
    """Flatten → Dense: the stored kernel (784 inputs) contradicts a 32×32 input."""
    with zipfile.ZipFile(zoo["s.keras"]) as zf:
        config = json.loads(zf.read("config.json"))
        weights = zf.read("model.weights.h5")
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, None, None, 3]
    path = smf.write_keras_archive(tmp_path / "dyn.keras", config, weights)
    with pytest.raises(ModelFileError, match="stored kernel has 784 inputs"):
        static_file.load_graph(path, input_shape=(32, 32))
    assert static_file.load_graph(path, input_shape=(16, 16))["d"].params == 1570


def test_untrusted_module_becomes_opaque(tmp_path):
    """A known class name from a foreign module or registration is opaque."""
    layers = [smf.k3_input("x", [8, 8, 3]),
              smf.k3_layer("Conv2D", "fake", ["x"], module="evil.layers", filters=4,
                           kernel_size=[1, 1]),
              smf.k3_layer("Conv2D", "custom", ["fake"], module="keras.layers",
                           registered_name="Mine>Conv2D", filters=4, kernel_size=[1, 1])]
    path = smf.write_json(tmp_path / "u.json",
                          smf.k3_functional("u", layers, ["x"], ["custom"]))
    graph = static_file.load_graph(path)
    assert graph["fake"].op == OpKind.OPAQUE
    assert graph["fake"].attrs["class_name"] == "evil.layers.Conv2D"
    assert graph["custom"].op == OpKind.OPAQUE
    assert graph["custom"].attrs["class_name"] == "Mine.Conv2D"


def test_read_model_file_reports_version_and_format(zoo):
    """read_model_file: format, Keras version, weight shapes by layer path."""
    info = read_model_file(zoo["m.h5"])
    assert info.format == "h5" and info.keras_version.startswith("3.")
    assert info.weight_shapes["subseq/sc"] == [(1, 1, 8, 4), (4,)]
    assert read_model_file(zoo["m.keras"]).format == "keras"
    assert read_model_file(zoo["m.json"]).weight_shapes is None


def test_shared_nested_functional_matches_live(tmp_path):
    """A Functional sub-model called twice: ``sub/...`` then ``sub@1/...``, as live."""
    import keras
    from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras

    inner_in = keras.Input((8, 8, 4), name="inner_in")
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, padding="same", name="conv")(
        keras.layers.ReLU(name="relu")(inner_in)), name="sub")
    inp = keras.Input((8, 8, 4), name="x")
    y = keras.layers.Add(name="sum")([inner(inp), inner(inner(inp))])
    model = keras.Model(inp, y, name="outer")
    live = {n.name: (n.op, n.inputs, n.output_shape, n.params, n.attrs) for n in
            graph_from_keras(model)}
    assert "sub@2/conv" in live and live["sub@1/conv"][4]["shares_weights_with"] == "sub/conv"
    for suffix in ("keras", "h5"):
        path = smf.save_quietly(model, tmp_path / f"nested.{suffix}")
        static = {n.name: (n.op, n.inputs, n.output_shape, n.params, n.attrs)
                  for n in static_file.load_graph(path)}
        assert static == live, suffix
        assert static["sub/conv"][3] == 3 * 3 * 4 * 4 + 4


def test_keras2_lambda_with_declared_output_shape(tmp_path):
    """A Keras 2 Lambda declaring ``output_shape`` keeps the rest of the graph analysable."""
    config = json.loads(json.dumps(smf.KERAS2_NESTED_CONFIG))
    lam = next(e for e in config["config"]["layers"] if e["name"] == "lam")
    lam["config"].update(output_shape=[30, 30, 4], output_shape_type="raw")
    graph = static_file.load_graph(smf.write_legacy_h5(tmp_path / "k2.h5", config,
                                                       smf.KERAS2_NESTED_WEIGHTS))
    assert graph["lam"].op == OpKind.OPAQUE and graph["lam"].output_shape == (30, 30, 4)
    assert graph["gap"].output_shape == (4,)
    assert graph["fc"].op == OpKind.DENSE and graph["fc"].params == 4 * 10 + 10
