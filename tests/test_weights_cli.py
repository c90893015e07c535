"""``cnnkit-lint --fix`` with the trained weights carried (issue 19): the flags ``--rank``,
``--calibration-data``, ``--max-error``, ``--finetune``/``--epochs`` and
``--reinitialise``, and the fidelity the summary reports, on one small classifier.

Reference values come from the original model's own outputs and from parameter formulas
worked out by hand, not from the linter.
"""
import json
import logging

import keras
import numpy as np
import pytest

from keras_cnnkit.lint.cli import main

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

L = keras.layers
SHAPE = (8, 8, 32)
#: The exact fixes of the model, and the approximate ones (both carry weights).
EXACT = "bias-before-batchnorm,dropout-before-batchnorm"
APPROXIMATE = "large-kernel,flatten-dense-head"


def run_cli(capsys, *args):
    """``(status, stdout, stderr)`` of ``cnnkit-lint --no-config --min-impact 0 args``."""
    status = main(["--no-config", "--min-impact", "0"] + [str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def randomise(model, seed=1):
    """Random weights everywhere, batch-norm statistics included (so that a bias the
    batch norm absorbs, or a wrongly moved one, shows)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32")
                               for w in layer.get_weights()])
        else:
            layer.set_weights([(rng.standard_normal(w.shape) * 0.1).astype("float32")
                               for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``model.keras``: conv 3×3 (bias) → BN → ReLU → conv 5×5 → ReLU → Dropout → BN →
    Flatten → Dense softmax; ``calib.npz`` (inputs) and ``train.npz`` (inputs, labels)."""
    root = tmp_path_factory.mktemp("weights_cli")
    keras.utils.set_random_seed(0)
    x = keras.Input(SHAPE, name="img")
    y = L.Conv2D(32, 3, padding="same", name="c1")(x)
    y = L.BatchNormalization(name="bn1")(y)
    y = L.ReLU(name="r1")(y)
    y = L.Conv2D(32, 5, padding="same", name="c5")(y)
    y = L.ReLU(name="r2")(y)
    y = L.Dropout(0.3, name="drop")(y)
    y = L.BatchNormalization(name="bn2")(y)
    y = L.Flatten(name="flat")(y)
    model = randomise(keras.Model(x, L.Dense(4, activation="softmax", name="fc")(y)))
    rng = np.random.default_rng(2)
    data = rng.standard_normal((96,) + SHAPE).astype("float32")
    paths = {"model": root / "model.keras", "calib": root / "calib.npz",
             "train": root / "train.npz", "root": root}
    model.save(paths["model"])
    np.savez(paths["calib"], x=data[:64])
    np.savez(paths["train"], x=data, y=rng.integers(0, 4, len(data)))
    return paths, model, data


def fix_json(capsys, paths, out, *flags):
    status, stdout, err = run_cli(capsys, "--fix", paths["model"], "-o", out,
                                  "--format", "json", *flags)
    assert status == 0, err
    return json.loads(stdout)


def test_exact_fixes_round_trip_through_keras_and_h5(capsys, caplog, files):
    """The exact fixes: same outputs to 1e-5 in the written .keras and .h5 files, and a
    measured subgraph error of at most 1e-5 each; writing .h5 logs no Keras advice to
    save as .keras instead (the user chose the suffix)."""
    paths, model, data = files
    expected = model.predict(data, verbose=0)
    for suffix in (".keras", ".h5"):
        out = paths["root"] / f"exact{suffix}"
        with caplog.at_level(logging.INFO):
            report = fix_json(capsys, paths, out, "--fix-select", EXACT,
                              "--calibration-data", paths["calib"])
        assert not [r for r in caplog.records if "legacy" in r.getMessage()]
        assert {a["symbol"] for a in report["applied"]} == set(EXACT.split(","))
        for fix in report["applied"]:
            assert fix["weights"] == "exact"
            assert fix["fidelity"]["subgraph_error"] <= 1e-5
        assert report["fidelity"]["output_error"] <= 1e-5
        assert report["fidelity"]["top1_agreement"] == 1.0
        fixed = keras.models.load_model(out, compile=False)
        got = fixed.predict(data, verbose=0)
        assert np.linalg.norm(got - expected) / np.linalg.norm(expected) <= 1e-5, suffix


def test_calibration_data_refits_and_reports_fidelity(capsys, files):
    """--calibration-data: measured on it (not random), the approximate fixes refitted
    (fidelity before and after), per-fix errors, whole-model error and top-1 agreement,
    in the JSON and in the text."""
    paths, _, _ = files
    out = paths["root"] / "calibrated.keras"
    report = fix_json(capsys, paths, out, "--fix-select", APPROXIMATE,
                      "--calibration-data", paths["calib"])
    fidelity = report["fidelity"]
    assert not fidelity["random_inputs"] and "calib.npz (64 samples)" in fidelity["data"]
    assert 0.0 <= fidelity["top1_agreement"] <= 1.0 and fidelity["output_error"] >= 0.0
    assert report["fidelity_before_refit"] is not None
    weights = {a["symbol"]: a["weights"] for a in report["applied"]}
    assert weights["large-kernel"].startswith(
        "approximate: least-squares fit of the stacked kernels rank 32")
    assert weights["flatten-dense-head"].startswith("approximate: GAP head")
    for fix in report["applied"]:
        assert fix["fidelity"]["subgraph_error"] is not None
        assert fix["flops_after"] < fix["flops_before"]
    status, text, err = run_cli(capsys, "--fix", paths["model"], "-o", out, "--force",
                                "--fix-select", APPROXIMATE)
    assert status == 0, err
    assert "subgraph error" in text and "whole model: output error" in text
    assert "weak proxy" in text     # no --calibration-data: random inputs, said so


def test_rank_changes_the_width_and_the_saving(capsys, files):
    """--rank ratio:0.1: a narrower stacked 3×3 pair; the saving is recomputed for it
    (parameters as worked out from the layer formulas) and the file matches."""
    paths, model, _ = files
    default = fix_json(capsys, paths, paths["root"] / "width.keras",
                       "--fix-select", "large-kernel")
    low = fix_json(capsys, paths, paths["root"] / "low.keras",
                   "--fix-select", "large-kernel", "--rank", "ratio:0.1")
    (fix,) = low["applied"]
    (rank,) = fix["ranks"].values()
    assert 1 <= rank < 32 and low["rank"] == "ratio:0.1"
    assert fix["weights"] == f"approximate: least-squares fit of the stacked kernels rank {rank}"
    # 3×3 32→r without bias, then 3×3 r→32 with the original's bias
    assert fix["params_after"] == 9 * 32 * rank + 9 * rank * 32 + 32
    assert fix["params_before"] == 25 * 32 * 32 + 32
    assert fix["flops_after"] < default["applied"][0]["flops_after"]
    assert low["params_after"] == model.count_params() - fix["params_before"] \
        + fix["params_after"] == low["expected_params_after"]


def test_max_error_refuses_fixes_above_it(capsys, files):
    """--max-error: the approximate fixes (random kernels are not low rank) are refused
    with their error; the exact ones are applied."""
    paths, _, _ = files
    report = fix_json(capsys, paths, paths["root"] / "strict.keras", "--fix-select",
                      f"{APPROXIMATE},dropout-before-batchnorm", "--max-error", "0.001",
                      "--calibration-data", paths["calib"])
    assert [a["symbol"] for a in report["applied"]] == ["dropout-before-batchnorm"]
    refused = {s["symbol"]: s for s in report["skipped"] if "subgraph_error" in s}
    assert set(refused) == set(APPROXIMATE.split(","))
    for skip in refused.values():
        assert skip["subgraph_error"] > 0.001 and "exceeds --max-error 0.001" in skip["reason"]
    assert report["max_error"] == 0.001


def test_a_bias_drop_merged_into_a_refused_fix_is_applied_alone(capsys, files):
    """c1's bias drop merges into its depthwise-separable fix; when --max-error refuses
    that fix, the bias drop is applied on its own, exactly."""
    paths, model, data = files
    out = paths["root"] / "unmerged.keras"
    report = fix_json(capsys, paths, out, "--fix-select",
                      "depthwise-separable-candidate,bias-before-batchnorm",
                      "--max-error", "0.001", "--calibration-data", paths["calib"])
    applied = {(a["symbol"], a["layer"]): a for a in report["applied"]}
    assert ("bias-before-batchnorm", "c1") in applied and not report["merged"]
    assert applied[("bias-before-batchnorm", "c1")]["weights"] == "exact"
    assert all(a["symbol"] != "depthwise-separable-candidate" for a in report["applied"])
    assert any(s["symbol"] == "depthwise-separable-candidate" and "subgraph_error" in s
               for s in report["skipped"])
    fixed = keras.models.load_model(out, compile=False)
    assert not fixed.get_layer("c1").use_bias
    expected = model.predict(data, verbose=0)
    got = fixed.predict(data, verbose=0)
    assert np.linalg.norm(got - expected) / np.linalg.norm(expected) <= 1e-5


def test_finetune_distils_before_writing(capsys, files):
    """--finetune DATA.npz --epochs 1: a distillation ran; its fidelity is reported and
    the written file loads and predicts."""
    paths, _, data = files
    out = paths["root"] / "tuned.keras"
    report = fix_json(capsys, paths, out, "--fix-select", APPROXIMATE,
                      "--finetune", paths["train"], "--epochs", "1")
    tuned = report["finetune"]
    assert tuned["epochs"] == 1 and tuned["labels"] and np.isfinite(tuned["loss"])
    assert 0.0 <= tuned["fidelity"]["top1_agreement"] <= 1.0
    fixed = keras.models.load_model(out, compile=False)
    assert np.all(np.isfinite(fixed.predict(data[:4], verbose=0)))


def test_reinitialise_and_usage_errors(capsys, files):
    """--reinitialise: the rules' own fragments, no fidelity; bad flags exit 2."""
    paths, _, _ = files
    report = fix_json(capsys, paths, paths["root"] / "fresh.keras",
                      "--fix-select", "large-kernel", "--reinitialise")
    assert report["applied"][0]["weights"] == "reinitialised" and report["fidelity"] is None
    assert not report["weights_carried"]
    out = paths["root"] / "never.keras"
    for flags in (("--rank", "energy:2"), ("--rank", "fast"), ("--epochs", "2"),
                  ("--max-error", "-1"), ("--reinitialise", "--rank", "4")):
        try:
            status, _, _ = run_cli(capsys, "--fix", paths["model"], "-o", out, *flags)
        except SystemExit as exc:      # argparse's own exit
            status = exc.code
        assert status == 2 and not out.exists(), flags
    status, _, err = run_cli(capsys, "--fix", paths["model"], "-o", out,
                             "--calibration-data", paths["root"] / "missing.npz")
    assert status == 2 and "missing.npz" in err and not out.exists()


def _hostile_npz(root) -> list:
    """``.npz`` files a user could pass as calibration or fine-tuning data: a pickled
    object array, a truncated archive, a header declaring 4 TB in a few bytes, a
    deflated gigabyte of zeros, strings, a scalar, a corrupted member (bad CRC)."""
    import io
    import zipfile

    def header(shape, descr="<f4") -> bytes:
        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False,
                                                      "shape": shape})
        return buffer.getvalue()

    cases = []
    np.savez(root / "objects.npz", x=np.array([{"a": 1}, 2], dtype=object))
    cases.append(("objects.npz", "Python objects"))
    (root / "cut.npz").write_bytes((root / "objects.npz").read_bytes()[:100])
    cases.append(("cut.npz", "not a readable .npz"))
    with zipfile.ZipFile(root / "declared.npz", "w") as archive:
        archive.writestr("x.npy", header((10 ** 6, 10 ** 6)) + b"\0" * 16)
    cases.append(("declared.npz", "over the 1,073,741,824 read"))
    with zipfile.ZipFile(root / "lying.npz", "w") as archive:
        archive.writestr("x.npy", header((64,) + SHAPE) + b"\0" * 16)
    cases.append(("lying.npz", "declares 524,288 bytes but holds 16"))
    with zipfile.ZipFile(root / "zeros.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as handle:
            handle.write(header((1100, 512, 512, 1)))
            for _ in range(1100 // 4):
                handle.write(bytes(2 ** 20 * 4))
    cases.append(("zeros.npz", "over the 1,073,741,824 read"))
    np.savez(root / "strings.npz", x=np.array(["a", "b"]))
    cases.append(("strings.npz", "not an array of numbers"))
    np.savez(root / "scalar.npz", x=np.float32(3))
    cases.append(("scalar.npz", "not an array of numbers"))
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((4,) + SHAPE, "float32"))
    with zipfile.ZipFile(root / "crc.npz", "w") as archive:
        archive.writestr("x.npy", buffer.getvalue())
    data = bytearray((root / "crc.npz").read_bytes())
    data[300] ^= 0xFF
    (root / "crc.npz").write_bytes(bytes(data))
    cases.append(("crc.npz", "Bad CRC-32"))
    return cases


def test_hostile_calibration_and_finetune_data_is_one_line(files, capsys, tmp_path):
    """Each hostile ``.npz`` behind ``--calibration-data`` or ``--finetune``: exit 2, one
    line naming the file and the problem (was "internal error ... please report it", a
    MemoryError for a declared 4 TB array); its header is read before any allocation and
    nothing in it is unpickled."""
    paths, _, _ = files
    out = tmp_path / "never.keras"
    for name, problem in _hostile_npz(tmp_path):
        for flag in ("--calibration-data", "--finetune"):
            status, _, err = run_cli(capsys, "--fix", paths["model"], "-o", out,
                                     "--fix-select", "large-kernel", flag, tmp_path / name)
            lines = err.strip().splitlines()
            assert status == 2 and len(lines) == 1, (name, flag, err)
            assert name in lines[0] and problem in lines[0], (flag, lines[0])
            assert "internal error" not in lines[0] and not out.exists()


def test_hostile_image_directory_is_one_line(capsys, tmp_path):
    """A directory of images behind ``--calibration-data`` holding a PNG whose header
    declares 9,000 × 9,000 pixels (a few bytes that would decode to 243 MB, and 30 GB at
    100,000 × 100,000): exit 2, one line naming the image, nothing written."""
    from test_weights_carry import _png_header
    model = tmp_path / "rgb.keras"
    keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(8, 5, padding="same")]).save(model)
    images = tmp_path / "images"
    images.mkdir()
    _png_header(images / "huge.png", 9000, 9000)
    out = tmp_path / "never.keras"
    status, _, err = run_cli(capsys, "--fix", model, "-o", out, "--fix-select",
                             "large-kernel", "--calibration-data", images)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert f"{images / 'huge.png'}: a 9,000 × 9,000 image" in lines[0]
    assert "internal error" not in lines[0] and not out.exists()


