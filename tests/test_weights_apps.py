"""``cnnkit-lint --fix`` with the weights carried on keras.applications models (issue 19).

VGG16, ResNet50 and InceptionV3 with random weights (``weights=None``; conv biases and
batch-norm statistics randomised too, so that a bias moved into a batch norm shows), at
small inputs for speed.  ``--fix-select ALL`` applies one alternative per site, the
approximate ones included; every applied fix reports its fidelity, and the exact ones
have a measured relative error of at most 1e-5, per fix and, when every applied fix is
exact, for the whole model.  Slow: minutes per model.
"""
import json

import keras
import numpy as np
import pytest

from keras_cnnkit.lint.cli import main

pytestmark = pytest.mark.slow

#: name → (builder, input size): the smallest sizes the applications accept, or close.
APPS = {
    "vgg16": (keras.applications.VGG16, 32),
    "resnet50": (keras.applications.ResNet50, 64),
    "inceptionv3": (keras.applications.InceptionV3, 75),
}


def randomise_biases(model, seed=0):
    """Random conv/dense biases and batch-norm statistics (kernels keep their
    initialisers, so activations stay bounded through 50 layers)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            # By name: InceptionV3's batch norms have no gamma (scale=False).
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                               if v.name in ("gamma", "moving_variance") else
                               (rng.standard_normal(w.shape) * 0.1).astype("float32")
                               for v, w in zip(layer.weights, weights)])
        elif len(weights) == 2 and weights[1].ndim == 1:
            layer.set_weights([weights[0],
                               (rng.standard_normal(weights[1].shape) * 0.1).astype("float32")])
    return model


@pytest.mark.parametrize("name", sorted(APPS))
def test_fix_with_weights_carried_on_applications(name, tmp_path, capsys):
    build, size = APPS[name]
    keras.utils.set_random_seed(0)
    model = randomise_biases(build(weights=None, input_shape=(size, size, 3), classes=10))
    src = tmp_path / f"{name}.keras"
    model.save(src)
    out = tmp_path / f"{name}_fixed.keras"
    status = main(["--no-config", "--min-impact", "0", "--fix", str(src), "-o", str(out),
                   "--fix-select", "ALL", "--format", "json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = json.loads(captured.out)
    assert report["applied"], f"{name}: no fix applied"
    assert np.isfinite(report["fidelity"]["output_error"])
    assert report["weights_carried"] and report["fidelity"]["random_inputs"]
    assert report["fidelity"]["top1_agreement"] is not None
    exact = [a for a in report["applied"] if a["weights"] == "exact"]
    for fix in report["applied"]:
        assert fix["weights"] in ("exact", "reinitialised") \
            or fix["weights"].startswith("approximate: "), fix
        assert fix["fidelity"] is not None, fix
        measured = fix["fidelity"]["subgraph_error"]
        assert measured is not None or fix["fidelity"]["reason"], fix
    for fix in exact:
        assert fix["fidelity"]["subgraph_error"] <= 1e-5, fix
    if len(exact) == len(report["applied"]):
        assert report["fidelity"]["output_error"] <= 1e-5
    # What was measured, per kind, for the record (pytest -s shows it).
    kinds = {}
    for fix in report["applied"]:
        kinds.setdefault(fix["weights"].split(" rank")[0], []).append(
            fix["fidelity"]["subgraph_error"])
    print(name, {k: (len(v), max(e for e in v if e is not None) if any(
        e is not None for e in v) else None) for k, v in kinds.items()},
          "whole model", report["fidelity"]["output_error"])
    fixed = keras.models.load_model(out, compile=False)
    x = np.random.default_rng(1).standard_normal((2, size, size, 3)).astype("float32")
    assert np.all(np.isfinite(fixed.predict(x, verbose=0)))


def test_exact_fixes_alone_keep_resnet50(tmp_path, capsys):
    """Only the exact fixes (the conv biases before batch norms): the whole model's
    output is the same to 1e-5, and the written file too."""
    keras.utils.set_random_seed(0)
    model = randomise_biases(keras.applications.ResNet50(
        weights=None, input_shape=(64, 64, 3), classes=10))
    src, out = tmp_path / "resnet50.keras", tmp_path / "resnet50_exact.h5"
    model.save(src)
    status = main(["--no-config", "--min-impact", "0", "--fix", str(src), "-o", str(out),
                   "--fix-select", "bias-before-batchnorm", "--format", "json"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    report = json.loads(captured.out)
    assert len(report["applied"]) >= 50
    assert all(a["weights"] == "exact" and a["fidelity"]["subgraph_error"] <= 1e-5
               for a in report["applied"])
    assert report["fidelity"]["output_error"] <= 1e-5
    x = np.random.default_rng(1).standard_normal((4, 64, 64, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    got = keras.models.load_model(out, compile=False).predict(x, verbose=0)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) <= 1e-5
