"""``benchmarks/bench_rules.py`` and ``run_all.py`` on the tiny grid (seconds, CPU)."""
import importlib.util
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load(name):
    """Import a benchmark script as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks",
                                                                     f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_rules_tiny_grid_writes_table_plot_and_noise(tmp_path, capsys):
    bench = load("bench_rules")
    code = bench.main(["--grid", "tiny", "--batches", "1", "--repeats", "3",
                       "--budget", "0.3", "--out-dir", str(tmp_path)])
    assert code == 0
    (record_path,) = (tmp_path / "results").iterdir()
    record = json.loads(record_path.read_text())
    rules = {row["rule"] for row in record["cases"]}
    # every fixable rule's replacement was timed
    assert rules == set(bench._patterns())  # pylint: disable=protected-access
    for row in record["cases"]:
        assert row["before_ms"] > 0 and row["after_ms"] > 0
        assert row["before_rerun_ms"] > 0 and row["after_rerun_ms"] > 0
    md = (tmp_path / "results_rules.md").read_text()
    assert "| large-kernel | 16 | 8 | 1 |" in md and "est. FLOP ratio" in md
    assert (tmp_path / "rules_ratio.png").read_bytes()[:4] == b"\x89PNG"
    assert "grid rows" in capsys.readouterr().out


def test_noise_figure_counts_only_cases_over_a_millisecond():
    bench = load("bench_rules")
    record = {"cases": [{"before_ms": 2.0, "before_rerun_ms": 2.1},     # 5% apart
                        {"before_ms": 10.0, "before_rerun_ms": 12.0},   # 20% apart
                        {"before_ms": 0.5, "before_rerun_ms": 0.9}],    # under 1 ms
              "named": []}
    stats = bench.noise_stats(record)
    assert stats["n"] == 2 and stats["within"] == 1
    assert abs(stats["max"] - 0.2) < 1e-12
    # the 'after' side counts too where it was rerun
    record["cases"].append({"before_ms": 0.2, "before_rerun_ms": 0.2,
                            "after_ms": 3.0, "after_rerun_ms": 3.3})   # 10% apart: within
    stats = bench.noise_stats(record)
    assert stats["n"] == 3 and stats["within"] == 2
    assert bench.noise_stats(record, 0.0)["n"] == 5


def test_merge_keeps_earlier_cases(tmp_path):
    bench = load("bench_rules")
    base = {"device": {"kind": "cpu", "label": "cpu:x"}, "backend": "tensorflow",
            "dtype": "float32", "named": [], "failures": []}
    row = {"rule": "r", "channels": 8, "map": 8, "batch": 1, "before_ms": 1.0}
    bench.merge_record(str(tmp_path), dict(base, cases=[row]))
    path = bench.merge_record(str(tmp_path), dict(base, cases=[dict(row, batch=2)]))
    with open(path, encoding="utf-8") as fh:
        assert len(json.load(fh)["cases"]) == 2


def test_run_all_runs_every_script(tmp_path):
    """run_all in a copy of benchmarks/ with two stand-in scripts, one failing."""
    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    with open(os.path.join(ROOT, "benchmarks", "run_all.py"), encoding="utf-8") as fh:
        (bench_dir / "run_all.py").write_text(fh.read())
    (bench_dir / "bench_ok.py").write_text(
        'import sys\nprint("ok", sys.argv[1:])  # accepts "--quick"\n')
    (bench_dir / "bench_bad.py").write_text("raise SystemExit(3)\n")
    proc = subprocess.run([sys.executable, str(bench_dir / "run_all.py"), "--quick"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "ok ['--quick']" in proc.stdout
    assert "bench_bad.py: FAILED (exit 3)" in proc.stdout
    assert "1 passed, 1 failed" in proc.stdout


def test_resume_skips_cases_on_file_and_max_minutes_keeps_what_was_measured(tmp_path):
    """A run cut short keeps its cases on disk; --resume measures only the rest."""
    bench = load("bench_rules")
    common = ["--grid", "tiny", "--batches", "1", "--repeats", "3", "--budget", "0.2",
              "--no-noise", "--out-dir", str(tmp_path),
              "--rules", "large-kernel", "bias-before-batchnorm"]
    # a time limit of zero: no case is started, nothing is measured
    assert bench.main(common + ["--max-minutes", "0"]) == 0
    (path,) = (tmp_path / "results").iterdir()
    record = json.loads(path.read_text())
    assert record["cases"] == [] and "left for a later --resume" in record["failures"][0]
    assert bench.main(common[:-1]) == 0          # large-kernel only
    assert {r["rule"] for r in json.loads(path.read_text())["cases"]} == {"large-kernel"}
    first = json.loads(path.read_text())["cases"][0]["before_ms"]
    assert bench.main(common + ["--resume"]) == 0
    cases = json.loads(path.read_text())["cases"]
    assert sorted(r["rule"] for r in cases) == ["bias-before-batchnorm", "large-kernel"]
    # the large-kernel case was not measured again
    assert [r["before_ms"] for r in cases if r["rule"] == "large-kernel"] == [first]


def test_device_key_tells_gpu_models_apart():
    bench = load("bench_rules")
    key = bench._device_key  # pylint: disable=protected-access
    cpu = {"device": {"kind": "cpu", "name": "AMD EPYC (2 cores)"}, "backend": "tensorflow",
           "dtype": "float32"}
    assert key(cpu) == "tensorflow-cpu-float32"
    h100 = {"device": {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3"}, "backend": "jax",
            "dtype": "bfloat16"}
    assert key(h100) == "jax-gpu-nvidia-h100-80gb-hbm3-bfloat16"


def test_plot_and_markdown_for_several_devices(tmp_path):
    """One panel per device (a 2-column grid), and a section per device in the markdown."""
    bench = load("bench_rules")
    row = {"rule": "large-kernel", "channels": 8, "map": 8, "batch": 1, "compile": "jit",
           "flops_before": 100, "flops_after": 72, "params_before": 10, "params_after": 7,
           "before_ms": 2.0, "before_iqr_ms": 0.1, "after_ms": 1.5, "after_iqr_ms": 0.1,
           "before_rerun_ms": 2.1, "after_rerun_ms": 1.5}
    records = [{"device": {"kind": kind, "name": name, "label": f"{kind}:{name}"},
                "backend": backend, "dtype": "float32", "cases": [row], "named": [],
                "failures": []}
               for kind, name, backend in (("cpu", "x", "tensorflow"), ("gpu", "H100", "jax"),
                                           ("gpu", "H100", "torch"))]
    png = bench.render_plot(records, str(tmp_path / "p.png"))
    assert png and (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    md = bench.render_markdown(records)
    assert md.count("\n## ") == 3 and "gpu:H100 — backend torch" in md
    # noise over 1 ms, both sides rerun: 5% and 0%
    assert "n = 2, rerun: before and after" in md and "largest 5.0%" in md
