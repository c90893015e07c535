"""``mergeable-branches`` and its inference transform, ``rewrite.reparameterize``.

The models are RepVGG / ACNet / MobileOne training-form blocks built here from the
papers' descriptions, with random weights and random batch-norm statistics.  Exactness
is checked against the original model's own inference output (to 1e-5, as
``--fold-bn``); parameter and MAC counts are worked out by hand.
"""
import keras
import numpy as np
import pytest
from keras import layers as L

from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
from keras_cnnkit.lint.api import lint
from keras_cnnkit.lint.fix import fix_file
from keras_cnnkit.rewrite import reparameterize, rewrite_model


def randomise(model, rng):
    """Random BN statistics (mean, variance, γ, β) and biases: exactness must not rest
    on the initialisers' zeros and ones."""
    for layer in model._flatten_layers():  # pylint: disable=protected-access
        if isinstance(layer, L.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.standard_normal(n))
            layer.moving_variance.assign(rng.uniform(0.3, 3.0, n))
            if layer.scale:
                layer.gamma.assign(rng.standard_normal(n))
            if layer.center:
                layer.beta.assign(rng.standard_normal(n))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.standard_normal(layer.bias.shape))


def infer(model, data):
    """Inference output (batch norms use their moving statistics)."""
    return np.asarray(model(data, training=False))


def bn_conv(x, filters, kernel, strides=1, name="", depthwise=False):
    """A bias-free conv (or depthwise conv) and its batch norm: one training-form branch."""
    if depthwise:
        y = L.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False,
                              name=f"{name}_conv")(x)
    else:
        y = L.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                     name=f"{name}_conv")(x)
    return L.BatchNormalization(name=f"{name}_bn")(y)


def repvgg(shape=(12, 12, 16), stride=1, identity=True):
    """RepVGG block (Ding et al. 2021, Fig. 4): BN(3×3) + BN(1×1) [+ BN(x)], then ReLU."""
    x = keras.Input(shape, name="x")
    terms = [bn_conv(x, shape[-1], 3, stride, "dense"), bn_conv(x, shape[-1], 1, stride, "one")]
    if identity:
        terms.append(L.BatchNormalization(name="identity")(x))
    y = L.Add(name="sum")(terms)
    return keras.Model(x, L.ReLU(name="act")(y))


def acnet(shape=(12, 12, 16)):
    """ACNet's asymmetric convolution block: 3×3 + 1×3 + 3×1, each with its BN."""
    x = keras.Input(shape, name="x")
    terms = [bn_conv(x, 24, k, 1, name) for k, name in
             (((3, 3), "square"), ((1, 3), "hor"), ((3, 1), "ver"))]
    return keras.Model(x, L.ReLU(name="act")(L.Add(name="sum")(terms)))


def mobileone_depthwise(shape=(12, 12, 16), k=3):
    """MobileOne's depthwise block (Vasu et al. 2023, Fig. 3): k over-parameterised
    depthwise 3×3 branches, a depthwise 1×1 "scale" branch and a BN identity."""
    x = keras.Input(shape, name="x")
    terms = [bn_conv(x, None, 3, 1, f"kxk{i}", depthwise=True) for i in range(k)]
    terms.append(bn_conv(x, None, 1, 1, "scale", depthwise=True))
    terms.append(L.BatchNormalization(name="identity")(x))
    return keras.Model(x, L.ReLU(name="act")(L.Add(name="sum")(terms)))


CASES = {
    "repvgg": repvgg,
    "repvgg-stride2": lambda: repvgg(stride=2, identity=False),
    "repvgg-stride2-odd": lambda: repvgg(shape=(13, 11, 16), stride=2, identity=False),
    "acnet": acnet,
    "mobileone-depthwise": mobileone_depthwise,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reparameterize_is_exact_in_inference(name, rng):
    """The merged model computes the training-form block's inference output to 1e-5."""
    model = CASES[name]()
    randomise(model, rng)
    result = reparameterize(model)
    assert len(result.applied) == 1 and result.applied[0].preserves_function
    new = result.model
    kinds = {type(l).__name__ for l in new.layers}
    assert "BatchNormalization" not in kinds and "Add" not in kinds
    data = rng.standard_normal((2, *model.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(infer(new, data), infer(model, data), atol=1e-5, rtol=1e-5)


def test_repvgg_finding_costs_and_merged_layer():
    """RepVGG 16→16 on 12×12: 3×3 (2,304) + 1×1 (256) + three BNs (3·64) → one 3×3 with
    a bias (2,320); MACs 144·(2,304 + 256) → 144·2,304."""
    model = repvgg()
    (f,) = lint(model, select=["mergeable-branches"]).findings
    assert f.layer == "sum" and f.code == "CNK112" and not f.needs_retraining
    assert (f.params_before, f.params_after) == (2_304 + 256 + 3 * 4 * 16, 9 * 16 * 16 + 16)
    assert (f.macs_before, f.macs_after) == (144 * (2_304 + 256), 144 * 2_304)
    assert f.measurements == {"branches": 3, "kernel": [3, 3]}
    assert "3 linear branches of x summed (3×3 + 1×1 + BN)" in f.message
    new = reparameterize(model).model
    conv = next(l for l in new.layers if isinstance(l, L.Conv2D))
    assert conv.kernel_size == (3, 3) and conv.use_bias and conv.padding == "same"
    assert new.count_params() == f.params_after


def test_fix_applies_the_merge_exactly(tmp_path, rng):
    """``cnnkit-lint --fix`` applies the merge with computed weights (exact)."""
    model = acnet()
    randomise(model, rng)
    src, out = tmp_path / "in.keras", tmp_path / "out.keras"
    model.save(src)
    result = fix_file(src, out, select=["mergeable-branches"])
    assert [f.symbol for f in result.applied] == ["mergeable-branches"]
    assert not result.needs_retraining
    fixed = keras.models.load_model(out, compile=False)
    data = rng.standard_normal((2, 12, 12, 16)).astype("float32")
    np.testing.assert_allclose(infer(fixed, data), infer(model, data), atol=1e-5, rtol=1e-5)
    # 3×3 16→24 with a bias: ACNet's 1×3 and 3×1 fit inside it
    assert fixed.count_params() == 9 * 16 * 24 + 24


def test_rewrite_model_merges_with_other_fixes(rng):
    """The merge through ``rewrite_model`` (the Python twin of ``--fix``) is exact too."""
    model = mobileone_depthwise()
    randomise(model, rng)
    report = lint(model, select=["mergeable-branches"])
    new = rewrite_model(model, report.findings, graph=report.graph).model
    data = rng.standard_normal((2, 12, 12, 16)).astype("float32")
    np.testing.assert_allclose(infer(new, data), infer(model, data), atol=1e-5, rtol=1e-5)


def test_no_merge_across_nonlinear_or_foreign_branches():
    """A residual block (a ReLU inside the branch) and branches of different tensors:
    nothing to merge."""
    x = keras.Input((8, 8, 16))
    y = L.ReLU()(bn_conv(x, 16, 3, name="a"))
    residual = keras.Model(x, L.Add()([bn_conv(y, 16, 3, name="b"), x]))
    x2 = keras.Input((8, 8, 16))
    z = L.Conv2D(16, 1, name="pre")(x2)
    foreign = keras.Model(x2, L.Add()([bn_conv(x2, 16, 3, name="c"),
                                       bn_conv(z, 16, 1, name="d")]))
    for model in (residual, foreign):
        assert not lint(model, select=["mergeable-branches"]).findings
    assert reparameterize(residual, graph_from_keras(residual)).applied == []
