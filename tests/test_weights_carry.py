"""Fixes applied to live models with their weights carried, refitted and measured.

Reference values are worked out independently: numpy arithmetic from a planted kernel's
singular values, parameter counts from the layer formulas, the original model's own
outputs.
"""
import os
import shutil

import keras
import numpy as np
import pytest

from keras_cnnkit.lint.api import lint
from keras_cnnkit.lint.sites import rule_findings
from keras_cnnkit.rewrite import carry, fidelity, weights
from keras_cnnkit.rewrite.carry import apply_plans, rewrite_with_weights
from keras_cnnkit.rewrite.weights import APPROXIMATE, EXACT, REINITIALISED


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def seeded(seed=0):
    keras.utils.set_random_seed(seed)


def randomise(model, seed=1):
    """Random weights everywhere (biases, batch-norm statistics included)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        new = []
        for w in layer.get_weights():
            if "variance" in layer.name or isinstance(layer, keras.layers.BatchNormalization):
                new.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
            else:
                new.append((rng.standard_normal(w.shape) * 0.2).astype(w.dtype))
        layer.set_weights(new)
    return model


def conv_model(filters_in=24, filters=24, kernel=3, size=8, padding="same", **conv):
    seeded()
    inp = keras.Input((size, size, filters_in), name="x")
    out = keras.layers.Conv2D(filters, kernel, padding=padding, name="conv", **conv)(inp)
    return randomise(keras.Model(inp, out))


#: Small test models: the rules' width thresholds (main's defaults target real networks)
#: relaxed so that the planted kernels stay small and the tests fast.
OPTIONS = {"missing-bottleneck": {"min_width": 1},
           "depthwise-separable-candidate": {"min_channels": 1}}


def rules_of(model):
    """The report and every rule finding of a lint of ``model`` (sites flattened)."""
    report = lint(model, min_impact=0, options=OPTIONS)
    return report, rule_findings(report.findings)


def findings_of(model, symbol):
    return [f for f in rules_of(model)[1] if f.symbol == symbol]


def x_for(model, n=16, seed=2):
    return np.random.default_rng(seed).standard_normal(
        (n,) + tuple(model.inputs[0].shape[1:])).astype("float32")


# -- exact rewrites: live, and through .keras and .h5 ------------------------------------


def roundtrips(model, tmp_path):
    yield "live", model
    for suffix in (".keras", ".h5"):
        path = os.path.join(tmp_path, "fixed" + suffix)
        model.save(path)
        yield suffix, keras.models.load_model(path, compile=False)


def test_conv_as_fc_head_is_exact(tmp_path):
    seeded()
    inp = keras.Input((5, 5, 6), name="x")
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c")(inp)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dropout(0.3, name="drop")(h)
    out = keras.layers.Dense(7, activation="softmax", name="fc")(h)
    model = randomise(keras.Model(inp, out))
    (finding,) = findings_of(model, "flatten-dense-head")
    graph = lint(model).graph
    plan = weights.conv_head_plan(finding, graph, carry.layer_weights(model))
    assert plan.carried == EXACT and plan.method == "dense-as-conv"
    assert plan.finding.params_after == plan.finding.params_before == 5 * 5 * 6 * 7 + 7
    fixed, _ = apply_plans(model, [plan], graph)
    x = x_for(model)
    y = model.predict(x, verbose=0)
    assert any(type(l).__name__ == "Conv2D" and l.kernel_size == (5, 5) for l in fixed.layers)
    for where, loaded in roundtrips(fixed, tmp_path):
        assert rel(loaded.predict(x, verbose=0), y) <= 1e-5, where


def test_function_preserving_fixes_are_exact(tmp_path):
    seeded()
    inp = keras.Input((6, 6, 4), name="x")
    h = keras.layers.Conv2D(8, 3, padding="same", name="c")(inp)        # bias before BN
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="r")(h)
    h = keras.layers.Dropout(0.2, name="drop")(h)                       # dropout before BN
    h = keras.layers.BatchNormalization(name="bn2")(h)
    out = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = randomise(keras.Model(inp, out))
    result = rewrite_with_weights(model, lint(model).findings,
                                  select=["bias-before-batchnorm", "dropout-before-batchnorm"])
    assert {f.finding.symbol for f in result.fixes} == {"bias-before-batchnorm",
                                                       "dropout-before-batchnorm"}
    assert all(f.plan.carried == EXACT for f in result.fixes)
    x = x_for(model)
    y = model.predict(x, verbose=0)
    for where, loaded in roundtrips(result.model, tmp_path):
        assert rel(loaded.predict(x, verbose=0), y) <= 1e-5, where


def test_stacked_valid_convs_are_exact_at_full_width(tmp_path):
    model = conv_model(filters_in=8, filters=8, kernel=5, padding="valid")
    (finding,) = findings_of(model, "large-kernel")
    result = rewrite_with_weights(model, [finding], rank="ratio:1.0")   # width 4·8 = 32
    (fix,) = result.fixes
    assert fix.plan.carried == EXACT and fix.plan.method == "stacked-composition"
    assert fix.plan.ranks == {"conv_3x3_1": 32}
    x = x_for(model)
    y = model.predict(x, verbose=0)
    for where, loaded in roundtrips(result.model, tmp_path):
        assert rel(loaded.predict(x, verbose=0), y) <= 1e-5, where


# -- approximate methods: exact at full rank on the live model ---------------------------


@pytest.mark.parametrize("symbol, build, method", [
    ("missing-bottleneck", dict(filters_in=24, filters=24), "tucker2-hosvd"),
    ("missing-bottleneck", dict(filters_in=16, filters=40), "tucker1-svd"),
    ("depthwise-separable-candidate", dict(filters_in=6, filters=32, activation="relu"),
     "depthwise-svd"),
    ("asymmetric-factorization", dict(filters_in=8, filters=8, size=12, kernel=3),
     "spatial-svd"),
])
def test_approximate_methods_are_exact_at_full_rank(symbol, build, method):
    model = conv_model(**build)
    (finding,) = findings_of(model, symbol)
    x = x_for(model)
    y = model.predict(x, verbose=0)
    full = rewrite_with_weights(model, [finding], rank="ratio:1.0", calibration=x, refit=False)
    (fix,) = full.fixes
    assert fix.plan.carried == APPROXIMATE and fix.plan.method.endswith(method)
    assert rel(full.model.predict(x, verbose=0), y) <= 1e-5
    assert fix.error <= 1e-5 and full.fidelity.output_error <= 1e-5
    default = rewrite_with_weights(model, [finding], calibration=x, refit=False)
    assert default.fixes[0].error > 1e-3          # random kernels are not low rank


def test_stacked_same_padding_is_exact_in_the_interior_at_full_width():
    model = conv_model(filters_in=8, filters=8, kernel=5, padding="same", size=10)
    (finding,) = findings_of(model, "large-kernel")
    result = rewrite_with_weights(model, [finding], rank="ratio:1.0")
    assert result.fixes[0].plan.how == "approximate: least-squares fit of the stacked kernels rank 32"
    x = x_for(model)
    y, y_fixed = model.predict(x, verbose=0), result.model.predict(x, verbose=0)
    assert rel(y_fixed[:, 1:-1, 1:-1], y[:, 1:-1, 1:-1]) <= 1e-5   # 2 − 1 border row
    assert rel(y_fixed, y) > 1e-3


def test_gap_head_is_exact_on_spatially_constant_features():
    seeded()
    inp = keras.Input((4, 4, 3), name="x")
    h = keras.layers.Flatten(name="flat")(inp)
    out = keras.layers.Dense(5, name="fc")(h)
    model = randomise(keras.Model(inp, out))
    (finding,) = findings_of(model, "flatten-dense-head")
    constant = np.broadcast_to(x_for(model)[:, :1, :1, :], (16, 4, 4, 3)).copy()
    result = rewrite_with_weights(model, [finding], calibration=constant, refit=False)
    assert result.fixes[0].plan.how == ("approximate: GAP head from the Dense kernel summed over "
                                         "positions")
    assert rel(result.model.predict(constant, verbose=0), model.predict(constant, verbose=0)) \
        <= 1e-5


def test_flatten_order_matches_keras_channels_first_flatten():
    seeded()
    inp = keras.Input((3, 4, 2), name="x")
    h = keras.layers.Flatten(data_format="channels_first", name="flat")(inp)
    out = keras.layers.Dense(5, name="fc")(h)
    model = randomise(keras.Model(inp, out))
    (finding,) = findings_of(model, "flatten-dense-head")
    graph = lint(model).graph
    plan = weights.conv_head_plan(finding, graph, carry.layer_weights(model))
    fixed, _ = apply_plans(model, [plan], graph)
    x = x_for(model)
    assert rel(fixed.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5


# -- ranks and costs -----------------------------------------------------------------------


def test_rank_changes_widths_and_the_costs_follow():
    model = conv_model(filters_in=32, filters=32)
    (finding,) = findings_of(model, "missing-bottleneck")
    assert finding.params_after == 32 * 8 + 8 + 9 * 8 * 8 + 8 + 8 * 32 + 32   # the rule's
    result = rewrite_with_weights(model, [finding], rank=12)
    plan = result.fixes[0].plan
    assert plan.ranks == {"conv_reduce": 12, "conv_conv": 12}
    expected = 32 * 12 + 9 * 12 * 12 + 12 * 32 + 32     # no bias before the expand
    assert plan.finding.params_after == expected
    assert result.model.count_params() == expected
    energy = rewrite_with_weights(model, [finding], rank="energy:0.99").fixes[0].plan
    assert energy.ranks["conv_reduce"] > 12 and energy.finding.params_after > expected


def test_merged_bias_moves_into_the_batch_norm():
    seeded()
    inp = keras.Input((8, 8, 24), name="x")
    h = keras.layers.Conv2D(24, 3, padding="same", name="conv")(inp)
    out = keras.layers.BatchNormalization(name="bn")(h)
    model = randomise(keras.Model(inp, out))
    findings = [f for f in rules_of(model)[1]
                if f.symbol in ("bias-before-batchnorm", "missing-bottleneck")]
    result = rewrite_with_weights(model, findings, rank="ratio:1.0")
    (fix,) = result.fixes
    assert fix.finding.symbol == "missing-bottleneck"
    assert not fix.finding.replacement.nodes[-1].attrs["use_bias"]
    x = x_for(model)
    assert rel(result.model.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-5


# -- fidelity, refit, refusal ------------------------------------------------------------------


def planted_dense(in_dim=12, out_dim=7, lift=None):
    """Input → [lift: a fixed linear map from 3 dims] → Dense ``fc`` with singular
    values 5, 4, 3, 2, 1."""
    rng = np.random.default_rng(3)
    q_in, _ = np.linalg.qr(rng.standard_normal((in_dim, 5)))
    q_out, _ = np.linalg.qr(rng.standard_normal((out_dim, 5)))
    kernel = q_in @ np.diag([5.0, 4, 3, 2, 1]) @ q_out.T
    inp = keras.Input((3 if lift else in_dim,), name="x")
    h = keras.layers.Dense(in_dim, use_bias=False, name="lift")(inp) if lift else inp
    out = keras.layers.Dense(out_dim, use_bias=False, name="fc")(h)
    model = keras.Model(inp, out)
    model.get_layer("fc").set_weights([kernel.astype("float32")])
    if lift:
        model.get_layer("lift").set_weights([rng.standard_normal((3, in_dim)).astype("float32")])
    return model


def test_subgraph_error_is_the_discarded_energy_on_an_orthonormal_probe():
    model = planted_dense()
    graph = lint(model).graph
    finding = weights.low_rank_dense_finding(graph, "fc", 3)
    assert finding.params_after == 12 * 3 + 3 * 7
    probe = np.eye(12, dtype="float32")               # ‖X·ΔW‖ = ‖ΔW‖ exactly
    result = rewrite_with_weights(model, [finding], graph=graph, calibration=probe,
                                  refit=False)
    expected = np.sqrt(2 ** 2 + 1 ** 2) / np.sqrt(55.0)  # dropped s = 2, 1 of 5,4,3,2,1
    assert result.fixes[0].plan.how == "approximate: truncated SVD rank 3"
    assert result.fixes[0].error == pytest.approx(expected, rel=1e-5)
    assert result.fidelity.output_error == pytest.approx(expected, rel=1e-5)
    assert result.fidelity.top1_agreement is not None and not result.fidelity.random


def test_refit_recovers_a_planted_low_dimensional_input():
    """Inputs that span 3 dimensions: the data-free rank-3 SVD misses their subspace, a
    least-squares refit of the second Dense on them reproduces the layer exactly."""
    model = planted_dense(lift=True)
    graph = lint(model).graph
    finding = weights.low_rank_dense_finding(graph, "fc", 3)
    z = np.random.default_rng(4).standard_normal((200, 3)).astype("float32")
    result = rewrite_with_weights(model, [finding], graph=graph, calibration=z, ridge=1e-9)
    (fix,) = result.fixes
    assert fix.before_refit.error > 0.05
    assert fix.after_refit.error < 1e-3 and result.fidelity.output_error < 1e-3
    assert result.fidelity_before_refit.output_error > 0.05
    assert fix.refit.startswith("refit fc_svd then fc_fixed")
    text = result.format_text()
    assert "before the refit" in text and fidelity.WEAK_PROXY not in text


def test_solve_through_a_pointwise_layer_recovers_a_planted_kernel():
    """``solve_layer(..., mixer=M)`` finds C with conv(x; C)·M = Y when Y was made so."""
    from keras_cnnkit.rewrite.refit import solve_layer
    rng = np.random.default_rng(5)
    layer = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)
    layer.build((None, 6, 6, 4))
    planted = rng.standard_normal((3, 3, 4, 3))
    mixer = rng.standard_normal((3, 7))                  # full row rank: 3 → 7 channels
    x = rng.standard_normal((8, 6, 6, 4)).astype("float32")
    probe = keras.layers.Conv2D(3, 3, padding="same", use_bias=False)
    probe.build((None, 6, 6, 4))
    probe.set_weights([planted.astype("float32")])
    target = np.asarray(probe(x)).reshape(-1, 3) @ mixer
    residual = solve_layer(layer, x, target, ridge=1e-12, mixer=mixer)
    assert residual < 1e-5
    np.testing.assert_allclose(layer.get_weights()[0], planted, atol=1e-4)


def test_random_inputs_say_they_are_a_weak_proxy_and_max_error_refuses():
    model = planted_dense()
    graph = lint(model).graph
    finding = weights.low_rank_dense_finding(graph, "fc", 3)
    result = rewrite_with_weights(model, [finding], graph=graph, max_error=0.01)
    assert result.fidelity.random and not result.fixes
    assert [plan.finding.symbol for plan, _ in result.refused] == [weights.SVD_DENSE]
    text = result.format_text()
    assert fidelity.WEAK_PROXY in text and "refused" in text
    assert result.to_dict()["fidelity"]["note"] == fidelity.WEAK_PROXY
    x = x_for(model)
    assert rel(result.model.predict(x, verbose=0), model.predict(x, verbose=0)) <= 1e-6


def test_calibration_from_npz_and_an_image_directory(tmp_path):
    seeded()
    model = keras.Sequential([keras.Input((6, 5, 1)), keras.layers.Conv2D(2, 3, name="c")])
    arrays = np.random.default_rng(0).uniform(0, 255, (4, 6, 5, 1)).astype("float32")
    np.savez(os.path.join(tmp_path, "cal.npz"), x=arrays)
    data = fidelity.calibration_inputs(model, os.path.join(tmp_path, "cal.npz"))
    np.testing.assert_array_equal(data.x, arrays)
    assert not data.random
    images = os.path.join(tmp_path, "images")
    os.makedirs(images)
    for i, image in enumerate(arrays.astype("uint8")):
        keras.utils.save_img(os.path.join(images, f"{i}.png"), image, scale=False)
    data = fidelity.calibration_inputs(model, images)
    assert data.x.shape == (4, 6, 5, 1)
    np.testing.assert_array_equal(np.sort(data.x.reshape(-1)),
                                  np.sort(arrays.astype("uint8").reshape(-1)))
    assert fidelity.calibration_inputs(model).random
    with pytest.raises(ValueError):
        fidelity.calibration_inputs(model, np.zeros((2, 3, 3, 1)))


def _png_header(path, width: int, height: int) -> str:
    """A PNG whose header declares ``width`` × ``height`` RGB pixels (its data is
    three bytes: decoding it would fail, or allocate the declared size first)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                 + chunk(b"IDAT", zlib.compress(b"\0\0\0")) + chunk(b"IEND", b""))
    return str(path)


