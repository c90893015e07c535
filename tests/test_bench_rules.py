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
        assert row["before_rerun_ms"] > 0
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
