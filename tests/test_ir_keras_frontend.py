"""The Keras layer table and the live frontend: IR shapes and params against Keras' own.

Every expected value comes from Keras (``KerasTensor.shape``, ``count_params()``) or from
arithmetic written out here, never from the code under test.
"""
import keras
import pytest
from keras import layers as L

from keras_cnnkit import layers as K
from keras_cnnkit.analysis.cost import node_params, summarize
from keras_cnnkit.analysis.frontends.keras_live import UnsupportedModelError, graph_from_keras
from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.keras_layers import (
    LayerConfigError,
    activation_name,
    convert_layer,
    infer_layer,
)
from keras_cnnkit.analysis.shapes import ShapeError, propagate_shapes

IMG = (16, 16, 8)
SEQ = (20, 6)

LAYERS = [
    (lambda: L.Conv2D(4, 3), IMG),
    (lambda: L.Conv2D(4, 3, strides=2, padding="same"), IMG),
    (lambda: L.Conv2D(4, (3, 5), strides=(2, 1), dilation_rate=1, padding="valid"), IMG),
    (lambda: L.Conv2D(6, 3, dilation_rate=2, activation="relu"), IMG),
    (lambda: L.Conv2D(8, 3, groups=4, use_bias=False), IMG),
    (lambda: L.Conv2D(4, 3, data_format="channels_first"), IMG),
    (lambda: L.Conv3D(4, 3, padding="same"), (8, 8, 8, 2)),
    (lambda: L.SeparableConv2D(4, 3, depth_multiplier=2), IMG),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same"), IMG),
    (lambda: L.Conv2DTranspose(4, 3, strides=2), IMG),
    (lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1), IMG),
    (lambda: L.Dense(7, activation="softmax"), IMG),
    (L.BatchNormalization, IMG),
    (lambda: L.BatchNormalization(center=False, scale=False), IMG),
    (L.LayerNormalization, IMG),
    (lambda: L.GroupNormalization(4), IMG),
    (L.UnitNormalization, IMG),
    (lambda: L.Activation("swish"), IMG),
    (lambda: L.ReLU(max_value=6.0), IMG),
    (L.LeakyReLU, IMG),
    (lambda: L.PReLU(shared_axes=[1, 2]), IMG),
    (L.PReLU, IMG),
    (L.ELU, IMG),
    (L.Softmax, IMG),
    (lambda: L.ZeroPadding2D(((1, 2), (3, 4))), IMG),
    (lambda: L.Cropping2D(1), IMG),
    (lambda: L.UpSampling2D(2, interpolation="bilinear"), IMG),
    (lambda: L.Reshape((-1, 8)), IMG),
    (lambda: L.Permute((3, 1, 2)), IMG),
    (lambda: L.Rescaling(1 / 255.0), IMG),
    (L.Normalization, IMG),
    (lambda: L.GlobalAveragePooling2D(keepdims=True), IMG),
    (L.GlobalMaxPooling2D, IMG),
    (lambda: L.MaxPooling2D(3, strides=2, padding="same"), IMG),
    (lambda: L.AveragePooling2D(3, strides=2), IMG),
    (lambda: L.SpatialDropout2D(0.1), IMG),
    (lambda: L.Dropout(0.5), IMG),
    (lambda: L.GaussianNoise(0.1), IMG),
    (L.Flatten, IMG),
    (L.Identity, IMG),
    (lambda: L.Conv1D(5, 3, padding="causal"), SEQ),
    (lambda: L.SeparableConv1D(5, 3, depth_multiplier=2), SEQ),
    (lambda: L.DepthwiseConv1D(3), SEQ),
    (lambda: L.Conv1DTranspose(3, 4, strides=3), SEQ),
    (L.MaxPooling1D, SEQ),
    (lambda: L.UpSampling1D(3), SEQ),
    (lambda: L.ZeroPadding1D(2), SEQ),
    (lambda: L.Cropping1D((1, 2)), SEQ),
    (L.GlobalAveragePooling1D, SEQ),
    (lambda: L.Dense(7), SEQ),
    (K.ReLU6, IMG),
    (lambda: K.DropPath(0.2), IMG),
    (lambda: K.ChannelShuffle(4), IMG),
    (lambda: K.ChannelSlice(2, 6), IMG),
    (lambda: K.GroupConv(16, groups=4), IMG),
    (lambda: K.DeformableConv2D(16, modulated=True), IMG),
    (lambda: K.DeformableConv2D(16, deformable_groups=2), IMG),
]


