"""``cnnkit-lint --fix`` and ``cnnkit-lint --benchmark``: the command line of the fixer and
of the benchmark harness.

The fixed models' parameter counts are worked out by hand below (see :data:`TINY_PARAMS`),
not taken from the linter.  The benchmark tests use batch 1 and few findings to stay fast.
"""
import hashlib
import io
import json

import keras
import pytest
import static_model_files as smf

from keras_cnnkit.lint import cli
from keras_cnnkit.lint.cli import main

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

L = keras.layers

#: ``tiny``: img (8, 8, 32) → conv 3×3 32→8 (bias) → BN → ReLU → Flatten → Dense 4.
#: (32 input channels: depthwise-separable-candidate is silent on narrower convs.)
TINY_PARAMS = {"conv": 9 * 32 * 8 + 8, "bn": 4 * 8, "fc": 8 * 8 * 8 * 4 + 4}
#: After bias-before-batchnorm and flatten-dense-head: the conv loses its 8 biases, the
#: Dense sees the 8 pooled channels.
FIXED_BIAS_HEAD = (9 * 32 * 8) + 4 * 8 + (8 * 4 + 4)
#: After every fix (``--fix-select ALL``): the depthwise-separable form of the conv (the
#: architectural alternative), with the bias drop merged into it, so its pointwise conv
#: has no bias: depthwise 3·3·32 + 32, pointwise 32·8, BN, pooled Dense.
FIXED_ALL = (9 * 32 + 32) + (32 * 8) + 4 * 8 + (8 * 4 + 4)
#: After a bare --fix: on the default profile (cpu-generic) the separable conv and the
#: GAP head over this 8×8×8 map are not predicted faster at batch 1, so only the exact
#: bias drop is recommended: the conv loses its 8 biases.
FIXED_BARE = sum(TINY_PARAMS.values()) - 8
#: FIXED_ALL with the weights carried (the default): the depthwise conv carries the
#: original's kernel by an SVD per input channel, linear and without its 32 biases.
FIXED_ALL_CARRIED = FIXED_ALL - 32
MEASURED = ("latency_before_ms", "latency_after_ms", "speedup")


