"""Rewrite: IR → Keras codegen, replacements applied to live models, exact weight carry.

Expected values are worked out here from the layers' definitions (parameter counts by
hand, outputs of the original model), never read back from the code under test.
"""
import keras
import numpy as np
import pytest

from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.keras_layers import convert_layer
from keras_cnnkit.lint.findings import Finding, Replacement, Severity
from keras_cnnkit.lint.sites import rule_findings
from keras_cnnkit.rewrite import (RewriteError, UnsupportedNodeError, apply_findings,
                                  apply_to_graph, fold_batchnorm, model_from_graph,
                                  node_layers, replacement_models, rewrite_model,
                                  select_findings)

L = keras.layers


def infer(model, data):
    """``model(data)`` in inference, as numpy (any backend)."""
    return keras.ops.convert_to_numpy(model(data, training=False))

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.backend_agnostic]


def randomise_batchnorms(model, rng):
    """Give every BatchNormalization non-trivial statistics and affine parameters."""
    for layer in model._flatten_layers():  # pylint: disable=protected-access
        if isinstance(layer, L.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.standard_normal(n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            if layer.scale:
                layer.gamma.assign(rng.standard_normal(n))
            if layer.center:
                layer.beta.assign(rng.standard_normal(n))
        elif getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.standard_normal(layer.bias.shape))


def conv_node(name, inputs, in_shape, filters, kernel=3, use_bias=True, activation=None,
              strides=1):
    """A 2D 'same' conv IR node, shapes worked out by hand."""
    h, w, c = in_shape
    out = (-(-h // strides), -(-w // strides), filters)
    return Node(name, OpKind.CONV, [inputs], [in_shape], out,
                {"rank": 2, "kernel": (kernel, kernel), "strides": (strides, strides),
                 "dilation": (1, 1), "padding": "same", "groups": 1, "in_channels": c,
                 "filters": filters, "use_bias": use_bias, "activation": activation})


def finding(symbol, rep, **costs):
    """A hand-made finding carrying ``rep``."""
    return Finding(code="CNK999", symbol=symbol, severity=Severity.WARNING,
                   layer=rep.removed[0], message=symbol, replacement=rep, **costs)


# --- codegen -----------------------------------------------------------------------

ROUND_TRIP = [
    ((8, 8, 4), lambda: L.Conv2D(6, 3, padding="same", activation="relu")),
    ((9, 9, 4), lambda: L.Conv2D(8, (3, 1), strides=2, groups=2, use_bias=False)),
    ((8, 8, 4), lambda: L.DepthwiseConv2D(3, depth_multiplier=2)),
    ((10, 4), lambda: L.Conv1D(5, 3, dilation_rate=2)),
    ((6, 6, 4), lambda: L.Conv2DTranspose(3, 3, strides=2)),
    ((7,), lambda: L.Dense(3, use_bias=False)),
    ((8, 8, 4), lambda: L.BatchNormalization(center=False)),
    ((8, 8, 4), lambda: L.ReLU(6.0)),
    ((8, 8, 4), lambda: L.LeakyReLU(0.1)),
    ((8, 8, 4), lambda: L.Activation("sigmoid")),
    ((8, 8, 4), lambda: L.MaxPooling2D(3, 2, padding="same")),
    ((8, 8, 4), lambda: L.AveragePooling2D(2)),
    ((8, 8, 4), lambda: L.GlobalAveragePooling2D(keepdims=True)),
    ((8, 8, 4), L.Flatten),
    ((8, 8, 4), lambda: L.Reshape((64, 4))),
    ((8, 8, 4), lambda: L.ZeroPadding2D(((1, 0), (2, 1)))),
    ((8, 8, 4), lambda: L.Cropping2D(1)),
    ((8, 8, 4), lambda: L.UpSampling2D(2)),
    ((8, 8, 4), L.LayerNormalization),
    ((8, 8, 4), lambda: L.GroupNormalization(2)),
    ((8, 8, 4), lambda: L.Permute((3, 1, 2))),
    ((8, 8, 4), lambda: L.PReLU(shared_axes=[1, 2])),
]


@pytest.mark.parametrize("shape,make", ROUND_TRIP,
                         ids=[f"{i}" for i in range(len(ROUND_TRIP))])
def test_codegen_round_trip_computes_the_same_function(shape, make, rng):
    """Keras layer → IR node (the frontend's table) → Keras layer: same function."""
    layer = make()
    x = keras.Input(shape)
    layer(x)
    node = convert_layer(layer.name, type(layer).__name__, layer.get_config(), ["in"],
                         [shape]).nodes[-1]
    new = node_layers(node)
    y = x
    for new_layer in new:
        y = new_layer(y)
    rebuilt = keras.Model(x, y)
    assert sum(l.count_params() for l in new) == layer.count_params()
    new[-1].set_weights(layer.get_weights())
    data = rng.standard_normal((2,) + shape).astype("float32")
    np.testing.assert_allclose(infer(rebuilt, data), infer(layer, data), atol=1e-5)


@pytest.mark.parametrize("cls", ["Add", "Subtract", "Multiply", "Average", "Maximum",
                                 "Concatenate"])
def test_codegen_merges(cls, rng):
    a, b = rng.standard_normal((2, 2, 4, 4, 3)).astype("float32")
    layer = getattr(L, cls)()
    node = convert_layer("m", cls, layer.get_config(), ["a", "b"], [(4, 4, 3)] * 2).nodes[-1]
    new = node_layers(node)[0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(new([a, b])),
                               keras.ops.convert_to_numpy(layer([a, b])), atol=1e-6)


def test_codegen_explicit_pads_become_zero_padding():
    """ONNX-style asymmetric pads: ZeroPadding2D then a 'valid' conv."""
    node = conv_node("c", "x", (8, 8, 4), 6, kernel=3, strides=2)
    node.attrs["padding"] = ((0, 1), (0, 1))
    node.output_shape = (4, 4, 6)
    layers = node_layers(node)
    assert [type(l).__name__ for l in layers] == ["ZeroPadding2D", "Conv2D"]
    assert layers[-1].padding == "valid" and layers[-1].name == "c"
    x = keras.Input((8, 8, 4))
    y = layers[1](layers[0](x))
    assert tuple(y.shape[1:]) == (4, 4, 6)
    # symmetric pads equal to 'same' (stride 1, odd kernel) need no padding layer
    same = conv_node("s", "x", (8, 8, 4), 6)
    same.attrs["padding"] = (1, 1, 1, 1)
    assert [type(l).__name__ for l in node_layers(same)] == ["Conv2D"]
    assert node_layers(same)[0].padding == "same"


def test_codegen_refuses_opaque_nodes():
    node = Node("lam", OpKind.OPAQUE, ["x"], [(4,)], (4,), {"class_name": "Lambda"},
                source_class="Lambda")
    with pytest.raises(UnsupportedNodeError, match="lam"):
        node_layers(node)


# --- IR-level application --------------------------------------------------------------


def chain_graph():
    """x → conv5 (5×5, 16→16) → relu → gap, by hand."""
    g = Graph(name="g")
    g.add(Node("x", OpKind.INPUT, output_shape=(16, 16, 16)))
    g.add(conv_node("conv5", "x", (16, 16, 16), 16, kernel=5))
    g.add(Node("relu", OpKind.ACTIVATION, ["conv5"], [(16, 16, 16)], (16, 16, 16),
               {"activation": "relu"}))
    g.add(Node("gap", OpKind.GLOBAL_POOL, ["relu"], [(16, 16, 16)], (16,),
               {"pool_type": "avg", "rank": 2}))
    g.inputs, g.outputs = ["x"], ["gap"]
    return g


def stacked_3x3(name="conv5", src="x", shape=(16, 16, 16)):
    """The large-kernel replacement of a 5×5: two 3×3 convs."""
    first = conv_node(f"{name}_a", src, shape, shape[-1], activation="relu")
    second = conv_node(f"{name}_b", f"{name}_a", shape, shape[-1])
    return Replacement([name], [first, second], f"{name}_b")


def test_apply_to_graph_rewires_consumers():
    g = chain_graph()
    out = apply_to_graph(g, [finding("large-kernel", stacked_3x3())])
    assert list(out.nodes) == ["x", "conv5_a", "conv5_b", "relu", "gap"]
    assert out["relu"].inputs == ["conv5_b"]
    assert g["relu"].inputs == ["conv5"]  # the input graph is untouched
    model = model_from_graph(out)
    # 2 × (3·3·16·16 + 16) weights
    assert model.count_params() == 2 * (9 * 16 * 16 + 16)


def test_replacement_models_are_built_at_real_shapes():
    g = chain_graph()
    before, after = replacement_models(g, stacked_3x3())
    assert tuple(before.inputs[0].shape) == (None, 16, 16, 16)
    assert before.count_params() == 25 * 16 * 16 + 16
    assert after.count_params() == 2 * (9 * 16 * 16 + 16)
    assert tuple(after.outputs[0].shape) == (None, 16, 16, 16)


def test_select_findings_resolves_conflicts_by_saving():
    g = chain_graph()
    small = finding("small", stacked_3x3(), flops_before=100, flops_after=90)
    big = finding("big", stacked_3x3(), flops_before=100, flops_after=10)
    advisory = Finding("CNK1", "advice", Severity.INFO, "relu", "m")
    chosen, skipped = select_findings([small, big, advisory], graph=g)
    assert chosen == [big]
    reasons = {s.finding.symbol: s.reason for s in skipped}
    assert "overlaps" in reasons["small"] and reasons["advice"] == "no automatic fix"
    chosen, _ = select_findings([small, big], select=["small"])
    assert chosen == [small]


def test_select_findings_rejects_dangling_intermediates():
    g = chain_graph()
    g.add(Node("extra", OpKind.ACTIVATION, ["conv5"], [(16, 16, 16)], (16, 16, 16),
               {"activation": "sigmoid"}))
    rep = Replacement(["conv5", "relu"], [conv_node("c", "x", (16, 16, 16), 16,
                                                    activation="relu")], "c")
    chosen, skipped = select_findings([finding("x", rep)], graph=g)
    assert not chosen and "also read by extra" in skipped[0].reason


# --- live models: exact transforms -------------------------------------------------------


def bias_bn_model():
    """img → conv (bias) → bn → relu → conv5 → gap → fc."""
    x = keras.Input((16, 16, 3), name="img")
    y = L.Conv2D(8, 3, padding="same", name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2D(8, 5, padding="same", name="conv5")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return keras.Model(x, L.Dense(4, name="fc")(y), name="m")


def bias_bn_replacement():
    conv = conv_node("conv", "img", (16, 16, 3), 8, use_bias=False)
    bn = Node("bn", OpKind.BATCHNORM, ["conv"], [(16, 16, 8)], (16, 16, 8),
              {"axis": 2, "channels": 8})
    return Replacement(["conv", "bn"], [conv, bn], "bn", preserves_function=True)


def test_bias_before_batchnorm_fold_is_exact(rng):
    model = bias_bn_model()
    randomise_batchnorms(model, rng)
    result = rewrite_model(model, [finding("bias-before-batchnorm", bias_bn_replacement())])
    new = result.model
    assert not result.needs_retraining
    assert new.count_params() == model.count_params() - 8   # the conv's 8 biases
    assert not new.get_layer("conv").use_bias
    data = rng.standard_normal((4, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(infer(new, data), infer(model, data),
                               atol=1e-5)
    # untouched layers keep their weights
    for name in ("conv5", "fc"):
        for a, b in zip(new.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert [l.name for l in new.layers] == [l.name for l in model.layers]


def test_architectural_fix_copies_untouched_weights_and_needs_retraining(rng):
    model = bias_bn_model()
    randomise_batchnorms(model, rng)
    rep = stacked_3x3("conv5", "relu", (16, 16, 8))
    result = rewrite_model(model, [finding("large-kernel", rep)])
    new = result.model
    assert result.needs_retraining
    names = [l.name for l in new.layers]
    assert names == ["img", "conv", "bn", "relu", "conv5_a", "conv5_b", "gap", "fc"]
    expected = model.count_params() - (25 * 8 * 8 + 8) + 2 * (9 * 8 * 8 + 8)
    assert new.count_params() == expected
    for name in ("conv", "bn", "fc"):
        for a, b in zip(new.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    # the original model is not modified
    assert "conv5" in [l.name for l in model.layers]


def test_fold_batchnorm_is_exact_through_blocks_and_nested_models(rng):
    from keras_cnnkit.layers import DepthwiseSeparableConv
    inner_in = keras.Input((8, 8, 16))
    t = L.Conv2D(8, 3, padding="same", use_bias=False, name="iconv")(inner_in)
    inner = keras.Model(inner_in, L.BatchNormalization(name="ibn")(t), name="inner")
    x = keras.Input((8, 8, 3), name="img")
    y = DepthwiseSeparableConv(8, name="dws")(x)
    y = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(y)
    y = L.BatchNormalization(name="dwbn")(y)
    y = inner(y)
    y = L.Flatten()(y)
    y = L.Dense(5, name="fc")(y)
    model = keras.Model(x, L.BatchNormalization(name="fcbn")(y))
    randomise_batchnorms(model, rng)
    graph = graph_from_keras(model)
    bns = [n for n in graph if n.op == OpKind.BATCHNORM]
    result = fold_batchnorm(model, graph)
    new = result.model
    assert not any(isinstance(l, L.BatchNormalization) for l in new._flatten_layers())  # pylint: disable=protected-access
    # each BN drops 4·C weights; a bias-free conv gains C biases
    gained = sum(n.attr("channels") for n in bns
                 if not graph[n.inputs[0]].attr("use_bias"))
    lost = sum(4 * n.attr("channels") for n in bns)
    assert new.count_params() == model.count_params() - lost + gained
    data = rng.standard_normal((3, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(infer(new, data), infer(model, data),
                               atol=1e-5, rtol=1e-5)


def test_fold_batchnorm_keeps_sequential_and_skips_activated_convs(rng):
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, name="c"),
                              L.BatchNormalization(name="b"), L.ReLU(name="r"),
                              L.Conv2D(4, 3, activation="relu", name="c2"),
                              L.BatchNormalization(name="b2")])
    randomise_batchnorms(model, rng)
    new = fold_batchnorm(model).model
    assert isinstance(new, keras.Sequential)
    assert [l.name for l in new.layers] == ["c", "r", "c2", "b2"]
    data = rng.standard_normal((2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(infer(new, data), infer(model, data), atol=1e-5)


def test_replacement_of_missing_node_is_skipped_or_refused():
    model = bias_bn_model()
    rep = stacked_3x3("nope", "relu", (16, 16, 8))
    result = rewrite_model(model, [finding("large-kernel", rep)])
    assert not result.applied
    assert "not in the graph: nope" in result.skipped[0].reason
    # without a graph to check against, the rebuild itself refuses
    graph = graph_from_keras(model)
    graph.add(Node("nope", OpKind.ACTIVATION, ["relu"], [(16, 16, 8)], (16, 16, 8),
                   {"activation": "relu"}))
    with pytest.raises(RewriteError, match="no node named 'nope'"):
        apply_findings(model, [finding("large-kernel", rep)], graph=graph)


def test_subclassed_model_is_refused():
    class Sub(keras.Model):  # pylint: disable=abstract-method,too-many-ancestors
        """A subclassed model has no graph to rewrite."""

        def call(self, inputs):  # pylint: disable=arguments-differ
            return inputs

    with pytest.raises(RewriteError, match="cannot be rewritten"):
        apply_findings(Sub(), [])


@pytest.mark.parametrize("name", ["VGG16", "ResNet50", "InceptionV3"])
def test_every_fix_applied_to_keras_applications(name, rng):
    """All compatible fixes of a keras.applications model at once: the rebuilt model's
    parameter count is the report's estimate, and it runs with the original's shapes."""
    model = getattr(keras.applications, name)(weights=None)
    from keras_cnnkit.lint.api import lint
    report = lint(model)
    result = rewrite_model(model, report.findings, graph=report.graph)
    assert result.applied and all("overlaps" in s.reason or s.reason == "no automatic fix"
                                  or "saves parameters, not time" in s.reason
                                  or s.merged_into is not None for s in result.skipped)
    expected = model.count_params() + sum(f.params_after - f.params_before
                                          for f in result.applied_findings)
    assert result.model.count_params() == expected < model.count_params()
    data = rng.standard_normal((1,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    assert tuple(result.model(data).shape) == (1, 1000)


@pytest.mark.parametrize("name", ["MobileNetV2", "EfficientNetB0"])
def test_model_from_graph_rebuilds_keras_applications(name, rng):
    """IR → Keras for a whole model (what the whole-model benchmark times): the same
    parameter count and output shape as the original, and it runs."""
    model = getattr(keras.applications, name)(weights=None)
    rebuilt = model_from_graph(graph_from_keras(model))
    assert rebuilt.count_params() == model.count_params()
    data = rng.standard_normal((1,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    assert tuple(rebuilt(data).shape) == (1, 1000)


def test_shared_layers_are_left_alone(rng):
    """A conv called twice (shared weights): neither folded nor replaced."""
    conv = L.Conv2D(4, 3, padding="same", name="shared")
    x = keras.Input((6, 6, 4))
    a = L.BatchNormalization(name="bn_a")(conv(x))
    b = L.BatchNormalization(name="bn_b")(conv(a))
    model = keras.Model(x, b)
    randomise_batchnorms(model, rng)
    graph = graph_from_keras(model)
    assert [n.name for n in graph if n.op == OpKind.CONV] == ["shared", "shared@1"]
    folded = fold_batchnorm(model, graph)
    assert not folded.applied
    assert folded.model.count_params() == model.count_params()   # still one shared conv
    rep = Replacement(["shared"], [conv_node("shared_fixed", graph.inputs[0], (6, 6, 4), 4)],
                      "shared_fixed")
    result = rewrite_model(model, [finding("x", rep)], graph=graph)
    assert not result.applied and "shared layer" in result.skipped[0].reason
    data = rng.standard_normal((1, 6, 6, 4)).astype("float32")
    np.testing.assert_allclose(infer(result.model, data), infer(model, data), atol=1e-6)


def test_bias_drop_is_merged_into_the_architectural_fix_of_the_same_conv():
    """A 5×5 conv with a bias feeding a batch norm: large-kernel and bias-before-batchnorm
    both want the conv.  The bias drop joins the large-kernel fix (its second 3×3 conv has
    no bias), so the fixed model lints clean of both; the report's findings are untouched."""
    from keras_cnnkit.lint.api import lint
    x = keras.Input((16, 16, 16))
    y = L.Conv2D(16, 5, padding="same", name="conv5")(x)
    y = L.BatchNormalization(name="bn")(y)
    model = keras.Model(x, L.ReLU(name="relu")(y))
    report = lint(model, select=["large-kernel", "bias-before-batchnorm"])
    (site,) = report.findings   # one site: the bias drop is an alternative
    assert sorted(f.symbol for f in rule_findings([site])) == ["bias-before-batchnorm",
                                                               "large-kernel"]
    chosen, skipped = select_findings(report.findings, graph=report.graph)
    assert [f.symbol for f in chosen] == ["large-kernel"]
    (skip,) = skipped
    assert skip.finding.symbol == "bias-before-batchnorm" and skip.merged_into is chosen[0]
    # by hand: two 3×3 16→16 convs, the second without its 16 biases
    assert chosen[0].params_after == (9 * 16 * 16 + 16) + 9 * 16 * 16
    original = next(f for f in report.rule_findings if f.symbol == "large-kernel")
    assert original.params_after == 2 * (9 * 16 * 16 + 16)   # the report is not changed
    fixed = rewrite_model(model, report.findings, graph=report.graph).model
    assert fixed.count_params() == (9 * 16 * 16 + 16) + 9 * 16 * 16 + 4 * 16
    again = lint(fixed, select=["large-kernel", "bias-before-batchnorm"])
    assert not again.findings