def test_image_directory_is_checked_before_decoding_and_bounded(tmp_path, monkeypatch):
    """Each image's header is read before anything is decoded: one declaring more than
    2**26 pixels, a link to a FIFO, or a file that is no image is a one-line
    ``ValueError`` naming it; and no more images are decoded than fit in the
    ``.npz`` byte limit at the model's input size."""
    seeded()
    model = keras.Sequential([keras.Input((6, 5, 1)), keras.layers.Conv2D(2, 3, name="c")])
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.random.default_rng(0).uniform(0, 255, (4, 6, 5, 1)).astype("uint8")
    for i, image in enumerate(pixels):
        keras.utils.save_img(str(images / f"{i}.png"), image, scale=False)
    # 4 images of 6 × 5 × 1 float32 = 120 bytes each; room for 2
    monkeypatch.setattr(fidelity, "MAX_NPZ_ARRAY_BYTES", 2 * 120)
    data = fidelity.calibration_inputs(model, str(images))
    assert data.x.shape == (2, 6, 5, 1)
    assert "the first 2 of 4" in data.description
    monkeypatch.undo()
    assert fidelity.MAX_IMAGE_PIXELS == 2 ** 26 == 8192 * 8192
    for name, width, height, problem in (
            ("big.png", 9000, 9000, "a 9,000 × 9,000 image (81,000,000 pixels), over the "
                                    "67,108,864 read"),
            ("bomb.png", 100_000, 100_000, "not a readable image (Image size "
                                           "(10000000000 pixels) exceeds limit")):
        bad = tmp_path / name.split(".")[0]
        shutil.copytree(images, bad)
        _png_header(bad / name, width, height)
        with pytest.raises(ValueError) as err:
            fidelity.calibration_inputs(model, str(bad))
        assert str(err.value).startswith(str(bad / name)) and problem in str(err.value)
        assert "\n" not in str(err.value)
    fifo = tmp_path / "fifo"
    shutil.copytree(images, fifo)
    os.mkfifo(tmp_path / "pipe")
    os.symlink(tmp_path / "pipe", fifo / "z.png")
    with pytest.raises(ValueError, match=r"z\.png: not a file but a FIFO"):
        fidelity.calibration_inputs(model, str(fifo))
    junk = tmp_path / "junk"
    shutil.copytree(images, junk)
    (junk / "notes.jpg").write_text("not a JPEG")
    with pytest.raises(ValueError, match=r"notes\.jpg: not a readable image"):
        fidelity.calibration_inputs(model, str(junk))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images"):
        fidelity.calibration_inputs(model, str(empty))


