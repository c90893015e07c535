"""``cnnkit-lint``: formats, exit codes, selection, configuration, suppressions, baselines.

Most tests lint the bundled ``examples/models/inefficient_cnn.h5``.  Its figures are
worked out by hand here (see :data:`EXAMPLE_PARAMS`), not taken from the linter.
"""
import io
import json
import os
import shutil
import subprocess
import sys

import jsonschema
import pytest
import static_model_files as smf

from keras_cnnkit.lint.cli import main

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLE = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")
# The official SARIF 2.1.0 JSON schema (OASIS), vendored so the tests are self-contained.
SARIF_SCHEMA = os.path.join(ROOT, "tests", "data", "sarif-schema-2.1.0.json")

#: Parameters of the example, layer by layer: conv k·k·Cin·Cout + Cout, BN 4·C,
#: dense in·out + out (flatten: 8·8·256 = 16,384 inputs).
EXAMPLE_PARAMS = {"stem_conv": 9 * 3 * 64 + 64, "stem_bn": 4 * 64,
                  "conv5x5": 25 * 64 * 64 + 64, "widen_conv": 9 * 64 * 256 + 256,
                  "wide_conv": 9 * 256 * 256 + 256, "bn": 4 * 256,
                  "classifier": 16_384 * 10 + 10}
#: MACs: H_o·W_o·C_out·k·k·C_in per conv (32×32 before the first pool, 16×16 after),
#: in·out for the dense layer.
EXAMPLE_MACS = (32 * 32 * 64 * 9 * 3 + 32 * 32 * 64 * 25 * 64 + 16 * 16 * 256 * 9 * 64
                + 16 * 16 * 256 * 9 * 256 + 16_384 * 10)
#: The 256→256 3×3 conv as a bottleneck: 1×1 256→64, 3×3 64→64, 1×1 64→256, with biases.
BOTTLENECK_PARAMS = (256 * 64 + 64) + (9 * 64 * 64 + 64) + (64 * 256 + 256)
#: Symbols the linter issue names; each must be listed and explainable.
ISSUE_SYMBOLS = ["large-kernel", "asymmetric-factorization", "missing-bottleneck",
                 "depthwise-separable-candidate", "flatten-dense-head",
                 "relu-after-projection", "group-conv-without-shuffle",
                 "bias-before-batchnorm", "dropout-before-batchnorm", "plain-deep-stack",
                 "tensor-core-alignment", "opaque-layer"]


@pytest.fixture(autouse=True)
def cwd(tmp_path, monkeypatch):
    """Every test runs in an empty directory (configuration files above it are not
    ours to control, so tests that must not see one pass --no-config)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lint(capsys, *args):
    """``(status, stdout, stderr)`` of ``cnnkit-lint args``."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_text_output(capsys):
    """pylint-like lines with exact savings, then the per-model table and totals."""
    status, out, err = lint(capsys, EXAMPLE, "--no-config")
    assert status == 1 and err == ""
    lines = out.splitlines()
    wide = [ln for ln in lines if ln.startswith(f"{EXAMPLE}:wide_conv: CNK103 "
                                                "missing-bottleneck: ")]
    assert len(wide) == 1
    before, after = EXAMPLE_PARAMS["wide_conv"], BOTTLENECK_PARAMS
    pct = round(100 * (after - before) / before)
    assert f"[params {before:,} → {after:,} (−{-pct}%), FLOPs " in wide[0]
    # one line per site: the conv's other rules are its alternatives
    assert "others: CNK102 asymmetric-factorization" in wide[0]
    assert "CNK104 depthwise-separable-candidate ≈1.3× slower: saves parameters, not time" \
        in wide[0]
    assert f"{EXAMPLE}:classifier: CNK105 flatten-dense-head: " in out
    conv5 = next(ln for ln in lines if ln.startswith(f"{EXAMPLE}:conv5x5: "))
    assert "CNK101 large-kernel" in conv5
    # the bias drop saves 64 of 1,007,178 params: below --min-impact 1%, counted
    assert f"{EXAMPLE}:stem_conv: " not in out
    _, everything, _ = lint(capsys, EXAMPLE, "--no-config", "--min-impact", "0")
    assert f"{EXAMPLE}:stem_conv: CNK108 bias-before-batchnorm: " in everything
    row = next(ln for ln in lines if ln.startswith(EXAMPLE + " "))
    cells = row.split()
    assert cells[1:5] == ["12", f"{sum(EXAMPLE_PARAMS.values()):,}", f"{EXAMPLE_MACS:,}",
                          cells[4]]
    assert lines[-1].endswith("in 1 model; 2 below --min-impact 1%.")
    assert any(ln.startswith("speed-ups predicted on device profile cpu-generic ")
               for ln in lines)
    # the findings, largest impact first: wide_conv saves 52% of the params
    assert lines[0].startswith(f"{EXAMPLE}:wide_conv: ")
    status, quiet, _ = lint(capsys, EXAMPLE, "--no-config", "-q")
    assert status == 1 and quiet.splitlines() == [ln for ln in lines if ln.startswith(
        EXAMPLE + ":")]


