"""``fix_file``: safe loading, atomic writing, exactness, and fixed models that work.

These tests drive ``fix_file`` with a small stand-in linter (one bias-before-batchnorm
check and one 5×5 → 2×3×3 check written here on the IR), so they pin the file handling
and the rewrite independently of the rule modules; ``test_fix_rules.py`` runs the real
rules.
"""
import hashlib
import os
import types

import keras
import numpy as np
import pytest

from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
from keras_cnnkit.analysis.ir import Node, OpKind
from keras_cnnkit.errors import CnnkitError, ModelFileError
from keras_cnnkit.lint.findings import Finding, Replacement, Severity
from keras_cnnkit.lint.fix import OutputFileError, fix_file

L = keras.layers


def infer(model, data):
    """``model(data)`` in inference, as numpy (any backend)."""
    return keras.ops.convert_to_numpy(model(data, training=False))

pytestmark = pytest.mark.backend_agnostic


def stand_in_lint(model):
    """bias → BN (exact fix) and 5×5 conv → two 3×3 (architectural), on the IR."""
    graph = graph_from_keras(model)
    findings = []
    for node in graph:
        if node.op != OpKind.CONV:
            continue
        consumer = graph.single_consumer(node)
        if node.attr("use_bias") and consumer is not None and consumer.op == OpKind.BATCHNORM:
            conv = Node(node.name, OpKind.CONV, list(node.inputs), list(node.input_shapes),
                        node.output_shape, dict(node.attrs, use_bias=False))
            bn = Node(consumer.name, OpKind.BATCHNORM, [node.name], [node.output_shape],
                      consumer.output_shape, dict(consumer.attrs))
            c = node.channels()
            findings.append(Finding(
                "CNK900", "bias-before-batchnorm", Severity.WARNING, node.name, "bias",
                params_before=node.params + consumer.params,
                params_after=node.params - c + consumer.params,
                replacement=Replacement([node.name, consumer.name], [conv, bn],
                                        consumer.name, preserves_function=True)))
        if node.attr("kernel") == (5, 5):
            c_in, c_out = node.in_channels(), node.channels()
            attrs = dict(node.attrs, kernel=(3, 3), padding="same")
            a = Node(f"{node.name}_a", OpKind.CONV, list(node.inputs),
                     list(node.input_shapes), node.output_shape,
                     dict(attrs, filters=c_out, activation="relu"))
            b = Node(f"{node.name}_b", OpKind.CONV, [a.name], [node.output_shape],
                     node.output_shape, dict(attrs, in_channels=c_out, filters=c_out))
            findings.append(Finding(
                "CNK901", "large-kernel", Severity.WARNING, node.name, "5x5",
                params_before=node.params,
                params_after=9 * c_in * c_out + c_out + 9 * c_out * c_out + c_out,
                replacement=Replacement([node.name], [a, b], b.name)))
    return types.SimpleNamespace(findings=findings, graph=graph)