def _ids(case):
    layer = case[0]()
    return f"{type(layer).__name__}-{layer.name}"


@pytest.mark.parametrize("make, shape", LAYERS, ids=[_ids(c) for c in LAYERS])
def test_layer_table_matches_keras(make, shape):
    """Output shape and parameter count of every layer kind agree with Keras'."""
    x = keras.Input(shape)
    layer = make()
    y = layer(x)
    expansion = convert_layer(layer.name, type(layer).__name__, layer.get_config(), ["x"],
                              [tuple(shape)])
    out = next(n for n in expansion.nodes if n.name == expansion.output)
    assert out.output_shape == tuple(y.shape[1:])
    assert out.op != OpKind.OPAQUE
    assert sum(node_params(n) for n in expansion.nodes) == layer.count_params()


def test_separable_conv_is_two_nodes_with_the_layer_name():
    """SeparableConv2D → depthwise node + pointwise node named after the layer."""
    x = keras.Input(IMG)
    layer = L.SeparableConv2D(4, 3, activation="relu", name="sep")
    layer(x)
    expansion = convert_layer("sep", "SeparableConv2D", layer.get_config(), ["x"], [IMG])
    dw, pw = expansion.nodes
    assert (dw.name, dw.op, pw.name, pw.op) == ("sep/depthwise", OpKind.DEPTHWISE_CONV,
                                                 "sep", OpKind.CONV)
    assert dw.layer == pw.layer == "sep"
    assert pw.attrs["kernel"] == (1, 1) and pw.attrs["activation"] == "relu"
    assert not dw.attrs["use_bias"] and pw.attrs["use_bias"]


def test_output_size_formula_of_seed_003():
    """o = (n + 2p − k)/s + 1, with the padding as an explicit ZeroPadding layer."""
    for n, p, k, s in [(224, 3, 7, 2), (7, 0, 3, 1), (32, 1, 3, 2), (17, 0, 3, 2)]:
        x = keras.Input((n, n, 3))
        y = L.Conv2D(4, k, strides=s, padding="valid", name="c")(L.ZeroPadding2D(p)(x))
        graph = graph_from_keras(keras.Model(x, y))
        o = (n + 2 * p - k) // s + 1
        assert graph["c"].output_shape == (o, o, 4)
        assert "inferred_shape" not in graph["c"].attrs


def test_activation_spellings():
    """Keras 3 and Keras 2 activation spellings map to one name."""
    assert activation_name("linear") is None
    assert activation_name("swish") == activation_name("silu") == "silu"
    assert activation_name({"module": "keras.activations", "class_name": "function",
                            "config": "relu", "registered_name": "relu"}) == "relu"


def test_keras2_spellings():
    """tf_keras config spellings (alpha, list axis, batch_input_shape)."""
    op, attrs, shape = infer_layer("LeakyReLU", {"alpha": 0.2}, [(4, 4, 3)])
    assert (op, attrs["negative_slope"], shape) == (OpKind.ACTIVATION, 0.2, (4, 4, 3))
    op, attrs, shape = infer_layer("BatchNormalization", {"axis": [3]}, [(4, 4, 3)])
    assert (op, attrs["channels"], shape) == (OpKind.BATCHNORM, 3, (4, 4, 3))
    expansion = convert_layer("in", "InputLayer", {"batch_input_shape": [None, 8, 8, 3]}, [], [])
    assert expansion.nodes[0].output_shape == (8, 8, 3)


