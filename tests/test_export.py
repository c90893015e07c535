"""``keras_cnnkit.export``: tf2onnx export, verification, atomic writes, the CLI.

The exported files are checked here with onnxruntime on inputs of the test's own making,
independently of the exporter's built-in verification.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")
ort = pytest.importorskip("onnxruntime")

from keras import layers as L  # noqa: E402  pylint: disable=wrong-import-position

from keras_cnnkit.export import (  # noqa: E402  pylint: disable=wrong-import-position
    ExportError,
    export_onnx,
    main,
    split_group_convs,
)
from keras_cnnkit.layers import GroupConv  # noqa: E402  pylint: disable=wrong-import-position
from onnx_utils import randomize  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order


_randomize = randomize


def _onnx_outputs(path, *inputs):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def _grouped_sequential():
    return _randomize(keras.Sequential([
        keras.Input((16, 16, 8)),
        L.Conv2D(16, 3, groups=4, activation="relu", name="grouped"),
        L.BatchNormalization(),
        GroupConv(8, 1, groups=2, implementation="native", name="native_group"),
        L.Flatten(),
        L.Dense(3, name="head"),
    ], name="seq"))


def test_sequential_with_group_convs(tmp_path, rng):
    """Sequential (tensorflow-onnx issue 2448) with a grouped Conv2D and a native
    GroupConv (issue 2099): both exported in split form, same outputs as Keras."""
    model = _grouped_sequential()
    path = tmp_path / "seq.onnx"
    result = export_onnx(model, path)
    assert result.path == str(path) and path.stat().st_size == result.size_bytes
    assert set(result.split_group_convs) == {"grouped", "native_group"}
    assert result.output_names == ("head",)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-3
    x = rng.normal(size=(4, 16, 16, 8)).astype("float32")
    (got,) = _onnx_outputs(path, x)
    np.testing.assert_allclose(got, model(x, training=False), rtol=1e-4, atol=1e-4)
    assert not [p for p in os.listdir(tmp_path) if p != "seq.onnx"]   # no temp file left


def test_split_clone_keeps_weights_and_function(rng):
    model = _grouped_sequential()
    clone, names = split_group_convs(model)
    assert clone is not model and set(names) == {"grouped", "native_group"}
    x = rng.normal(size=(2, 16, 16, 8)).astype("float32")
    np.testing.assert_allclose(clone(x), model(x), rtol=1e-5, atol=1e-5)
    plain = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    assert split_group_convs(plain) == (plain, ())


def test_functional_two_inputs_two_outputs(tmp_path, rng):
    a, b = keras.Input((12, 12, 3), name="image"), keras.Input((5,), name="meta")
    x = L.GlobalAveragePooling2D()(L.Conv2D(4, 3, name="conv")(a))
    joined = L.Concatenate()([x, b])
    model = _randomize(keras.Model([a, b], [L.Dense(2, name="left")(joined),
                                            L.Dense(1, name="right")(joined)]))
    result = export_onnx(model, tmp_path / "two.onnx", opset=15)
    assert result.input_names == ("image", "meta") and result.output_names == ("left", "right")
    assert result.opset == 15
    xa = rng.normal(size=(3, 12, 12, 3)).astype("float32")
    xb = rng.normal(size=(3, 5)).astype("float32")
    for got, want in zip(_onnx_outputs(tmp_path / "two.onnx", xa, xb), model([xa, xb])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_outputs_keep_the_keras_order(tmp_path, rng):
    """Outputs named out of alphabetical order ("zeta", then "alpha") stay in Keras' order in
    the ONNX graph (tf2onnx sorts a dict's keys); GoogLeNet's auxiliary heads need this."""
    inp = keras.Input((6,), name="x")
    model = _randomize(keras.Model(inp, [L.Dense(3, name="zeta")(inp),
                                         L.Dense(1, name="alpha")(inp)]))
    result = export_onnx(model, tmp_path / "order.onnx")
    assert result.output_names == ("zeta", "alpha")
    x = rng.normal(size=(2, 6)).astype("float32")
    for got, want in zip(_onnx_outputs(tmp_path / "order.onnx", x), model(x)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_verification_failure_writes_nothing(tmp_path):
    """A tolerance no float computation meets: an error, and no file."""
    path = tmp_path / "strict.onnx"
    with pytest.raises(ExportError, match="disagree"):
        export_onnx(_grouped_sequential(), path, tolerance=1e-12)
    assert not path.exists() and os.listdir(tmp_path) == []


def test_no_overwrite_and_bad_paths(tmp_path):
    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    existing = tmp_path / "old.onnx"
    existing.write_bytes(b"keep me")
    with pytest.raises(ExportError, match="already exists"):
        export_onnx(model, existing, overwrite=False)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(model, tmp_path / "missing_dir" / "m.onnx")
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(model, existing / "under_a_file.onnx")
    with pytest.raises(ExportError, match="is a directory"):
        export_onnx(model, tmp_path)
    result = export_onnx(model, existing, overwrite=True)
    assert existing.read_bytes()[:8] != b"keep me" and result.max_abs_diff < 1e-5


def test_subclassed_needs_input_shape(tmp_path):
    class Tiny(keras.Model):  # pylint: disable=abstract-method,too-many-ancestors
        """A subclassed model with no symbolic inputs."""

        def __init__(self):
            super().__init__()
            self.dense = L.Dense(3)

        def call(self, inputs):  # pylint: disable=arguments-differ
            return self.dense(inputs)

    model = Tiny()
    with pytest.raises(ExportError, match="input_shape"):
        export_onnx(model, tmp_path / "t.onnx")
    result = export_onnx(model, tmp_path / "t.onnx", input_shape=(7,))
    assert result.max_abs_diff < 1e-5


# --- the command line -------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A small grouped-conv model saved as .keras."""
    path = tmp_path_factory.mktemp("cli") / "model.keras"
    _grouped_sequential().save(path)
    return path


def test_cli_exports_and_refuses_to_overwrite(saved_model, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    # the tf2onnx path (the IR exporter writes grouped convs as they are: test_export_ir)
    assert main([str(saved_model), "-o", str(out), "--via", "tf2onnx"]) == 0
    printed = capsys.readouterr().out
    assert "max |diff|" in printed and "split form: grouped, native_group" in printed
    first = out.read_bytes()
    assert main([str(saved_model), "-o", str(out), "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == first
    assert main([str(saved_model), "-o", str(out), "--force", "--no-verify"]) == 0
    assert "not verified" in capsys.readouterr().out


def _bad_input_cases(tmp_path, saved_model):
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(np.random.default_rng(1).bytes(2048))
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(saved_model.read_bytes()[:500])
    plain_file = tmp_path / "plain.txt"
    plain_file.write_text("x")
    return [
        ([str(tmp_path / "missing.keras"), "-o", str(tmp_path / "a.onnx")], "no such file"),
        # The static read within the budgets comes first, and says what is wrong.
        ([str(corrupt), "-o", str(tmp_path / "b.onnx")], "not a model file"),
        ([str(truncated), "-o", str(tmp_path / "c.onnx")], "damaged zip archive"),
        ([str(tmp_path), "-o", str(tmp_path / "d.onnx")], "not a file"),
        ([str(saved_model), "-o", str(plain_file / "e.onnx")], "does not exist"),
        ([str(saved_model), "-o", str(tmp_path / "nodir" / "f.onnx")], "does not exist"),
        ([str(saved_model), "-o", str(tmp_path)], "is a directory"),
        # /proc takes no new files, even from root: found only when writing.
        ([str(saved_model), "-o", "/proc/cnnkit_export_test.onnx"], "cannot write"),
    ]


def test_cli_bad_input_one_line_exit_2(saved_model, tmp_path, capsys):
    before = saved_model.read_bytes()
    for argv, problem in _bad_input_cases(tmp_path, saved_model):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("cnnkit-export: error: ") and problem in err, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert saved_model.read_bytes() == before
    assert not list(tmp_path.glob("*.onnx"))


def test_cli_never_runs_lambda_code(tmp_path):
    """Safe mode: a .keras holding a Lambda is refused; its code never runs."""
    marker = tmp_path / "marker"
    inp = keras.Input((3,))
    # The path is a literal in the lambda's code (a closure variable would not serialise).
    code = f"lambda t: t + float(len(open({str(marker)!r}, 'w', encoding='utf8').name))"
    out = L.Lambda(eval(code))(inp)  # pylint: disable=eval-used
    path = tmp_path / "lambda.keras"
    keras.Model(inp, out).save(path)
    assert marker.exists()          # the lambda does write it when it runs
    marker.unlink()
    proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.export", str(path), "-o",
                           str(tmp_path / "l.onnx")], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("cnnkit-export: error: ") and "Traceback" not in proc.stderr
    assert "safe" in lines[-1].lower()
    assert not marker.exists() and not (tmp_path / "l.onnx").exists()
