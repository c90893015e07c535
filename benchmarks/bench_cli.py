"""``cnnkit-lint`` on a model file against loading the same file with Keras.

Measured side by side in one run, on the machine named in the output:

1. **InceptionV3 ``.h5``** (``keras.applications``, ``weights=None``, saved once):
   the wall time and peak memory of ``cnnkit-lint model.h5`` against
   ``python -c "import keras; keras.models.load_model(path, compile=False)"``.
   Each command runs in a fresh process, interleaved, ``--repeats`` times; the medians
   are compared.  Peak memory is the child's maximum resident set size, read with
   ``resource.getrusage(RUSAGE_CHILDREN)`` in a small wrapper process per run, so each
   figure is that one run's.  Targets: time ratio ≤ 0.15, peak RSS ≤ 250 MB.
2. **Linear growth**: ``cnnkit-lint`` on synthetic JSON configs of 1,000 to 50,000
   layers (1×1 conv and ReLU alternating); time per layer and a least-squares fit
   ``t = a + b·n`` with its R².  Linear ⇒ R² ≈ 1 and a flat µs/layer column.

Writes the tables to ``benchmarks/results_cli.md`` (``--output`` to change).

Usage::

    python benchmarks/bench_cli.py
    python benchmarks/bench_cli.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

#: Runs one command in a child process and reports its wall time and peak RSS.
_WRAPPER = """
import json, resource, subprocess, sys, time
cmd = json.loads(sys.argv[1])
start = time.perf_counter()
proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
wall = time.perf_counter() - start
rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"wall": wall, "rss_mb": rss_kb / 1024, "rc": proc.returncode,
                  "stderr": proc.stderr.decode(errors="replace")[-500:]}))
"""


def measure(cmd: list) -> dict:
    """Wall time (s) and peak RSS (MB) of ``cmd`` in a fresh process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", _WRAPPER, json.dumps(cmd)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def lint_cmd(path: str) -> list:
    """The linter's command line (the console script's entry point, no config lookup)."""
    return [sys.executable, "-m", "keras_cnnkit.lint", path, "--no-config", "-q",
            "--exit-zero", "-o", os.devnull]


def keras_cmd(path: str) -> list:
    """What users would otherwise run to inspect a model file."""
    return [sys.executable, "-c",
            f"import keras; keras.models.load_model({path!r}, compile=False)"]


def make_inception(path: str) -> None:
    """Save ``keras.applications.InceptionV3(weights=None)`` as legacy HDF5."""
    code = ("import logging, keras; logging.getLogger('absl').setLevel(logging.ERROR); "
            f"keras.applications.InceptionV3(weights=None).save({path!r})")
    subprocess.run([sys.executable, "-c", code], check=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def chain_config(n_layers: int) -> dict:
    """A Keras 3 functional config: input 8×8×8, then 1×1 conv / ReLU alternating."""
    def tensor(name):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": None, "keras_history": [name, 0, 0]}}
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "name": "x",
               "config": {"batch_shape": [None, 8, 8, 8], "name": "x"},
               "inbound_nodes": []}]
    prev = "x"
    for i in range(n_layers):
        conv = i % 2 == 0
        name = f"c{i}" if conv else f"r{i}"
        config = {"name": name, "trainable": True}
        if conv:
            config.update(filters=8, kernel_size=[1, 1], padding="same")
        layers.append({"module": "keras.layers", "class_name": "Conv2D" if conv else "ReLU",
                       "name": name, "config": config,
                       "inbound_nodes": [{"args": [tensor(prev)], "kwargs": {}}]})
        prev = name
    return {"class_name": "Functional", "config": {
        "name": "chain", "layers": layers, "input_layers": ["x", 0, 0],
        "output_layers": [prev, 0, 0]}}