def test_bad_configs_raise_clear_errors():
    """Bad configs raise errors naming the layer and the field."""
    with pytest.raises(LayerConfigError, match="filters"):
        convert_layer("c", "Conv2D", {"filters": -1, "kernel_size": 3}, ["x"], [(8, 8, 3)])
    with pytest.raises(LayerConfigError, match="kernel_size"):
        convert_layer("c", "Conv2D", {"filters": 2, "kernel_size": "big"}, ["x"], [(8, 8, 3)])
    with pytest.raises(ShapeError, match="does not fit"):
        convert_layer("c", "Conv2D", {"filters": 2, "kernel_size": 9}, ["x"], [(8, 8, 3)])
    with pytest.raises(ShapeError):
        convert_layer("r", "Reshape", {"target_shape": [5, 5]}, ["x"], [(8, 8, 3)])


def test_unknown_class_is_opaque_with_the_observed_shape():
    """An unknown class is opaque; what follows it has unknown shapes."""
    expansion = convert_layer("l", "Lambda", {}, ["x"], [(4, 4, 3)], observed_shape=(4, 4, 6))
    (node,) = expansion.nodes
    assert node.op == OpKind.OPAQUE and node.output_shape == (4, 4, 6)
    downstream = convert_layer("c", "Conv2D", {"filters": 2, "kernel_size": 3}, ["l"], [None])
    assert downstream.nodes[0].op == OpKind.OPAQUE and downstream.nodes[0].output_shape is None


# --- the live frontend ----------------------------------------------------------------

def test_sequential_and_functional_give_the_same_graph():
    """A Sequential and its functional twin give the same nodes and params."""
    def stack():
        return [L.Conv2D(8, 3, name="c1"), L.BatchNormalization(name="bn"),
                L.ReLU(name="r"), L.GlobalAveragePooling2D(name="gap"), L.Dense(3, name="d")]
    seq = keras.Sequential([keras.Input((12, 12, 3))] + stack())
    x = keras.Input((12, 12, 3))
    y = x
    for layer in stack():
        y = layer(y)
    func = keras.Model(x, y)
    for model in (seq, func):
        graph = graph_from_keras(model)
        assert [n.name for n in graph][1:] == ["c1", "bn", "r", "gap", "d"]
        assert summarize(graph).params == model.count_params()


def test_unbuilt_sequential_and_subclassed_models_are_refused():
    """Models without a functional graph get a clear error."""
    with pytest.raises(UnsupportedModelError):
        graph_from_keras(keras.Sequential([L.Dense(3)]))

    class Sub(keras.Model):  # pylint: disable=abstract-method,too-many-ancestors
        """A subclassed model (issue 7 traces those)."""

        def __init__(self):
            super().__init__()
            self.d = L.Dense(3)

        def call(self, inputs):  # pylint: disable=arguments-differ
            return self.d(inputs)

    sub = Sub()
    sub(keras.ops.zeros((1, 4)))
    with pytest.raises(UnsupportedModelError, match="subclassed"):
        graph_from_keras(sub)


def test_nested_models_are_flattened_with_paths():
    """Nested models become ``outer/inner`` nodes wired to the outer graph."""
    inner_in = keras.Input((8, 8, 4))
    inner = keras.Model(inner_in, L.Conv2D(4, 3, padding="same", name="conv")(inner_in),
                        name="inner")
    seq = keras.Sequential([keras.Input((8, 8, 4)), L.ReLU(name="act")], name="seq")
    x = keras.Input((8, 8, 4), name="x")
    y = seq(inner(x))
    model = keras.Model(x, y, name="outer")
    graph = graph_from_keras(model)
    assert [n.name for n in graph] == ["x", "inner/conv", "seq/act"]
    assert graph["inner/conv"].inputs == ["x"] and graph["seq/act"].inputs == ["inner/conv"]
    assert graph.outputs == ["seq/act"]
    assert summarize(graph).params == model.count_params() == 4 * 9 * 4 + 4


