"""One finding per site, ranked by impact, recommended by time (issue 15, parts 1–3).

The bundled ``examples/models/inefficient_cnn.h5`` and the committed keras.applications
configs are linted statically (no Keras model is built).  Figures are worked out by hand
(layer shapes of the example: tests/test_cli.py) or taken from tools/corpus/REVIEW.md.
"""
import dataclasses
import gzip
import json
import os
from pathlib import Path

import pytest

from keras_cnnkit.analysis.ir import Node
from keras_cnnkit.lint.api import lint
from keras_cnnkit.lint.baseline import Baseline
from keras_cnnkit.lint.findings import Finding, Replacement, Severity
from keras_cnnkit.lint.sites import (DEFAULT_MIN_IMPACT, Context, build_sites,
                                     check_savings, conclusive, fix_choice, impact,
                                     rule_findings, site_layers)
from keras_cnnkit.rewrite.plan import select_findings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = str(ROOT / "examples" / "models" / "inefficient_cnn.h5")
CONFIGS = ROOT / "tests" / "data" / "corpus" / "keras3"

#: The example's parameters (Keras' count_params(): tests/test_cli.py adds them up).
EXAMPLE_PARAMS = 1_007_178
#: wide_conv, 3×3 256→256 with bias, and its bottleneck 1×1 256→64, 3×3 64→64, 1×1 64→256.
WIDE_PARAMS = 9 * 256 * 256 + 256
BOTTLENECK_PARAMS = (256 * 64 + 64) + (9 * 64 * 64 + 64) + (64 * 256 + 256)
#: The rules' findings on the example: 9, on 6 layers (stem_conv: bias; conv5x5: large
#: kernel; widen_conv: bottleneck, separable; wide_conv: bottleneck, separable, asymmetric;
#: drop→bn; classifier).  stem_conv and conv5x5 are the stem chain (RGB conv and the full
#: convs before the first pooling), where a separable conv or a bottleneck is not proposed.
RULE_FINDINGS, SITES = 9, 6


@pytest.fixture(scope="module")
def example():
    """The example, every site reported."""
    return lint(EXAMPLE, min_impact=0)


def _config(tmp_path, name):
    path = tmp_path / f"{name}.json"
    path.write_bytes(gzip.decompress((CONFIGS / f"{name}.json.gz").read_bytes()))
    return str(path)


def _layers(site):
    return set().union(*(site_layers(f) for f in rule_findings([site])))


# --- part 1: one finding per site ---------------------------------------------------------

def test_one_finding_per_site_with_every_alternative(example):
    """wide_conv's three rules are one finding; no two findings share a layer."""
    assert len(example.rule_findings) == RULE_FINDINGS
    assert len(example.findings) == SITES and not example.below_impact
    (wide,) = example.at("wide_conv")
    assert {a.finding.symbol for a in wide.alternatives} == {
        "missing-bottleneck", "depthwise-separable-candidate", "asymmetric-factorization"}
    layers = [layer for site in example.findings for layer in _layers(site)]
    assert len(layers) == len(set(layers))
    # The flat fields are the recommended alternative's own.
    chosen = wide.alternatives[wide.recommended].finding
    assert (wide.code, wide.params_before, wide.params_after) == (
        chosen.code, chosen.params_before, chosen.params_after)


def test_alternatives_carry_costs_speed_and_weights(example):
    """Each alternative: its rule's figures, whether it keeps the function, how its
    weights come, its predicted speed-up at batch 1 and 32 and the profile."""
    (wide,) = example.at("wide_conv")
    bottleneck = next(a for a in wide.alternatives if a.finding.code == "CNK103")
    assert (bottleneck.finding.params_before, bottleneck.finding.params_after) == (
        WIDE_PARAMS, BOTTLENECK_PARAMS)
    # --fix carries the trained weights into the bottleneck (Tucker-2, issue 19).
    assert bottleneck.weights == "approximate: Tucker-2 HOSVD rank 64"
    assert bottleneck.profile == "cpu-generic"
    assert set(bottleneck.predicted) == {1, 32}
    (stem,) = example.at("stem_conv")
    bias = next(a for a in stem.alternatives if a.finding.code == "CNK108")
    assert bias.weights == "exact" and bias.finding.replacement.preserves_function