def test_json_output(capsys):
    """JSON: schema version, per-model summary and every documented Finding field (the
    replacement graph only with --verbose-json, see tests/test_output_contract.py)."""
    status, out, _ = lint(capsys, EXAMPLE, "--no-config", "--format", "json")
    assert status == 1
    data = json.loads(out)
    assert data["schema_version"] == 3 and data["tool"]["name"] == "cnnkit-lint"
    (model,) = data["models"]
    summary = model["summary"]
    assert summary["params"] == sum(EXAMPLE_PARAMS.values())
    assert summary["macs"] == EXAMPLE_MACS
    assert summary["layer_count"] == 12
    assert summary["unknown_cost_layers"] == [] and summary["opaque_layers"] == []
    assert summary["flops"] > 2 * EXAMPLE_MACS
    finding = next(f for f in model["findings"]
                   if f["symbol"] == "missing-bottleneck" and f["layer"] == "wide_conv")
    assert set(finding) >= {"code", "symbol", "severity", "layer", "message", "suggestion",
                            "params_before", "params_after", "macs_before", "macs_after",
                            "flops_before", "flops_after", "needs_retraining"}
    assert "replacement" not in finding
    assert (finding["code"], finding["severity"]) == ("CNK103", "warning")
    assert (finding["params_before"], finding["params_after"]) == \
        (EXAMPLE_PARAMS["wide_conv"], BOTTLENECK_PARAMS)
    assert finding["macs_before"] == 16 * 16 * 256 * 9 * 256
    assert finding["params_share"] == pytest.approx(
        (EXAMPLE_PARAMS["wide_conv"] - BOTTLENECK_PARAMS) / sum(EXAMPLE_PARAMS.values()))
    assert finding["recommended"] == 0 and "cpu-generic" in finding["why"]
    alternatives = {a["symbol"]: a for a in finding["alternatives"]}
    assert set(alternatives) == {"missing-bottleneck", "depthwise-separable-candidate",
                                 "asymmetric-factorization"}
    separable = alternatives["depthwise-separable-candidate"]
    assert separable["slower"]
    assert finding["alternatives"][finding["recommended"]]["symbol"] == "missing-bottleneck"
    assert set(separable["predicted_speedup"]) == {"1", "32"}
    assert finding["profile"] == "cpu-generic" and separable["weights"] == (
        "approximate: depthwise × pointwise SVD per input channel rank 1")
    assert "preserves_function" not in separable      # in brief without --verbose-json
    assert model["below_min_impact"] == 2 and model["min_impact"] == 0.01
    assert model["savings"]["flops"] <= summary["flops"]
    assert model["device_profile"]["name"] == "cpu-generic"
    assert data["totals"]["findings"] == len(model["findings"])
    assert data["errors"] == []


def _sarif(capsys, *paths):
    status, out, err = lint(capsys, *paths, "--no-config", "--format", "sarif")
    data = json.loads(out)
    with open(SARIF_SCHEMA, encoding="utf-8") as fh:
        jsonschema.validate(data, json.load(fh))
    return status, data, err