def test_shared_layers_one_node_per_call_weights_once():
    """A shared layer: one node per call, weights counted once, MACs per call."""
    conv = L.Conv2D(4, 3, padding="same", name="shared")
    a, b = keras.Input((8, 8, 4), name="a"), keras.Input((8, 8, 4), name="b")
    out = L.Add(name="add")([conv(a), conv(b)])
    model = keras.Model([a, b], out)
    graph = graph_from_keras(model)
    assert graph.inputs == ["a", "b"]
    assert {"shared", "shared@1"} <= set(graph.nodes)
    assert graph["shared@1"].attrs["shares_weights_with"] == "shared"
    summary = summarize(graph)
    assert summary.params == model.count_params() == 4 * 9 * 4 + 4
    # the MACs count both calls: 2 calls × 8·8·4 outputs × 3·3·4 taps
    assert summary.macs == 2 * (8 * 8 * 4) * (3 * 3 * 4)


def test_shared_nested_model_counts_weights_once():
    """A nested model called twice: two node sets, weights counted once."""
    inner_in = keras.Input((6,))
    inner = keras.Model(inner_in, L.Dense(5, name="fc")(inner_in), name="tower")
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    model = keras.Model([a, b], [inner(a), inner(b)])
    graph = graph_from_keras(model)
    assert sorted(graph.outputs) == ["tower/fc", "tower@1/fc"]
    assert graph["tower@1/fc"].attrs["shares_weights_with"] == "tower/fc"
    assert summarize(graph).params == model.count_params() == 6 * 5 + 5


def test_several_inputs_and_outputs():
    """Multi-input, multi-output models keep all inputs and outputs."""
    a, b = keras.Input((8, 8, 3), name="img"), keras.Input((4,), name="meta")
    feat = L.GlobalAveragePooling2D(name="gap")(L.Conv2D(8, 3, name="conv")(a))
    joined = L.Concatenate(name="cat")([feat, b])
    model = keras.Model([a, b], [L.Dense(2, name="head1")(joined),
                                 L.Dense(3, name="head2")(joined)])
    graph = graph_from_keras(model)
    assert graph.inputs == ["img", "meta"] and graph.outputs == ["head1", "head2"]
    assert graph["cat"].output_shape == (12,)
    assert summarize(graph).params == model.count_params()


def test_keras_ops_and_untrusted_classes():
    """keras.ops calls map to IR ops; a user class named like a Keras one is opaque."""
    x = keras.Input((8, 8, 3), name="x")
    y = L.Conv2D(3, 3, padding="same", name="conv")(x)
    z = keras.ops.add(x, y)

    class Conv2D(L.Layer):  # pylint: disable=abstract-method,too-many-ancestors
        """A user class that reuses a Keras name: never trusted."""

        def call(self, inputs):  # pylint: disable=arguments-differ
            return inputs * 2.0

    out = Conv2D(name="fake")(z)
    graph = graph_from_keras(keras.Model(x, out))
    add = graph[graph["fake"].inputs[0]]
    assert add.op == OpKind.ADD and add.inputs == ["x", "conv"]
    assert graph["fake"].op == OpKind.OPAQUE and graph["fake"].output_shape == (8, 8, 3)


def test_lambda_is_opaque_and_listed_as_unknown_cost():
    """A Lambda is opaque and listed as unknown cost, never counted as 0."""
    x = keras.Input((8, 8, 3))
    y = L.Lambda(lambda t: t * 2.0, name="lam")(x)
    y = L.Conv2D(4, 3, name="conv")(y)
    graph = graph_from_keras(keras.Model(x, y))
    assert graph["lam"].op == OpKind.OPAQUE and graph["lam"].output_shape == (8, 8, 3)
    summary = summarize(graph)
    assert summary.unknown == ["lam"]
    assert summary.macs == 6 * 6 * 4 * 3 * 3 * 3   # the conv after it is still known