def fit(xs: list, ys: list) -> tuple:
    """Least squares ``y = a + b·x``: ``(a, b, r2)``."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def machine() -> str:
    """CPU model, cores and load, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = subprocess.run(
        [sys.executable, "-c", "import keras, tensorflow as tf, h5py; "
         "print(keras.__version__, tf.__version__, h5py.__version__)"],
        capture_output=True, text=True, check=False,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout.split()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    keras_v, tf_v, h5_v = (versions + ["?"] * 3)[:3]
    return (f"{cpu}, {os.cpu_count()} logical CPUs (load average {load:.1f} at start); "
            f"Python {platform.python_version()}, Keras {keras_v}, TensorFlow {tf_v} (CPU), "
            f"h5py {h5_v}")


def bench_inception(tmp: str, repeats: int) -> dict:
    """Interleaved runs of the linter and of Keras' loader on InceptionV3 .h5."""
    path = os.path.join(tmp, "inception_v3.h5")
    make_inception(path)
    runs: dict = {"lint": [], "keras": []}
    for i in range(repeats):
        for name, cmd in (("lint", lint_cmd(path)), ("keras", keras_cmd(path))):
            result = measure(cmd)
            if result["rc"] != 0:
                raise RuntimeError(f"{name} failed: {result['stderr']}")
            runs[name].append(result)
            print(f"  run {i + 1}/{repeats} {name:5s} {result['wall']:6.2f} s "
                  f"{result['rss_mb']:7.1f} MB", flush=True)
    out = {"size_mb": os.path.getsize(path) / 2 ** 20}
    for name, results in runs.items():
        out[name] = {"wall": statistics.median(r["wall"] for r in results),
                     "rss_mb": statistics.median(r["rss_mb"] for r in results),
                     "rss_max_mb": max(r["rss_mb"] for r in results)}
    return out


def bench_growth(tmp: str, sizes: list, repeats: int) -> list:
    """``cnnkit-lint`` wall time on synthetic chains of ``sizes`` layers."""
    rows = []
    for n in sizes:
        path = os.path.join(tmp, f"chain{n}.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(chain_config(n), fh)
        walls = []
        for _ in range(repeats):
            result = measure(lint_cmd(path))
            if result["rc"] != 0:
                raise RuntimeError(result["stderr"])
            walls.append(result["wall"])
        rows.append({"layers": n, "wall": min(walls),
                     "rss_mb": result["rss_mb"]})
        print(f"  {n:6d} layers {min(walls):6.2f} s", flush=True)
    return rows


def report(inception: dict, growth: list, started: str) -> str:
    """The markdown results."""
    lint, ker = inception["lint"], inception["keras"]
    ratio = lint["wall"] / ker["wall"]
    ns = [r["layers"] for r in growth]
    ts = [r["wall"] for r in growth]
    a, b, r2 = fit(ns, ts)
    lines = [
        "# `cnnkit-lint` on model files: speed and memory",
        "",
        f"Measured by `benchmarks/bench_cli.py` on {started}.",
        "",
        "## InceptionV3 `.h5` (keras.applications, weights=None, "
        f"{inception['size_mb']:.0f} MB)",
        "",
        "Each command in a fresh process, runs interleaved; medians. Peak memory: the "
        "child's max RSS (`getrusage(RUSAGE_CHILDREN)` in a per-run wrapper).",
        "",
        "| command | wall time | peak RSS |",
        "|---|---:|---:|",
        f"| `cnnkit-lint inception_v3.h5` | {lint['wall']:.2f} s | {lint['rss_mb']:.0f} MB "
        f"(max {lint['rss_max_mb']:.0f}) |",
        "| `python -c \"import keras; keras.models.load_model(path, compile=False)\"` | "
        f"{ker['wall']:.2f} s | {ker['rss_mb']:.0f} MB (max {ker['rss_max_mb']:.0f}) |",
        "",
        f"**Time ratio lint / load: {ratio:.3f}** (target ≤ 0.15: "
        f"{'met' if ratio <= 0.15 else 'NOT met'}). "
        f"**Peak RSS of the linter: {lint['rss_max_mb']:.0f} MB** (target ≤ 250 MB: "
        f"{'met' if lint['rss_max_mb'] <= 250 else 'NOT met'}).",
        "",
        "## Growth with layer count",
        "",
        "`cnnkit-lint` (whole process: interpreter start, imports, read, IR, cost, all "
        "rules, report) on JSON configs of n layers (1×1 conv / ReLU alternating); best "
        "of the repeats.",
        "",
        "| layers | wall time | µs per layer | peak RSS |",
        "|---:|---:|---:|---:|",
    ]
    for row in growth:
        per = 1e6 * (row["wall"] - a) / row["layers"]
        lines.append(f"| {row['layers']:,} | {row['wall']:.2f} s | {per:.0f} | "
                     f"{row['rss_mb']:.0f} MB |")
    lines += ["", f"Least-squares fit: t = {a:.2f} s + {1e6 * b:.0f} µs · n, R² = {r2:.4f} "
              "(µs per layer after subtracting the fixed cost a). Linear: "
              f"{'yes' if r2 >= 0.98 else 'NO'} (R² ≥ 0.98).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run both benchmarks and write the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--output", default=os.path.join(HERE, "results_cli.md"))
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    sizes = args.sizes or ([1000, 5000, 10000] if args.quick
                           else [1000, 2000, 5000, 10000, 20000, 50000])
    started = machine()
    print(started, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        print("InceptionV3 .h5:", flush=True)
        inception = bench_inception(tmp, repeats)
        print("growth:", flush=True)
        growth = bench_growth(tmp, sizes, max(1, repeats - 2))
    text = report(inception, growth, started)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