def test_sarif_output_is_valid_and_complete(capsys, cwd):
    """SARIF validates against the 2.1.0 schema and has rules, locations, fingerprints."""
    shutil.copy(EXAMPLE, cwd / "model.h5")
    status, data, _ = _sarif(capsys, "model.h5")
    assert status == 1 and data["version"] == "2.1.0"
    (run,) = data["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert {r["name"] for r in rules} >= set(ISSUE_SYMBOLS)
    for rule in rules:
        assert rule["id"].startswith("CNK")
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert "## What it does" in rule["help"]["markdown"]
    result = next(r for r in run["results"] if r["ruleId"] == "CNK103"
                  and r["message"]["text"].startswith("wide_conv: "))
    assert rules[result["ruleIndex"]]["id"] == "CNK103"
    assert result["level"] == "warning"
    location = result["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "model.h5"
    assert location["logicalLocations"][0]["name"] == "wide_conv"
    assert result["partialFingerprints"]
    assert run["invocations"][0]["executionSuccessful"] is True


def test_sarif_fingerprints_follow_rule_and_layer(capsys, cwd):
    """A finding keeps its fingerprint when the model changes elsewhere."""
    base = smf.conv_chain_config(2, size=16, channels=32)
    layers = base["config"]["layers"]
    layers[1]["config"].update(kernel_size=[5, 5], filters=64)   # c0: 32→64 5×5
    path = smf.write_json(cwd / "m.json", base)
    _, first, _ = _sarif(capsys, path)
    layers.append(smf.k3_layer("Conv2D", "extra", ["r1"], filters=64, kernel_size=[1, 1]))
    base["config"]["output_layers"] = ["extra", 0, 0]
    smf.write_json(cwd / "m.json", base)
    _, second, _ = _sarif(capsys, path)

    def prints(data):
        return {(r["ruleId"], r["message"]["text"].split(":")[0]):
                r["partialFingerprints"]["cnnkitRuleLayer/v1"] for r in data["runs"][0]["results"]}
    before, after = prints(first), prints(second)
    assert before and all(after[key] == value for key, value in before.items())


def test_sarif_reports_unreadable_files(capsys):
    """An unreadable file is a tool notification in SARIF and one line on stderr."""
    status, data, err = _sarif(capsys, "missing.h5")
    assert status == 2 and err == "cnnkit-lint: error: missing.h5: no such file\n"
    invocation = data["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"] == "no such file"


def test_github_output(capsys, cwd):
    """Workflow commands: one per finding, info as notice; an .h5 file is binary, so the
    annotation goes on its line 1."""
    shutil.copy(EXAMPLE, cwd / "model.h5")
    status, out, _ = lint(capsys, "model.h5", "--no-config", "--format", "github",
                          "--fail-on", "info")
    assert status == 1
    lines = out.splitlines()
    assert any(ln.startswith("::warning file=model.h5,line=1,title=CNK103 "
                             "missing-bottleneck::wide_conv: ") for ln in lines)
    assert all(ln.startswith(("::warning ", "::notice ", "::error ")) for ln in lines)
    _, out, _ = lint(capsys, "model.h5", "--no-config", "--format", "github",
                     "--select", "asymmetric-factorization")
    assert any(ln.startswith("::notice ") for ln in out.splitlines())  # info → notice


@pytest.mark.parametrize("args, status", [
    ((), 1),                                   # warnings, default --fail-on warning
    (("--fail-on", "error"), 0),
    (("--exit-zero",), 0),
    (("--select", "opaque-layer"), 0),         # nothing opaque in the example
    (("--select", "CNK102", "--fail-on", "info"), 1),   # an info finding fails at info
    (("--select", "CNK102"), 0),                         # ...but not at warning
])
def test_exit_status(capsys, args, status):
    """Exit status against --fail-on, --exit-zero and --select."""
    assert lint(capsys, EXAMPLE, "--no-config", *args)[0] == status


def test_input_errors_exit_2_even_with_exit_zero(capsys):
    """--exit-zero silences findings, never input errors."""
    status, _, err = lint(capsys, EXAMPLE, "nope.h5", "--no-config", "--exit-zero")
    assert status == 2 and err == "cnnkit-lint: error: nope.h5: no such file\n"


def _symbols(out):
    """The rules of the reported findings, their alternatives included."""
    return {a["symbol"] for f in json.loads(out)["models"][0]["findings"]
            for a in f["alternatives"]}


@pytest.mark.parametrize("args, expected", [
    (("--select", "CNK103"), {"missing-bottleneck"}),
    (("--select", "large-kernel,CNK105"), {"large-kernel", "flatten-dense-head"}),
    (("--select", "CNK10", "--ignore", "CNK104,CNK103,asymmetric-factorization",
      "--min-impact", "0"),
     {"large-kernel", "flatten-dense-head", "bias-before-batchnorm",
      "dropout-before-batchnorm"}),
])
def test_select_and_ignore(capsys, args, expected):
    """Selectors by code, code prefix and symbol."""
    status, out, _ = lint(capsys, EXAMPLE, "--no-config", "--format", "json", *args)
    assert status == 1 and _symbols(out) == expected


@pytest.mark.parametrize("args, problem", [
    (("--select", "CNK999"), "--select: unknown rule 'CNK999' (see --list-rules)"),
    (("--ignore", "no-such-rule"), "--ignore: unknown rule 'no-such-rule'"),
    (("--fail-on", "fatal"), "command line: fail-on: unknown severity 'fatal'"),
    (("--input-shape", "224xfoo"), "command line: input-shape '224xfoo'"),
    (("--explain", "CNK999"), "--explain: unknown rule 'CNK999'"),
])
def test_usage_errors_are_one_line(capsys, args, problem):
    """Bad flags and unknown rules: one line, exit 2, nothing on stdout."""
    status, out, err = lint(capsys, EXAMPLE, "--no-config", *args)
    assert status == 2 and out == ""
    assert err.startswith("cnnkit-lint: error: " + problem) and err.count("\n") == 1


def test_argparse_errors_exit_2(capsys):
    """argparse's own errors exit 2; --version exits 0."""
    assert main(["--format", "xml", EXAMPLE]) == 2
    assert "cnnkit-lint: error: argument --format: invalid choice" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("cnnkit-lint ")
    status, _, err = lint(capsys, "--no-config")
    assert status == 2
    assert "no model files given" in err


def test_config_file_discovery_and_precedence(capsys, cwd):
    """pyproject.toml is found upward from the CWD; flags override it."""
    (cwd / "pyproject.toml").write_text(
        '[tool.cnnkit-lint]\nselect = ["missing-bottleneck"]\nfail-on = "error"\n')
    sub = cwd / "a" / "b"
    sub.mkdir(parents=True)
    os.chdir(sub)  # found from the CWD upward
    status, out, _ = lint(capsys, EXAMPLE, "--format", "json")
    assert status == 0 and _symbols(out) == {"missing-bottleneck"}
    status, out, _ = lint(capsys, EXAMPLE, "--format", "json", "--select", "CNK105",
                          "--fail-on", "warning")            # flags win
    assert status == 1 and _symbols(out) == {"flatten-dense-head"}
    status, out, _ = lint(capsys, EXAMPLE, "--format", "json", "--no-config")
    assert status == 1 and len(_symbols(out)) > 2


@pytest.mark.parametrize("name, text", [
    ("setup.cfg", "[metadata]\nname = x\n\n[cnnkit-lint]\nselect = CNK105, large-kernel\n"),
    ("tox.ini", "[tox]\nenvlist = py311\n[cnnkit-lint]\nselect =\n    CNK105\n"
                "    large-kernel\n"),
])
def test_ini_config_files(capsys, cwd, name, text):
    """setup.cfg and tox.ini [cnnkit-lint] sections, comma- or newline-separated."""
    (cwd / name).write_text(text)
    status, out, _ = lint(capsys, EXAMPLE, "--format", "json")
    assert status == 1 and _symbols(out) == {"flatten-dense-head", "large-kernel"}


def test_pyproject_without_our_table_is_skipped(capsys, cwd):
    """A pyproject.toml without our table does not hide tox.ini."""
    (cwd / "pyproject.toml").write_text("[tool.black]\nline-length = 100\n")
    (cwd / "tox.ini").write_text("[cnnkit-lint]\nselect = CNK105\n")
    status, out, _ = lint(capsys, EXAMPLE, "--format", "json")
    assert status == 1 and _symbols(out) == {"flatten-dense-head"}


def test_explicit_config_and_bad_config(capsys, cwd):
    """--config FILE; an unknown key is a one-line error naming the file."""
    conf = cwd / "lint.toml"
    conf.write_text('[tool.cnnkit-lint]\nignore = ["CNK1"]\n')
    status, out, _ = lint(capsys, EXAMPLE, "--config", conf, "--format", "json")
    assert status == 0 and _symbols(out) == set()
    conf.write_text('[tool.cnnkit-lint]\nselct = ["CNK1"]\n')
    status, _, err = lint(capsys, EXAMPLE, "--config", conf)
    assert status == 2
    assert err.startswith(f"cnnkit-lint: error: {conf}: unknown setting 'selct'")


def test_per_layer_suppressions(capsys, cwd):
    """Layer-name globs drop the named rules' findings there, and are counted."""
    (cwd / "pyproject.toml").write_text(
        '[tool.cnnkit-lint.per-layer-ignores]\n'
        '"wide_c*" = ["missing-bottleneck", "CNK104"]\n"stem_*" = ["ALL"]\n')
    status, out, _ = lint(capsys, EXAMPLE, "--format", "json")
    assert status == 1
    findings = json.loads(out)["models"][0]
    layers = {(f["layer"], f["symbol"]) for f in findings["findings"]}
    assert ("wide_conv", "missing-bottleneck") not in layers
    assert ("wide_conv", "depthwise-separable-candidate") not in layers
    assert ("wide_conv", "asymmetric-factorization") in layers
    assert ("widen_conv", "missing-bottleneck") in layers     # glob does not match
    assert not any(layer.startswith("stem_") for layer, _ in layers)
    # wide_conv's two, stem_conv's bias (no depthwise-separable finding on an RGB stem)
    assert findings["suppressed"] >= 3
    status, text, _ = lint(capsys, EXAMPLE)
    assert f", {findings['suppressed']} suppressed." in text   # after "N below --min-impact"


def test_ini_per_layer_suppressions(capsys, cwd):
    """The INI spelling of per-layer-ignores."""
    (cwd / "setup.cfg").write_text("[cnnkit-lint]\nper-layer-ignores =\n"
                                   "    wide_conv: missing-bottleneck\n    classifier: CNK105\n")
    _, out, _ = lint(capsys, EXAMPLE, "--format", "json")
    layers = {(f["layer"], f["symbol"]) for f in json.loads(out)["models"][0]["findings"]}
    assert ("wide_conv", "missing-bottleneck") not in layers
    assert ("classifier", "flatten-dense-head") not in layers
    assert ("conv5x5", "large-kernel") in layers


def test_baseline_round_trip(capsys, cwd):
    """--write-baseline then --baseline: nothing new to report, from any CWD."""
    models = cwd / "models"
    models.mkdir()
    shutil.copy(EXAMPLE, models / "net.h5")
    baseline = cwd / "cnnkit-baseline.json"
    status, _, err = lint(capsys, "models/net.h5", "--no-config", "--write-baseline", baseline)
    assert status == 0 and "wrote" in err
    entries = json.loads(baseline.read_text())["findings"]
    assert {"file": "models/net.h5", "code": "CNK103", "symbol": "missing-bottleneck",
            "layer": "wide_conv"} in entries
    status, out, _ = lint(capsys, "models/net.h5", "--no-config", "--baseline", baseline)
    assert status == 0 and out.splitlines()[-1] == \
        (f"0 findings (0 error, 0 warning, 0 info) in 1 model; 2 below --min-impact 1%, "
         f"{len(entries)} in baseline.")
    # From another directory, the same file by another path: still matched.
    os.chdir(models)
    status, _, _ = lint(capsys, "net.h5", "--no-config", "--baseline", baseline)
    assert status == 0


def test_baseline_matches_by_rule_and_layer_not_position(capsys, cwd):
    """Reordering the config and adding an unrelated finding: only the new one shows."""
    config = smf.conv_chain_config(4, size=16, channels=16)
    config["config"]["layers"][1]["config"].update(kernel_size=[5, 5])
    path = smf.write_json(cwd / "m.json", config)
    baseline = cwd / "base.json"
    lint(capsys, path, "--no-config", "--write-baseline", baseline)
    accepted = len(json.loads(baseline.read_text())["findings"])
    assert accepted > 0
    config["config"]["layers"][3]["config"].update(kernel_size=[7, 7])   # new finding at c2
    config["config"]["layers"] = config["config"]["layers"][::-1]
    smf.write_json(cwd / "m.json", config)
    status, out, _ = lint(capsys, path, "--no-config", "--baseline", baseline, "--format",
                          "json")
    model = json.loads(out)["models"][0]
    assert status == 1 and model["baselined"] == accepted
    assert {f["layer"] for f in model["findings"]} == {"c2"}


def test_bad_baseline_file(capsys, cwd):
    """A malformed baseline is a one-line error."""
    (cwd / "b.json").write_text('{"findings": [{"oops": 1}]}')
    status, _, err = lint(capsys, EXAMPLE, "--no-config", "--baseline", "b.json")
    assert status == 2 and "b.json: not a cnnkit-lint baseline" in err


def test_list_rules_and_explain(capsys):
    """--list-rules names every rule; --explain prints its docstring sections."""
    status, out, _ = lint(capsys, "--list-rules", "--no-config")
    assert status == 0
    listed = {line.split()[1] for line in out.splitlines()}
    assert listed >= set(ISSUE_SYMBOLS)
    status, out, _ = lint(capsys, "--list-rules", "--no-config", "--format", "json")
    assert {r["symbol"] for r in json.loads(out)} >= set(ISSUE_SYMBOLS)
    for name in ("CNK103", "missing-bottleneck", "cnk103"):
        status, out, _ = lint(capsys, "--explain", name, "--no-config")
        assert status == 0
        assert out.startswith("CNK103 missing-bottleneck (warning; ")
        for heading in ("## What it does", "## Why is this bad?", "## Example",
                        "## Use instead", "## References"):
            assert heading in out
        assert "589,824" in out   # the issue's 256→256 figure, from the docstring


def test_output_file_and_module_entry_point(tmp_path):
    """python -m keras_cnnkit.lint with --output, and the console script."""
    out = tmp_path / "r.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.lint", EXAMPLE, "--no-config",
                           "--format", "json", "--output", str(out)], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=120, check=False)
    assert proc.returncode == 1 and proc.stdout == "" and proc.stderr == ""
    assert json.loads(out.read_text())["models"][0]["file"] == EXAMPLE
    script = shutil.which("cnnkit-lint")
    if script is not None:
        proc = subprocess.run([script, "--version"], capture_output=True, text=True,
                              env=env, timeout=120, check=False)
        assert proc.returncode == 0 and proc.stdout.startswith("cnnkit-lint ")