def run_cli(capsys, *args):
    """``(status, stdout, stderr)`` of ``cnnkit-lint --no-config --min-impact 0 args``
    (every site: dropping ``tiny``'s 8 biases saves 0.2% of it, below the default 1%;
    a test of the threshold passes its own ``--min-impact``)."""
    status = main(["--no-config", "--min-impact", "0"] + [str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def digest(path) -> str:
    """SHA-256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def one_error_line(err: str, *parts: str) -> str:
    """The single ``cnnkit-lint: error:`` line of ``err`` (argparse may print the usage
    before it); no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("cnnkit-lint: error:")]
    assert len(errors) == 1, err
    for part in parts:
        assert part in errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``tiny.h5`` (conv bias before BN, Flatten → Dense head) and ``trojan.h5`` (the
    same with a Lambda that writes a marker file whenever it runs, and a 5×5 conv)."""
    root = tmp_path_factory.mktemp("models")
    x = keras.Input((8, 8, 32), name="img")
    y = L.Conv2D(8, 3, padding="same", name="conv")(x)
    y = L.BatchNormalization(name="bn")(y)
    y = L.ReLU(name="relu")(y)
    y = L.Flatten(name="flat")(y)
    tiny = keras.Model(x, L.Dense(4, name="fc")(y), name="tiny")
    assert tiny.count_params() == sum(TINY_PARAMS.values())

    marker = root / "MARKER"
    # The path is a constant of the lambda's own code object, so the bytecode Keras
    # marshals into the file is self-contained (as in test_security_static.py).
    fn = eval(  # pylint: disable=eval-used
        f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('pwned'), t)[1]")
    x = keras.Input((8, 8, 3), name="img")
    y = L.Conv2D(8, 3, padding="same", name="conv")(x)
    y = L.Lambda(fn, name="evil")(y)
    y = L.Conv2D(8, 5, padding="same", name="conv5")(y)
    y = L.Flatten(name="flat")(y)
    trojan = keras.Model(x, L.Dense(4, name="fc")(y), name="trojan")
    paths = {"tiny": smf.save_quietly(tiny, root / "tiny.h5"),
             "trojan": smf.save_quietly(trojan, root / "trojan.h5")}
    marker.unlink()  # building the model ran the Lambda once
    return paths, marker


def load(path):
    """``keras.models.load_model`` with keras_cnnkit's layers registered."""
    import keras_cnnkit.layers  # noqa: F401  pylint: disable=unused-import
    return keras.models.load_model(path, compile=False)


# --- --fix ---------------------------------------------------------------------------

def test_fix_writes_a_loadable_model_and_keeps_the_input(capsys, files, tmp_path):
    """--fix-select: the two chosen fixes written to -o, the input untouched."""
    tiny = files[0]["tiny"]
    before = digest(tiny)
    out = tmp_path / "fixed.keras"
    status, stdout, err = run_cli(capsys, "--fix", tiny, "-o", out,
                                  "--fix-select", "CNK105,bias-before-batchnorm")
    assert status == 0, err
    assert digest(tiny) == before
    fixed = load(out)
    assert fixed.count_params() == FIXED_BIAS_HEAD
    assert not fixed.get_layer("conv").use_bias
    assert fixed.input_shape == (None, 8, 8, 32) and fixed.output_shape == (None, 4)
    lines = stdout.splitlines()
    assert any(line.startswith("fixed CNK108 bias-before-batchnorm at conv (weights exact): "
                               "FLOPs 295,424 → 294,912; subgraph error 0.00%")
               for line in lines)
    assert any(line.startswith("fixed CNK105 flatten-dense-head at fc (weights approximate: "
                               "GAP head from the Dense kernel summed over positions)")
               and "subgraph error" in line for line in lines)
    assert any(line.startswith("whole model: output error ") for line in lines)
    assert any("random inputs, which are a weak proxy" in line for line in lines)
    assert any("not fixed CNK104" in line and "not selected" in line for line in lines)
    summary = next(line for line in lines if line.startswith("wrote "))
    assert f"params {sum(TINY_PARAMS.values()):,} → {FIXED_BIAS_HEAD:,}" in summary
    assert "FLOPs " in summary
    assert "retrain" in lines[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fixed.keras"]  # no temp files


def test_bare_fix_applies_only_what_is_not_slower(capsys, files, tmp_path):
    """No --fix-select: each finding's recommended alternative, never one predicted
    slower; what is left is said, with how to force it."""
    out = tmp_path / "fixed.h5"
    status, stdout, err = run_cli(capsys, "--fix", files[0]["tiny"], "-o", out,
                                  "--format", "json")
    assert status == 0, err
    data = json.loads(stdout)
    assert (data["params_before"], data["params_after"]) == \
        (sum(TINY_PARAMS.values()), FIXED_BARE)
    assert [a["symbol"] for a in data["applied"]] == ["bias-before-batchnorm"]
    (head,) = data["skipped"]
    assert head["symbol"] == "flatten-dense-head"
    assert "saves parameters, not time" in head["reason"]
    assert "--fix-select CNK105" in head["reason"]
    assert load(out).count_params() == FIXED_BARE


def test_fix_json_applies_every_reported_fix(capsys, files, tmp_path):
    """--fix-select ALL: every site's fix, slower ones included (the architectural
    alternative, with the bias drop merged into it), summary as JSON, an .h5 output."""
    out = tmp_path / "fixed.h5"
    status, stdout, err = run_cli(capsys, "--fix", files[0]["tiny"], "-o", out,
                                  "--format", "json", "--fix-select", "ALL")
    assert status == 0, err
    data = json.loads(stdout)
    assert (data["params_before"], data["params_after"]) == \
        (sum(TINY_PARAMS.values()), FIXED_ALL_CARRIED)
    assert data["flops_after"] < data["flops_before"]
    assert {a["symbol"] for a in data["applied"]} == {"depthwise-separable-candidate",
                                                      "flatten-dense-head"}
    assert data["needs_retraining"] is True and data["remaining"] == []
    assert [(m["symbol"], m["into"]["symbol"]) for m in data["merged"]] == \
        [("bias-before-batchnorm", "depthwise-separable-candidate")]
    assert load(out).count_params() == FIXED_ALL_CARRIED
    weights = {a["symbol"]: a["weights"] for a in data["applied"]}
    assert weights["depthwise-separable-candidate"] == (
        "approximate: depthwise × pointwise SVD per input channel rank 1")
    assert all(a["fidelity"]["subgraph_error"] is not None for a in data["applied"])
    assert data["fidelity"]["random_inputs"] and data["fidelity"]["top1_agreement"] is not None


def test_fix_honours_the_rule_selection(capsys, files, tmp_path):
    """--ignore applies to what --fix fixes, as to what the linter reports."""
    out = tmp_path / "fixed.keras"
    status, stdout, err = run_cli(capsys, "--fix", files[0]["tiny"], "-o", out,
                                  "--ignore", "CNK104,CNK105")
    assert status == 0, err
    assert "fixed CNK108 bias-before-batchnorm at conv" in stdout
    assert "CNK104" not in stdout and "CNK105" not in stdout
    assert load(out).count_params() == sum(TINY_PARAMS.values()) - 8


def test_fix_refuses_to_overwrite_without_force(capsys, files, tmp_path):
    """An existing -o file is kept (exit 2, one line) unless --force is given."""
    out = tmp_path / "fixed.keras"
    out.write_bytes(b"keep me")
    status, stdout, err = run_cli(capsys, "--fix", files[0]["tiny"], "-o", out)
    assert status == 2 and stdout == ""
    one_error_line(err, str(out), "already exists", "--force")
    assert out.read_bytes() == b"keep me"
    status, _, err = run_cli(capsys, "--fix", files[0]["tiny"], "-o", out, "--force")
    assert status == 0, err
    assert load(out).count_params() == FIXED_BARE


@pytest.mark.parametrize("where", ["/proc/cnnkit-out.keras", "missing_dir/out.keras",
                                   "out.txt"])
def test_fix_unwritable_output_is_one_line(capsys, files, tmp_path, where):
    """Including a directory no one can create files in (even root: /proc)."""
    tiny = files[0]["tiny"]
    before = digest(tiny)
    out = where if where.startswith("/") else tmp_path / where
    status, stdout, err = run_cli(capsys, "--fix", tiny, "-o", out)
    assert status == 2 and stdout == ""
    one_error_line(err, str(out))
    assert digest(tiny) == before


def test_fix_of_a_lambda_file_is_refused_without_running_it(capsys, files, tmp_path):
    """--fix loads safely: the Lambda is refused, never run, and nothing is written."""
    paths, marker = files
    status, _, err = run_cli(capsys, "--fix", paths["trojan"], "-o", tmp_path / "out.keras")
    assert status == 2
    one_error_line(err, paths["trojan"], "Lambda")
    assert not marker.exists() and not (tmp_path / "out.keras").exists()


@pytest.mark.parametrize("args, problem", [
    (["--fix", "{tiny}"], "--fix needs -o FILE"),
    (["--fix", "{tiny}", "{tiny}", "-o", "x.keras"], "exactly one model file"),
    (["--fix", "{tiny}", "-o", "x.keras", "--benchmark"], "cannot be combined"),
    (["--fix", "{tiny}", "-o", "x.keras", "--fix-select", "NOPE"], "--fix-select"),
    (["{tiny}", "--force"], "--force needs --fix"),
    (["{tiny}", "--fix-select", "CNK105"], "--fix-select needs --fix"),
    (["{tiny}", "--batch", "1"], "--batch needs --benchmark"),
    (["{tiny}", "--train"], "--train needs --benchmark"),
    (["--benchmark", "{tiny}", "--batch", "0"], "not a positive integer"),
    (["--benchmark", "{tiny}", "--dtype", "float64"], "invalid choice"),
    (["--benchmark", "{tiny}", "--write-baseline", "b.json"], "cannot be combined"),
])
def test_usage_errors_exit_2(capsys, files, tmp_path, monkeypatch, args, problem):
    """Flag combinations that make no sense are one-line usage errors, exit 2."""
    monkeypatch.chdir(tmp_path)
    args = [a.format(tiny=files[0]["tiny"]) for a in args]
    status, stdout, err = run_cli(capsys, *args)
    assert status == 2 and stdout == ""
    one_error_line(err, problem)
    assert not (tmp_path / "x.keras").exists()


# --- --benchmark ---------------------------------------------------------------------

def test_benchmark_json_has_the_measurements(capsys, files):
    """Each fix timed: positive latencies at top level, the device, saving order."""
    # --verbose-json: every alternative in full (its layer, whether it is recommended)
    status, stdout, err = run_cli(capsys, files[0]["tiny"], "--benchmark", "--format",
                                  "json", "--verbose-json", "--batch", "1")
    assert status == 1, err  # the findings are warnings; --fail-on warning
    (model,) = json.loads(stdout)["models"]
    bench = model["benchmark"]
    device = bench["device"]["label"]
    assert device.startswith(("cpu:", "gpu:")) and bench["device"]["name"]
    assert bench["batches"] == [1] and bench["dtype"] == "float32"
    findings = model["findings"]
    assert {a["symbol"] for f in findings for a in f["alternatives"]} == {
        "bias-before-batchnorm", "flatten-dense-head", "depthwise-separable-candidate"}
    for finding in findings:
        assert all(finding[key] > 0 for key in MEASURED), finding
        assert finding["device"] == device
        assert finding["speedup"] == pytest.approx(
            finding["latency_before_ms"] / finding["latency_after_ms"])
    # every alternative was timed (its label in the benchmark); a conclusive run is its
    # measured speed-up
    timed = set(bench["findings"])
    assert {f"{a['code']} {a['symbol']} @ {a['layer']}" for f in findings
            for a in f["alternatives"]} <= timed
    assert all(set(a["measured_speedup"]) <= {"1"} for f in findings
               for a in f["alternatives"])
    # the whole-model A/B applies what a bare --fix would: each recommended alternative
    recommended = sorted(f"{a['code']} {a['symbol']} @ {a['layer']}" for f in findings
                         for a in f["alternatives"] if a["recommended"] or a["companion"])
    assert sorted(bench["whole_model"]["fixes"]) == recommended
    runs = bench["whole_model"]["runs"]
    assert [r["batch"] for r in runs] == ([1] if recommended else [])


def test_benchmark_text_column_and_quiet_progress(capsys, files):
    """Text: a [measured ...] suffix and the benchmark table; the progress bar is
    silent because stderr is not a terminal here."""
    status, stdout, err = run_cli(capsys, files[0]["tiny"], "--benchmark", "--batch", "1",
                                  "--select", "CNK105")
    assert status == 1
    line = next(ln for ln in stdout.splitlines() if "CNK105 flatten-dense-head" in ln)
    assert " [measured " in line and " ms (" in line and "×, b1)]" in line
    assert any(ln.startswith(f"{files[0]['tiny']}: benchmark on ")
               for ln in stdout.splitlines())
    # the whole model with what a bare --fix applies: the head if measured faster
    assert "whole model (1 fixes)" in stdout or "skipped: whole model: no fix to apply" \
        in stdout
    assert err == ""


class _Terminal(io.StringIO):
    """A StringIO that says it is a terminal."""

    def isatty(self):
        """Pretend to be a terminal."""
        return True


def test_benchmark_progress_bar_on_a_terminal(capsys, files, monkeypatch):
    """The progress bar is drawn on stderr when it is a terminal, never on stdout."""
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    status, stdout, _ = run_cli(capsys, files[0]["tiny"], "--benchmark", "--batch", "1",
                                "--select", "CNK105", "--format", "json")
    assert status == 1
    drawn = terminal.getvalue()
    assert "benchmark" in drawn and "2/2" in drawn      # rich's bar, complete
    assert "\x1b[" not in stdout and "2/2" not in stdout
    json.loads(stdout)


def test_benchmark_progress_bar_is_off_with_quiet(capsys, files, monkeypatch):
    """``-q`` turns the bar off even on a terminal."""
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr("keras_cnnkit.progress._QUIET", False)   # restored afterwards
    status, _, _ = run_cli(capsys, files[0]["tiny"], "--benchmark", "--batch", "1",
                           "--select", "CNK105", "--format", "json", "-q")
    assert status == 1
    assert terminal.getvalue() == ""


@pytest.mark.parametrize("fail_on, expected", [("warning", 1), ("error", 0)])
def test_benchmark_of_a_lambda_file_never_runs_it(capsys, files, fail_on, expected):
    """The opaque Lambda is named as skipped, the fixes elsewhere are timed, the exit
    status follows --fail-on, and the Lambda's marker file never appears."""
    paths, marker = files
    status, stdout, err = run_cli(capsys, paths["trojan"], "--benchmark", "--batch", "1",
                                  "--format", "json", "--select", "CNK001,CNK105",
                                  "--fail-on", fail_on)
    assert not marker.exists()
    assert status == expected, err
    (model,) = json.loads(stdout)["models"]
    skipped = {s["what"]: s["why"] for s in model["benchmark"]["skipped"]}
    assert "evil" in skipped["whole model"]
    by_symbol = {f["symbol"]: f for f in model["findings"]}
    assert by_symbol["opaque-layer"]["layer"] == "evil"
    assert "latency_before_ms" not in by_symbol["opaque-layer"]
    assert by_symbol["flatten-dense-head"]["latency_before_ms"] > 0
    assert [f["symbol"] for f in model["findings"]] == ["flatten-dense-head",
                                                        "opaque-layer"]


def test_dtype_choices_match_the_harness():
    """The CLI's --dtype choices are the harness's (repeated there to avoid Keras)."""
    from keras_cnnkit.bench import DTYPES
    assert cli.BENCH_DTYPES == DTYPES


@pytest.mark.slow
def test_benchmark_training_steps_and_mixed_precision(capsys, files):
    """--train and --dtype reach the harness; the primary run is the largest batch."""
    status, stdout, err = run_cli(capsys, files[0]["tiny"], "--benchmark", "--train",
                                  "--dtype", "mixed_float16", "--format", "json",
                                  "--select", "CNK105", "--batch", "1", "2")
    assert status == 1, err
    (model,) = json.loads(stdout)["models"]
    assert model["benchmark"]["dtype"] == "mixed_float16"
    (finding,) = model["findings"]
    runs = finding["measurements"]["runs"]
    assert {(r["batch"], r["mode"]) for r in runs} == {
        (1, "inference"), (1, "train"), (2, "inference"), (2, "train")}
    assert finding["measurements"]["batch"] == 2
    assert finding["measurements"]["train_latency_before_ms"] > 0