def make_model():
    x = keras.Input((12, 12, 3), name="img")
    y = L.Conv2D(8, 3, padding="same", name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Conv2D(8, 5, padding="same", name="conv5")(y)
    y = L.BatchNormalization(name="bn5")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return keras.Model(x, L.Dense(3, name="fc")(y), name="small")


@pytest.fixture(name="model_file")
def fixture_model_file(tmp_path, rng):
    model = make_model()
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.moving_mean.assign(rng.standard_normal(8))
            layer.moving_variance.assign(rng.uniform(0.5, 2, 8))
        elif isinstance(layer, L.Conv2D):
            layer.bias.assign(rng.standard_normal(8))
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_exact_fix_round_trips_and_keeps_outputs(model_file, tmp_path, rng):
    out = tmp_path / "fixed.keras"
    before = digest(model_file)
    result = fix_file(model_file, out, select=["bias-before-batchnorm"], lint=stand_in_lint)
    assert digest(model_file) == before  # the input is untouched
    assert [f.symbol for f in result.applied] == ["bias-before-batchnorm"] * 2
    assert not result.needs_retraining and not result.remaining
    original = keras.models.load_model(model_file, compile=False)
    fixed = keras.models.load_model(out, compile=False)
    # two 8-channel conv biases gone
    assert fixed.count_params() == original.count_params() - 16 == result.params_after
    assert result.params_after == result.expected_params_after
    data = rng.standard_normal((4, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(infer(fixed, data), infer(original, data),
                               atol=1e-5)
    assert [t.shape for t in fixed.inputs] == [t.shape for t in original.inputs]
    assert [t.shape for t in fixed.outputs] == [t.shape for t in original.outputs]
    assert "params" in result.format_text() and result.to_dict()["applied"]


def test_architectural_fix_loads_trains_and_is_flagged(model_file, tmp_path, rng):
    out = tmp_path / "fixed.h5"
    result = fix_file(model_file, out, select=["CNK901"], lint=stand_in_lint)
    assert [f.symbol for f in result.applied] == ["large-kernel"]
    assert result.needs_retraining
    assert "retrain" in result.format_text()
    # 25·8·8+8 → 9·8·8 + (9·8·8+8): the weights carried (a least-squares fit of the
    # stacked kernels), the first 3×3 linear and without a bias
    assert result.params_after == result.params_before - (25 * 64 + 8) + 9 * 64 + (9 * 64 + 8)
    fix = result.to_dict()["applied"][0]
    assert fix["weights"].startswith("approximate: least-squares fit of the stacked kernels")
    assert fix["fidelity"]["subgraph_error"] is not None
    assert result.to_dict()["fidelity"]["random_inputs"] is True
    assert "weak proxy" in result.format_text()
    plain = fix_file(model_file, tmp_path / "plain.h5", select=["CNK901"], lint=stand_in_lint,
                     carry_weights=False)      # the rule's own fragment, re-initialised
    assert plain.params_after == result.params_before - (25 * 64 + 8) + 2 * (9 * 64 + 8)
    assert plain.to_dict()["applied"][0]["weights"] == "reinitialised"
    assert plain.to_dict()["fidelity"] is None
    assert result.params_after == result.expected_params_after
    fixed = keras.models.load_model(out, compile=False)
    assert "conv5" not in [l.name for l in fixed.layers]
    fixed.compile(optimizer="sgd", loss="mse")
    data = rng.standard_normal((4, 12, 12, 3)).astype("float32")
    history = fixed.fit(data, rng.standard_normal((4, 3)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not stand_in_lint(fixed).findings or all(
        f.symbol != "large-kernel" for f in stand_in_lint(fixed).findings)


def test_fold_bn_option_is_exact_in_inference(model_file, tmp_path, rng):
    out = tmp_path / "folded.keras"
    result = fix_file(model_file, out, select=[], lint=stand_in_lint, fold_bn=True)
    assert result.folded_batchnorms == 2 and not result.applied
    original = keras.models.load_model(model_file, compile=False)
    fixed = keras.models.load_model(out, compile=False)
    assert fixed.count_params() == original.count_params() - 2 * 4 * 8
    data = rng.standard_normal((4, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(infer(fixed, data), infer(original, data),
                               atol=1e-5)


def test_refuses_to_overwrite_without_force(model_file, tmp_path):
    out = tmp_path / "fixed.keras"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputFileError, match="already exists"):
        fix_file(model_file, out, lint=stand_in_lint)
    assert out.read_bytes() == b"keep me"
    fix_file(model_file, out, lint=stand_in_lint, force=True)
    assert keras.models.load_model(out, compile=False).count_params() > 0
    # no temporary files are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.keras", "model.keras"]


def test_never_writes_the_input(model_file):
    before = digest(model_file)
    with pytest.raises(OutputFileError, match="input"):
        fix_file(model_file, model_file, lint=stand_in_lint, force=True)
    assert digest(model_file) == before


@pytest.mark.parametrize("where", ["missing_dir/out.keras", "afile/out.keras", "out.txt",
                                   "/proc/cnnkit-out.keras"])
def test_unwritable_output_is_a_clear_error(model_file, tmp_path, where):
    """Including a directory no one can create files in (even root: /proc)."""
    (tmp_path / "afile").write_text("a file, not a directory")
    before = digest(model_file)
    with pytest.raises(OutputFileError) as info:
        fix_file(model_file, tmp_path / where, lint=stand_in_lint)
    assert isinstance(info.value, CnnkitError)
    assert str(tmp_path / where) in str(info.value)
    assert digest(model_file) == before


def test_lambda_model_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    x = keras.Input((4,))
    y = L.Lambda(lambda t: t * 2)(x)
    path = tmp_path / "lam.keras"
    keras.Model(x, y).save(path)
    with pytest.raises(ModelFileError, match="Lambda"):
        fix_file(path, tmp_path / "out.keras", lint=stand_in_lint)
    assert not marker.exists() and not (tmp_path / "out.keras").exists()


def test_missing_or_corrupt_input(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        fix_file(tmp_path / "nope.keras", tmp_path / "out.keras", lint=stand_in_lint)
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match="damaged zip archive"):   # the static read
        fix_file(bad, tmp_path / "out.keras", lint=stand_in_lint)
    assert not os.path.exists(tmp_path / "out.keras")
