"""``fix_file`` with the real rules: one pattern model per fixable rule.

For each: the fixed file loads, has the same inputs and outputs, trains one step,
re-linted shows no finding of that rule, and its parameter count equals both the
report's estimate (model params − Σ params_before + Σ params_after) and a count worked
out by hand below.  Function-preserving fixes give the same outputs to 1e-5.
"""
import keras
import numpy as np
import pytest

from keras_cnnkit.lint.api import lint
from keras_cnnkit.lint.fix import fix_file

L = keras.layers


def infer(model, data):
    """``model(data)`` in inference, as numpy (any backend)."""
    return keras.ops.convert_to_numpy(model(data, training=False))

pytestmark = pytest.mark.backend_agnostic


def _gap(x, y):
    return keras.Model(x, L.GlobalAveragePooling2D(name="gap")(y))


def large_kernel():
    x = keras.Input((12, 12, 64))
    return _gap(x, L.Conv2D(64, 5, padding="same", name="c5")(x))


def asymmetric():
    x = keras.Input((17, 17, 64))
    return _gap(x, L.Conv2D(64, 7, padding="same", name="c7")(x))


def bottleneck():
    x = keras.Input((8, 8, 256))
    return _gap(x, L.Conv2D(256, 3, padding="same", name="c3")(x))


def separable():
    x = keras.Input((16, 16, 32))
    return _gap(x, L.Conv2D(256, 3, padding="same", name="wide")(x))


def gap_head():
    x = keras.Input((7, 7, 64))
    y = L.Flatten(name="flat")(x)
    y = L.Dense(128, activation="relu", name="fc1")(y)
    return keras.Model(x, L.Dense(10, name="fc2")(y))


def linear_projection():
    x = keras.Input((8, 8, 64))
    y = L.Conv2D(256, 1, activation="relu", name="expand")(x)
    y = L.Conv2D(64, 1, name="proj")(y)
    y = L.BatchNormalization(name="pbn")(y)
    y = L.ReLU(name="prelu")(y)
    return keras.Model(x, L.Add(name="add")([x, y]))


def shuffle():
    x = keras.Input((8, 8, 64))
    y = L.Conv2D(64, 1, groups=4, name="g1")(x)
    y = L.ReLU(name="r")(y)
    return keras.Model(x, L.Conv2D(64, 1, groups=4, name="g2")(y))


def bias_bn():
    x = keras.Input((10, 10, 8))
    y = L.Conv2D(16, 3, name="cb")(x)
    y = L.BatchNormalization(name="bn")(y)
    return keras.Model(x, L.ReLU(name="r")(y))


def dropout_bn():
    x = keras.Input((32,))
    y = L.Dense(16, name="d")(x)
    y = L.Dropout(0.5, name="drop")(y)
    return keras.Model(x, L.BatchNormalization(name="bn")(y))


#: symbol → (pattern model, parameter count after the fix, worked out by hand)
CASES = {
    # 64→64 5×5 (102,464) → two 3×3: 2·(9·64·64 + 64)
    "large-kernel": (large_kernel, 2 * (9 * 64 * 64 + 64)),
    # 7×7 → 1×7 + 7×1, 64→64 each: 2·(7·64·64 + 64)
    "asymmetric-factorization": (asymmetric, 2 * (7 * 64 * 64 + 64)),
    # 256→256 3×3 → 1×1 to 64, 3×3 at 64, 1×1 to 256 (biases kept)
    "missing-bottleneck": (bottleneck, (256 * 64 + 64) + (9 * 64 * 64 + 64) + (64 * 256 + 256)),
    # 32→256 3×3 → depthwise 3×3 (288 + 32 bias) + pointwise 32→256 (8,192 + 256)
    "depthwise-separable-candidate": (separable, 320 + 8448),
    # Flatten(7·7·64)→128 → GAP, Dense 64→128, then fc2 128→10
    "flatten-dense-head": (gap_head, (64 * 128 + 128) + (128 * 10 + 10)),
    # dropping the ReLU changes no parameter count
    "relu-after-projection": (linear_projection,
                              (64 * 256 + 256) + (256 * 64 + 64) + 4 * 64),
    # ChannelShuffle has no weights: 2 × (64/4·64 + 64)
    "group-conv-without-shuffle": (shuffle, 2 * (16 * 64 + 64)),
    # the conv's 16 biases go: 3·3·8·16 + 4·16
    "bias-before-batchnorm": (bias_bn, 9 * 8 * 16 + 4 * 16),
    # moving the dropout after the BN keeps the counts: 32·16 + 16 + 4·16
    "dropout-before-batchnorm": (dropout_bn, 32 * 16 + 16 + 4 * 16),
}

EXACT = {"bias-before-batchnorm", "dropout-before-batchnorm"}


def randomise(model, rng):
    """Non-trivial BN statistics and biases, so that exactness is really tested."""
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.standard_normal(n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n))
            layer.gamma.assign(rng.standard_normal(n))
            layer.beta.assign(rng.standard_normal(n))
        elif getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.standard_normal(layer.bias.shape))