def test_summed_savings_never_exceed_the_model(tmp_path):
    """VGG16: its rules' FLOP savings add up to 149% of the model (REVIEW.md's 171%
    less the stem pair's, which the rules no longer report); its sites' to less than
    100%, and no reported layer is counted twice."""
    report = lint(_config(tmp_path, "VGG16"), min_impact=0)
    rules = sum(max(0, f.flops_before - f.flops_after) for f in report.rule_findings
                if f.flops_before is not None)
    assert round(100 * rules / report.summary.flops) == 149
    savings = report.savings()
    assert savings.flops <= report.summary.flops and savings.params <= report.summary.params
    counted = [layer for site in report.findings if site.recommended is not None
               for layer in _layers(site)]
    assert len(counted) == len(set(counted))


def test_check_savings_refuses_overlapping_sites():
    """Two sites on one layer would count it twice: an internal error, not a total."""
    fix = Replacement(removed=["c"], nodes=[Node(name="c2", op="identity", inputs=["x"])],
                      output="c2")
    one = Finding("CNK103", "missing-bottleneck", Severity.WARNING, "c", "m", node="c",
                  params_before=10, params_after=5, flops_before=10, flops_after=5,
                  replacement=fix)
    sites = [dataclasses.replace(build_sites([one])[0]) for _ in range(2)]
    with pytest.raises(AssertionError, match="two sites"):
        check_savings(sites, None)


# --- part 2: impact ------------------------------------------------------------------------

def test_shares_and_min_impact(example):
    """The bottleneck saves (590,080 − 70,016) / 1,007,178 of the parameters; the bias
    drop (64 biases over a 32×32 map) and the dropout move (no saving) are under 1%."""
    (wide,) = example.at("wide_conv")
    assert wide.params_share == pytest.approx((WIDE_PARAMS - BOTTLENECK_PARAMS)
                                              / EXAMPLE_PARAMS)
    default = lint(EXAMPLE)
    assert DEFAULT_MIN_IMPACT == 0.01
    assert {f.layer for f in default.below_impact} == {"stem_conv", "drop"}
    stem = next(f for f in default.below_impact if f.layer == "stem_conv")
    assert (stem.params_before - stem.params_after, stem.flops_before - stem.flops_after) \
        == (64, 32 * 32 * 64)
    assert len(default.findings) == SITES - 2
    impacts = [impact(f) for f in default.findings]
    assert impacts == sorted(impacts, reverse=True) and min(impacts) >= 0.01
    # wide_conv's bottleneck saves 52% of the params; conv5x5's two 3×3s 10% of the FLOPs
    assert len(lint(EXAMPLE, min_impact=0.2).findings) == 1


@pytest.mark.parametrize("name", sorted(p.name[:-len(".json.gz")]
                                        for p in CONFIGS.glob("*.json.gz")))
def test_keras_applications_default_output(name, tmp_path):
    """Every keras.applications model: by default no finding under 0.5% of both FLOPs and
    params (an opaque layer's unknown cost aside), no two findings on one layer, and the
    recommended fixes' savings within the model's cost."""
    report = lint(_config(tmp_path, name))
    for site in report.findings:
        value = impact(site)
        assert value is None or value >= 0.005, (site.layer, site.code)
    layers = [layer for site in report.findings for layer in _layers(site)]
    assert len(layers) == len(set(layers))
    savings = report.savings()
    assert savings.flops <= report.summary.flops and savings.params <= report.summary.params


# --- part 3: recommend by time -------------------------------------------------------------

def test_predicted_slower_is_never_recommended(example):
    """On the CPU profile the depthwise-separable form is slower (as measured here:
    benchmarks/results_rules.md, 2.6× slower median) and the bottleneck faster."""
    for layer in ("wide_conv", "widen_conv"):
        (site,) = example.at(layer)
        assert site.code == "CNK103" and site.recommended == 0
        separable = next(a for a in site.alternatives if a.finding.code == "CNK104")
        assert separable.slower and all(s < 1 for s in separable.predicted.values())
        assert "cpu-generic" in site.why
    (widen,) = example.at("widen_conv")
    assert "only alternative not slower" in widen.why
    (five,) = example.at("conv5x5")    # two 3×3s: fewer FLOPs, and faster on this profile
    assert five.code == "CNK101" and five.recommended == 0 and "faster" in five.why