def test_alternatives_declare_how_they_carry_weights():
    seeded()
    inp = keras.Input((4, 4, 24), name="x")
    h = keras.layers.Conv2D(24, 3, padding="same", activation="relu", name="conv")(inp)
    h = keras.layers.Flatten(name="flat")(h)
    out = keras.layers.Dense(3, name="fc")(h)
    model = randomise(keras.Model(inp, out))
    report, rules = rules_of(model)
    weights_of = carry.layer_weights(model)
    by_symbol = {f.symbol: f for f in rules}
    head = weights.alternatives(by_symbol["flatten-dense-head"], report.graph, weights_of)
    assert [p.how for p in head] == [
        "approximate: GAP head from the Dense kernel summed over positions", "exact"]
    bottleneck = weights.alternatives(by_symbol["missing-bottleneck"], report.graph, weights_of)
    assert [p.how for p in bottleneck] == ["approximate: Tucker-2 HOSVD ranks 6/6", REINITIALISED]
    assert bottleneck[1].finding.replacement.nodes[0].attrs["activation"] == "relu"
    assert bottleneck[0].finding.replacement.nodes[0].attrs["activation"] is None
    # The lint report declares the same, from the fragment alone (the rule's width).
    declared = {a.finding.symbol: a.weights for f in report.findings for a in f.alternatives}
    assert declared["missing-bottleneck"] == "approximate: Tucker-2 HOSVD rank 6"
    assert declared["flatten-dense-head"] == head[0].how