@pytest.mark.parametrize("symbol", sorted(CASES))
def test_fix_per_rule(symbol, tmp_path, rng):
    make, params_by_hand = CASES[symbol]
    model = make()
    randomise(model, rng)
    src, out = tmp_path / "in.keras", tmp_path / "out.keras"
    model.save(src)
    report = lint(keras.models.load_model(src, compile=False), min_impact=0)
    targets = report.by_rule(symbol)
    assert targets, f"the pattern model should trigger {symbol}"
    estimate = report.summary.params + sum(f.params_after - f.params_before for f in targets)

    result = fix_file(src, out, select=[symbol], carry_weights=False)   # the rules' fragments

    assert [f.symbol for f in result.applied] == [symbol] * len(targets)
    assert bool(result.needs_retraining) == (symbol not in EXACT)
    fixed = keras.models.load_model(out, compile=False)
    assert fixed.count_params() == estimate == params_by_hand == result.params_after
    assert [t.shape for t in fixed.inputs] == [t.shape for t in model.inputs]
    assert [t.shape for t in fixed.outputs] == [t.shape for t in model.outputs]
    assert not lint(fixed, min_impact=0).by_rule(symbol) and not result.remaining
    data = rng.standard_normal((4,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    if symbol in EXACT:
        np.testing.assert_allclose(infer(fixed, data), infer(model, data),
                                   atol=1e-5)
    fixed.compile(optimizer="sgd", loss="mse")
    target = rng.standard_normal((4,) + tuple(fixed.outputs[0].shape[1:]))
    loss = fixed.train_on_batch(data, target)
    assert np.isfinite(loss)
    # With the weights carried (the default): linear, bias-free intermediate layers, the
    # costs recomputed for them; exact fixes still exact.
    carried = fix_file(src, tmp_path / "carried.keras", select=[symbol])
    assert carried.params_after == carried.expected_params_after <= result.params_after
    for fix in carried.to_dict()["applied"]:
        assert fix["weights"] != "reinitialised" and fix["fidelity"] is not None
        if symbol in EXACT:
            assert fix["weights"] == "exact" and fix["fidelity"]["subgraph_error"] <= 1e-5


def test_report_apply_rebuilds_a_live_model(rng):
    """``apply_report``: the Python twin of ``--fix``, on a live model."""
    from keras_cnnkit.rewrite import apply_report
    model = gap_head()
    report = lint(model)
    fixed = apply_report(model, report, select=["flatten-dense-head"])
    assert fixed.count_params() == (64 * 128 + 128) + (128 * 10 + 10)
    assert model.count_params() == (7 * 7 * 64 * 128 + 128) + (128 * 10 + 10)  # untouched
    np.testing.assert_array_equal(fixed.get_layer("fc2").get_weights()[0],
                                  model.get_layer("fc2").get_weights()[0])
    data = rng.standard_normal((2, 7, 7, 64)).astype("float32")
    assert fixed(data).shape == (2, 10)


def test_fix_inside_a_keras_cnnkit_block_is_exact(tmp_path, rng):
    """A bias before the BN inside a ConvBNAct block: the block is flattened into plain
    layers (``cba_conv``, ``cba_bn``...), the bias folded, the outputs unchanged."""
    from keras_cnnkit.layers import ConvBNAct
    x = keras.Input((8, 8, 3))
    y = ConvBNAct(16, 3, use_bias=True, name="cba")(x)
    model = keras.Model(x, L.GlobalAveragePooling2D(name="gap")(y))
    block = model.get_layer("cba")
    inner = {type(l).__name__: l for l in block._flatten_layers(include_self=False)}  # pylint: disable=protected-access
    inner["Conv2D"].bias.assign(rng.standard_normal(16))
    inner["BatchNormalization"].moving_mean.assign(rng.standard_normal(16))
    src, out = tmp_path / "in.keras", tmp_path / "out.keras"
    model.save(src)
    result = fix_file(src, out, select=["bias-before-batchnorm"])
    assert [f.layer for f in result.applied] == ["cba/conv"]
    fixed = keras.models.load_model(out, compile=False)
    assert fixed.count_params() == model.count_params() - 16
    data = rng.standard_normal((2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(infer(fixed, data), infer(model, data),
                               atol=1e-5)


def test_fix_on_a_separable_conv_splits_it_exactly(tmp_path, rng):
    """SeparableConv2D(use_bias=True) → BN: the IR's pointwise node loses its bias, so
    the layer is split into DepthwiseConv2D + 1×1 Conv2D with its weights."""
    x = keras.Input((8, 8, 4))
    y = L.SeparableConv2D(12, 3, padding="same", name="sep")(x)
    y = L.BatchNormalization(name="bn")(y)
    model = keras.Model(x, L.ReLU(name="r")(y))
    randomise(model, rng)
    src, out = tmp_path / "in.keras", tmp_path / "out.keras"
    model.save(src)
    result = fix_file(src, out, select=["bias-before-batchnorm"])
    assert [f.layer for f in result.applied] == ["sep"]
    fixed = keras.models.load_model(out, compile=False)
    assert [type(l).__name__ for l in fixed.layers[1:3]] == ["DepthwiseConv2D", "Conv2D"]
    assert fixed.count_params() == model.count_params() - 12
    data = rng.standard_normal((2, 8, 8, 4)).astype("float32")
    np.testing.assert_allclose(infer(fixed, data), infer(model, data),
                               atol=1e-5)