class FakeBench:
    """A benchmark's figures (the Measurements protocol): speed-up per label and batch."""

    def __init__(self, speedups, batches=(1, 32), iqr=0.01):
        self.speedups, self.batches, self.iqr = speedups, batches, iqr

    def fields_of(self, finding):
        """Runs of the finding's fix: 10 ms before, 10 / speed-up after."""
        speeds = self.speedups.get((finding.code, finding.layer), {})
        return {"runs": [{"batch": b, "mode": "inference", "latency_before_ms": 10.0,
                          "latency_after_ms": 10.0 / s, "iqr_before_ms": self.iqr,
                          "iqr_after_ms": self.iqr, "speedup": s}
                         for b, s in speeds.items()]} if speeds else {}

    def note_of(self, finding):  # pylint: disable=unused-argument
        """No notes."""
        return ""


def test_measured_beats_predicted():
    """Where the benchmark measured, the fastest measured alternative is recommended,
    and one measured slower is not, whatever the prediction."""
    report = lint(EXAMPLE, min_impact=0)
    report.attach_benchmark(FakeBench({("CNK104", "wide_conv"): {1: 3.0, 32: 2.5},
                                       ("CNK103", "wide_conv"): {1: 0.5, 32: 0.6}}))
    (wide,) = report.at("wide_conv")
    assert wide.code == "CNK104" and wide.why.startswith("the fastest")
    assert "measured 3.00× (b1), 2.50× (b32)" in wide.why
    bottleneck = next(a for a in wide.alternatives if a.finding.code == "CNK103")
    assert bottleneck.slower and bottleneck.measured == {1: 0.5, 32: 0.6}


def test_inconclusive_measurements_leave_the_prediction():
    """A run whose medians differ by less than half their summed IQRs is not used."""
    assert not conclusive({"latency_before_ms": 3.0, "latency_after_ms": 3.7,
                           "iqr_before_ms": 7.4, "iqr_after_ms": 1.3})
    assert conclusive({"latency_before_ms": 3.0, "latency_after_ms": 3.7,
                       "iqr_before_ms": 0.1, "iqr_after_ms": 0.1})
    report = lint(EXAMPLE, min_impact=0)
    report.attach_benchmark(FakeBench({("CNK103", "wide_conv"): {1: 0.9, 32: 0.9}},
                                      iqr=5.0))
    (wide,) = report.at("wide_conv")
    assert wide.code == "CNK103" and not wide.alternatives[0].measured


def test_all_slower_means_no_recommendation_and_no_bare_fix():
    """A site whose every fix is slower has none recommended ("saves parameters, not
    time"); a bare fix leaves it, --fix-select forces it."""
    report = lint(EXAMPLE, min_impact=0, select=["depthwise-separable-candidate"])
    (wide,) = report.at("wide_conv")
    assert wide.recommended is None and "saves parameters, not time" in wide.why
    fixes, skipped = fix_choice(wide)
    assert not fixes and "--fix-select CNK104" in skipped[0][1]
    forced, _ = fix_choice(wide, ["CNK104"])
    assert [f.code for f in forced] == ["CNK104"]
    assert report.savings().sites == 0   # nothing recommended, nothing saved


def test_bare_fix_plan_of_the_example(example):
    """A bare fix applies the recommended alternatives: three bottlenecks, the GAP head,
    the bias drop and the dropout move — never the slower separable convs."""
    chosen, skipped = select_findings(example.findings, graph=example.graph)
    assert sorted((f.code, f.layer) for f in chosen) == [
        ("CNK101", "conv5x5"), ("CNK103", "wide_conv"), ("CNK103", "widen_conv"),
        ("CNK105", "classifier"), ("CNK108", "stem_conv"), ("CNK109", "drop")]
    assert not skipped
    picked, left = select_findings(example.findings, select=["CNK104"], graph=example.graph)
    assert {(f.code, f.layer) for f in picked} == {
        ("CNK104", layer) for layer in ("wide_conv", "widen_conv")}
    assert {s.reason for s in left} == {"not selected"}