def test_ascii_terminal_gets_ascii_arrows(monkeypatch):
    """A non-UTF-8 stdout gets ASCII arrows and minus signs."""
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer, encoding="ascii"))
    status = main([EXAMPLE, "--no-config", "-q", "--select", "CNK103"])
    sys.stdout.flush()
    text = buffer.getvalue().decode("ascii")
    assert status == 1 and "->" in text and "(-88%)" in text


def test_input_shape_flag(capsys, cwd):
    """--input-shape fills unknown dims (default 224)."""
    layers = [smf.k3_input("x", [None, None, 3]),
              smf.k3_layer("Conv2D", "c", ["x"], filters=64, kernel_size=[3, 3],
                           padding="same", use_bias=False)]
    path = smf.write_json(cwd / "dyn.json", smf.k3_functional("dyn", layers, ["x"], ["c"]))
    for flag, side in ((None, 224), ("299x299", 299), ("128,128,3", 128)):
        args = [path, "--no-config", "--format", "json", "--exit-zero"]
        if flag:
            args += ["--input-shape", flag]
        _, out, _ = lint(capsys, *args)
        assert json.loads(out)["models"][0]["summary"]["macs"] == side * side * 64 * 27


def test_bundled_example_is_small_and_regenerates(tmp_path):
    """The committed example is < 1 MB and is what make_models.py writes (same graph)."""
    from keras_cnnkit.analysis.frontends.static_file import load_graph

    assert os.path.getsize(EXAMPLE) < 1_000_000
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "models",
                                                        "make_models.py"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = load_graph(tmp_path / "inefficient_cnn.h5")
    committed = load_graph(EXAMPLE)
    assert [(n.name, n.op, n.output_shape, n.params, n.attrs) for n in fresh] == \
        [(n.name, n.op, n.output_shape, n.params, n.attrs) for n in committed]
    assert {n.layer: n.params for n in committed if n.params} == EXAMPLE_PARAMS