def _functional_with_scalar_variance(root):
    """A Functional conv → BN → Add model whose BN moving variance is stored as a
    scalar: Keras warns ("Skipping nested container ...") on stderr, then refuses."""
    import io
    import zipfile

    import h5py
    x = keras.Input((8, 8, 4))
    y = L.BatchNormalization(name="bn")(L.Conv2D(4, 3, padding="same", name="c")(x))
    keras.Model(x, L.ReLU(name="r")(L.Add(name="a")([x, y]))).save(root / "func.keras")
    with zipfile.ZipFile(root / "func.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    buffer = io.BytesIO(members["model.weights.h5"])
    with h5py.File(buffer, "a") as h5:
        group = h5["layers/batch_normalization/vars"]
        del group["3"]
        group.create_dataset("3", shape=(), dtype="float32")
    members["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(root / "bad.keras", "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return root / "bad.keras"


def test_keras_warnings_on_a_refused_load_are_not_printed(capsys, tmp_path):
    """The fuzz campaign: ``--fix`` printed Keras' two-line UserWarning before its own
    error line; the refusal is now the one line."""
    path = _functional_with_scalar_variance(tmp_path)
    status, _, err = run_cli(capsys, "--fix", path, "-o", tmp_path / "out.keras")
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert "cannot be loaded as a Keras model" in lines[0]
    assert not (tmp_path / "out.keras").exists()


def test_a_partial_load_is_refused(monkeypatch, tmp_path):
    """A load Keras completes while warning that it left layers at fresh initial
    weights is refused: a fixed model would be written with those weights lost."""
    import warnings

    from keras_cnnkit import io_guard
    from keras_cnnkit.errors import ModelFileError
    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((4,)), L.Dense(2)]).save(path)

    def partial(*_args, **_kwargs):
        warnings.warn("Skipping nested container at 'x': no matching group found in the "
                      "saved file. Affected layers will retain their freshly-initialized "
                      "weights.", UserWarning)
        return keras.Sequential([keras.Input((4,)), L.Dense(2)])

    monkeypatch.setattr(keras.models, "load_model", partial)
    with pytest.raises(ModelFileError, match="loaded its weights only in part"):
        io_guard.load_keras_model(path)