BLOCKS = [
    (lambda: K.ConvBNAct(16), (16, 16, 8)),
    (lambda: K.DilatedConv(16), (16, 16, 8)),
    (lambda: K.DenseBlock(3, growth_rate=8), (16, 16, 16)),
    (K.TransitionBlock, (16, 16, 16)),
    (lambda: K.FactorizedConv(16), (16, 16, 8)),
    (lambda: K.FactorizedConv(16, kernel_size=7, mode="asymmetric"), (16, 16, 8)),
    (lambda: K.Bottleneck1x1(32, expand=True), (16, 16, 64)),
    (lambda: K.ClassifierHead(10, variant="flatten_dense", hidden_units=(32,)), (4, 4, 8)),
    (K.InceptionModule, (35, 35, 192)),
    (lambda: K.DepthwiseSeparableConv(16), (16, 16, 8)),
    (lambda: K.InvertedResidual(8, use_se=True), (16, 16, 8)),
    (lambda: K.ResidualBlock(8), (16, 16, 32)),
    (lambda: K.ResidualBlock(8, variant="basic", version=2, strides=2), (16, 16, 32)),
    (lambda: K.ShuffleUnit(16), (16, 16, 16)),
    (lambda: K.ShuffleUnit(48, version=1, groups=3, strides=2), (16, 16, 24)),
    (K.SqueezeExcite, (16, 16, 32)),
]


@pytest.mark.parametrize("make, shape", BLOCKS, ids=[_ids(c) for c in BLOCKS])
def test_blocks_are_expanded_so_rules_see_inside(make, shape):
    """keras_cnnkit blocks expand into their spec's ops; params match Keras."""
    x = keras.Input(shape, name="x")
    block = make()
    y = block(x)
    model = keras.Model(x, y)
    graph = graph_from_keras(model)
    inner = [n for n in graph if n.op != OpKind.INPUT]
    op_names = {op.name for op in block.graph((None, *shape)).ops}
    assert {n.name for n in inner} == {f"{block.name}/{op}" for op in op_names}
    assert all(n.layer == n.name for n in inner)
    assert not [n.name for n in graph if "inferred_shape" in n.attrs]
    assert graph[graph.outputs[0]].output_shape == tuple(y.shape[1:])
    summary = summarize(graph)
    assert summary.params == model.count_params()
    assert not summary.param_mismatches and not summary.unknown


def test_densenet121_channel_growth_of_seed_002():
    """First dense block adds 6·32 channels to the stem's 64; the transition halves them."""
    model = keras.applications.DenseNet121(weights=None)
    graph = graph_from_keras(model)
    assert graph["conv2_block6_concat"].output_shape == (56, 56, 64 + 6 * 32)
    assert graph["pool2_pool"].output_shape == (28, 28, (64 + 6 * 32) // 2)
    assert not [n.name for n in graph if "inferred_shape" in n.attrs]


def test_input_shape_fills_unknown_spatial_dims():
    """Unknown spatial dims are analysed at 224 (as from a file), and the graph says so;
    input_shape chooses another size.  Both equal a model built at that size."""
    model = keras.applications.MobileNetV2(weights=None, input_shape=(None, None, 3),
                                           include_top=False)
    graph = graph_from_keras(model)
    reference = graph_from_keras(keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(224, 224, 3)))
    assert [n.output_shape for n in graph] == [n.output_shape for n in reference]
    assert not summarize(graph).unknown
    assert summarize(graph).macs == summarize(reference).macs
    (note,) = graph.notes
    assert "(None, None, 3) analysed at (224, 224, 3)" in note
    assert not reference.notes
    sized = graph_from_keras(model, input_shape=(160, 160))
    assert sized[sized.outputs[0]].output_shape == (5, 5, 1280)
    fixed = keras.applications.MobileNetV2(weights=None, include_top=False,
                                           input_shape=(96, 96, 3))
    with pytest.raises(ValueError, match="conflicts"):
        graph_from_keras(fixed, input_shape=(64, 64, 3))
    resized = propagate_shapes(reference, {reference.inputs[0]: (160, 160, 3)})
    assert resized["Conv1"].output_shape == (80, 80, 32)
    assert resized[resized.outputs[0]].output_shape == (5, 5, 1280)