def test_exact_bias_drop_is_a_companion_of_the_architectural_fix():
    """A conv with a bias before batch norm whose bottleneck is recommended: the bias drop
    stays an alternative, is marked companion and is merged into the bottleneck."""
    keras = pytest.importorskip("keras")
    x = keras.Input((16, 16, 256))
    y = keras.layers.Conv2D(256, 3, padding="same", name="conv")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    model = keras.Model(x, keras.layers.ReLU()(y))
    report = lint(model, select=["missing-bottleneck", "bias-before-batchnorm"])
    (site,) = report.findings
    assert site.code == "CNK103" and "merged into it" in site.why
    (bias,) = [a for a in site.alternatives if a.finding.code == "CNK108"]
    assert bias.companion
    chosen, skipped = select_findings(report.findings, graph=report.graph)
    assert [f.code for f in chosen] == ["CNK103"]
    assert skipped[0].finding.code == "CNK108" and skipped[0].merged_into is not None
    # the merged fix saves the 256 biases too
    assert chosen[0].params_after == BOTTLENECK_PARAMS - 256


# --- baselines, per-layer ignores ----------------------------------------------------------

def test_baseline_accepts_a_site_by_any_alternative(example, tmp_path):
    """An entry naming any alternative of a site accepts it (baselines from before sites,
    or a recommendation that changed)."""
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"findings": [
        {"file": os.path.relpath(EXAMPLE, tmp_path), "symbol": "asymmetric-factorization",
         "layer": "wide_conv"}]}))
    new, accepted = Baseline.load(path).filter(EXAMPLE, example.findings)
    assert [f.layer for f in accepted] == ["wide_conv"] and len(new) == SITES - 1


def test_regroup_after_dropping_alternatives(example):
    """Dropping one alternative (a per-layer ignore) leaves the site with the others."""
    report = lint(EXAMPLE, min_impact=0)
    report.regroup([f for f in report.rule_findings
                    if (f.code, f.layer) != ("CNK103", "wide_conv")])
    (wide,) = report.at("wide_conv")
    assert wide.code == "CNK102" and len(wide.alternatives) == 2
    assert len(report.findings) == len(example.findings)


def test_context_without_graph_or_profile_recommends_by_flops(example):
    """No profile, no time estimate: the largest FLOP saving, and it says so."""
    sites = build_sites(example.rule_findings, Context(summary=example.summary))
    wide = next(s for s in sites if s.layer == "wide_conv")
    assert wide.code == "CNK104" and wide.why == "largest FLOP saving; no time estimate"


# --- the command line ---------------------------------------------------------------------

def _cli(capsys, *args):
    from keras_cnnkit.lint.cli import main
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_min_impact_flag_and_config(capsys, tmp_path, monkeypatch):
    """--min-impact 0 shows every site, 20% only one, a percentage works, the config key
    too; a bad value is a one-line usage error."""
    monkeypatch.chdir(tmp_path)

    def count(*args):
        status, out, _ = _cli(capsys, EXAMPLE, "--format", "json", *args)
        model = json.loads(out)["models"][0]
        return status, len(model["findings"]), model["below_min_impact"]

    assert count("--no-config") == (1, SITES - 2, 2)
    assert count("--no-config", "--min-impact", "0") == (1, SITES, 0)
    assert count("--no-config", "--min-impact", "20%") == (1, 1, SITES - 1)
    (tmp_path / "pyproject.toml").write_text('[tool.cnnkit-lint]\nmin-impact = "20%"\n')
    assert count() == (1, 1, SITES - 1)
    assert count("--min-impact", "0")[1] == SITES          # the flag wins
    status, out, err = _cli(capsys, EXAMPLE, "--no-config", "--min-impact", "2")
    assert status == 2 and not out
    assert err.startswith("cnnkit-lint: error: --min-impact: min-impact '2': expected a "
                          "fraction from 0 to 1")


