"""Does a bare ``cnnkit-lint --fix`` make the bundled example faster?  (issues 15 and 16)

``examples/models/inefficient_cnn.h5`` is fixed twice through the command line:

* ``bare``: ``cnnkit-lint --fix inefficient_cnn.h5 -o fixed.keras``, no other flag: each
  site's recommended alternative (by predicted time on the default device profile);
* ``flop-greedy``: what ``--fix`` applied before findings were grouped into sites (the
  biggest FLOP saving on each layer: the depthwise-separable form of the three convs and
  the stem, the GAP head, the dropout move), reproduced with ``--fix-select``.

The original and both fixed models are then timed in this one process, their samples
interleaved (:func:`keras_cnnkit.bench.time_models`), compiled forward passes on random
inputs, warm-up and compilation excluded, at batch 1 and 32, with one CPU thread.  The
figures go to ``benchmarks/results/fix_example_<device>.json`` and
``benchmarks/results_fix_example.md`` (``run_all.py`` puts it into RESULTS.md).

Usage::

    python benchmarks/bench_fix_example.py [--threads 1] [--budget 60]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, ROOT)

EXAMPLE = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")
#: The fixes the FLOP-greedy choice made on the example (one per layer, the bias drop
#: merged into the stem's separable form), on every finding (``--min-impact 0``).
FLOP_GREEDY = ("depthwise-separable-candidate,flatten-dense-head,dropout-before-batchnorm,"
               "bias-before-batchnorm")
BATCHES = (1, 32)


def _fix(out_dir: str, name: str, extra: list) -> tuple:
    """Run ``cnnkit-lint --fix`` (in this process); ``(path, printed summary)``."""
    import contextlib
    import io

    from keras_cnnkit.lint.cli import main as cnnkit_lint

    path = os.path.join(out_dir, f"{name}.keras")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = cnnkit_lint(["--no-config", "--fix", EXAMPLE, "-o", path, *extra])
    if status != 0:
        raise SystemExit(f"cnnkit-lint --fix {' '.join(extra)} exited {status}")
    return path, buffer.getvalue()


def _time_benchmark() -> dict:
    """Wall time of ``cnnkit-lint --benchmark`` on the example with default settings, in
    a fresh process (imports included), and its exit status (1: findings reported)."""
    import subprocess

    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.lint", "--no-config",
                           "--benchmark", EXAMPLE], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    return {"wall_s": round(time.monotonic() - start, 1), "status": proc.returncode,
            "whole_model": [line for line in proc.stdout.splitlines()
                            if line.startswith("whole model")]}


def _load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def measure(threads: int, budget: float) -> dict:
    """Fix the example both ways and time the three models; returns the record."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from keras_cnnkit.bench import detect, time_models
    from keras_cnnkit.bench.device import set_cpu_threads

    load = _load_average()
    benchmark = _time_benchmark()          # its own process, the default thread count
    if threads:
        set_cpu_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        bare, bare_text = _fix(tmp, "bare", [])
        greedy, greedy_text = _fix(tmp, "flop_greedy", ["--fix-select", FLOP_GREEDY,
                                                        "--min-impact", "0"])
        models = {"original": keras.models.load_model(EXAMPLE, compile=False),
                  "bare": keras.models.load_model(bare, compile=False),
                  "flop-greedy": keras.models.load_model(greedy, compile=False)}
        runs = {}
        for batch in BATCHES:
            timings, mode = time_models(list(models.values()), batch, budget_s=budget,
                                        max_rel_iqr=0.10)
            runs[batch] = {name: t.to_dict() for name, t in zip(models, timings)}
    device = detect()
    return {"device": str(device), "backend": device.backend, "compile": mode,
            "threads": threads, "keras": keras.__version__,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
            "load_at_start": load, "load_at_end": _load_average(),
            "benchmark_command": benchmark,
            "fixes": {"bare": bare_text.strip().splitlines(),
                      "flop-greedy": greedy_text.strip().splitlines()},
            "params": {name: int(m.count_params()) for name, m in models.items()},
            "runs": {str(b): r for b, r in runs.items()}}


def render(record: dict) -> str:
    """The results section (markdown)."""
    lines = [
        "# A bare `cnnkit-lint --fix` on the bundled example: measured",
        "",
        f"Generated by `benchmarks/bench_fix_example.py` (do not edit by hand).  Machine: "
        f"{record['device']}, backend {record['backend']} ({record['compile']}), "
        f"{record['threads'] or 'default'} CPU thread(s); Keras {record['keras']}, Python "
        f"{record['python']}; run {record['date']}; 1-minute load average "
        f"{record['load_at_start']} at the start, {record['load_at_end']} at the end.",
        "",
        "`examples/models/inefficient_cnn.h5` fixed by `cnnkit-lint --fix "
        "inefficient_cnn.h5 -o fixed.keras` with no other flag (each finding's recommended "
        "alternative, by predicted time on the default profile `cpu-generic`), and by the "
        "choice `--fix` made before findings were grouped into sites (the biggest FLOP "
        "saving per layer, reproduced with `--min-impact 0 --fix-select "
        f"{FLOP_GREEDY}`).  The three models timed in one process, samples interleaved; "
        "compiled forward passes on random inputs, warm-up and compilation excluded; "
        "median (IQR) over repeats.",
        "",
        "| model | params | batch | median ms (IQR) | speed-up vs original |",
        "|---|---:|---:|---:|---:|",
    ]
    for batch, runs in record["runs"].items():
        base = runs["original"]["median_ms"]
        for name, timing in runs.items():
            lines.append(f"| {name} | {record['params'][name]:,} | {batch} | "
                         f"{timing['median_ms']:.2f} ({timing['iqr_ms']:.2f}) | "
                         f"{base / timing['median_ms']:.2f}× |")
    bench = record.get("benchmark_command")
    if bench:
        lines += ["", f"`cnnkit-lint --benchmark inefficient_cnn.h5` with default settings "
                      f"(every alternative of every site timed at batch 1 and 32, then the "
                      f"whole model with what a bare `--fix` applies): **{bench['wall_s']} s** "
                      f"wall time in a fresh process, imports included (exit status "
                      f"{bench['status']}); its whole-model lines:", "", "```"]
        lines += bench["whole_model"] + ["```"]
    lines += ["", "What the bare `--fix` printed:", "", "```"]
    lines += record["fixes"]["bare"] + ["```", "", "The FLOP-greedy choice:", "", "```"]
    lines += record["fixes"]["flop-greedy"] + ["```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Measure, write the JSON record and the markdown section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (0: the backend's default)")
    parser.add_argument("--budget", type=float, default=60.0,
                        help="seconds per interleaved measurement")
    args = parser.parse_args(argv)
    record = measure(args.threads, args.budget)
    name = record["device"].split(":", maxsplit=1)[0]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"fix_example_{name}.json"), "w",
              encoding="utf-8") as fh:
        json.dump(record, fh, indent=2)
        fh.write("\n")
    text = render(record)
    with open(os.path.join(HERE, "results_fix_example.md"), "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