def test_cli_device_profile(capsys, tmp_path, monkeypatch):
    """--device-profile chooses the profile (the output says which); an unknown one is
    one error line, exit 2."""
    monkeypatch.chdir(tmp_path)
    status, out, _ = _cli(capsys, EXAMPLE, "--no-config", "--device-profile", "h100-jax-tf32",
                          "--format", "json")
    model = json.loads(out)["models"][0]
    assert status == 1 and model["device_profile"]["name"] == "h100-jax-tf32"
    assert "(chosen)" in model["device_profile"]["why"]
    assert {f["profile"] for f in model["findings"] if f["predicted_speedup"]} == {
        "h100-jax-tf32"}
    status, out, _ = _cli(capsys, EXAMPLE, "--no-config", "--device-profile", "h100-jax-tf32")
    assert "on h100-jax-tf32" in out and "speed-ups predicted on device profile h100-jax-tf32" \
        in out
    status, out, err = _cli(capsys, EXAMPLE, "--no-config", "--device-profile", "no-such")
    assert status == 2 and not out and err.count("\n") == 1
    assert err.startswith("cnnkit-lint: error: --device-profile: ")


def test_cli_sarif_has_one_result_per_site(capsys, tmp_path, monkeypatch):
    """SARIF: one result per site (6, not the rules' 12), its alternatives as properties."""
    monkeypatch.chdir(tmp_path)
    _, out, _ = _cli(capsys, EXAMPLE, "--no-config", "--format", "sarif", "--min-impact", "0")
    results = json.loads(out)["runs"][0]["results"]
    assert len(results) == SITES
    wide = next(r for r in results if r["locations"][0]["logicalLocations"][0]["name"]
                == "wide_conv")
    assert wide["ruleId"] == "CNK103"
    assert wide["properties"]["recommended"] == "missing-bottleneck"
    assert {a["symbol"] for a in wide["properties"]["alternatives"]} == {
        "missing-bottleneck", "depthwise-separable-candidate", "asymmetric-factorization"}


def test_cli_per_layer_ignore_drops_one_alternative(capsys, tmp_path, monkeypatch):
    """Ignoring the bottleneck at wide_conv leaves the site, recommending the next
    alternative not slower (the 1×3 + 3×1 pair)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.cnnkit-lint.per-layer-ignores]\n"wide_conv" = ["missing-bottleneck"]\n')
    _, out, _ = _cli(capsys, EXAMPLE, "--format", "json")
    model = json.loads(out)["models"][0]
    (wide,) = [f for f in model["findings"] if f["layer"] == "wide_conv"]
    assert wide["symbol"] == "asymmetric-factorization" and model["suppressed"] == 1
    assert {a["symbol"] for a in wide["alternatives"]} == {
        "asymmetric-factorization", "depthwise-separable-candidate"}


def test_cli_calibrate_writes_the_default_profile(capsys, tmp_path, monkeypatch):
    """--calibrate prints where the profile went and its error figures; from then on it is
    the default profile.  (The measurement itself is replaced by a stand-in here: it takes
    a minute; tests/test_latency.py times a tiny grid.)"""
    pytest.importorskip("keras")
    from keras_cnnkit.bench import calibration
    from keras_cnnkit.latency import cache_dir, load_profile

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_CNNKIT_CACHE_DIR", str(tmp_path / "cache"))
    steps = []

    def stand_in(name="local", grid_name=None, progress=None, **_):
        progress("conv 3x3")
        steps.append(grid_name)
        profile = dataclasses.replace(load_profile("cpu-generic"), name=name)
        path = os.path.join(cache_dir(), f"{name}.json")
        profile.save(path)
        return profile, path

    monkeypatch.setattr(calibration, "calibrate", stand_in)
    status, out, _ = _cli(capsys, "--calibrate")
    path = os.path.join(str(tmp_path / "cache"), "profiles", "local.json")
    assert status == 0 and steps in (["cpu"], ["gpu"]) and os.path.isfile(path)
    assert out.startswith("wrote device profile local (") and f" to {path}\n" in out
    assert "profile local: on 24 held-out cases" in out
    _, out, _ = _cli(capsys, EXAMPLE, "--no-config")
    assert "speed-ups predicted on device profile local (" in out
    assert "(calibrated on this machine)" in out
    status, _, err = _cli(capsys, "--calibrate", EXAMPLE)
    assert status == 2 and "--calibrate takes no model files" in err
