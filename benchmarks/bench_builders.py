"""The required builders against their keras.applications twins: build time and CPU
forward latency (batch 1 and 32), measured side by side in one run, as ratios.

For each pair (``build_inception_v3`` / ``InceptionV3``, ``build_densenet121/169/201`` /
``DenseNet121/169/201``, ``build_mobilenet_v2`` / ``MobileNetV2``), at the default
ImageNet input size, ``weights=None``:

* **build**: wall time of one builder call (input to uncompiled ``Model``), after one
  warm-up build each, over ``--repeats`` calls, ours and keras' alternating;
* **latency**: ``model.predict_on_batch`` on a fixed random batch of 1 and of 32, after
  a warm-up call, over ``--repeats`` x 5 (batch 1) or ``--repeats`` - 1 (batch 32, at
  least 2) calls each, alternating.

Times are medians, the garbage collector paused while timing.  The ratio (ours /
keras', target <= 1.05) is the median of the ratios of adjacent runs, which share
whatever load the machine has at that moment.
Writes ``benchmarks/results_builders.md`` (``--output`` to change) and prints the table.

Usage::

    python benchmarks/bench_builders.py
    python benchmarks/bench_builders.py --quick            # fewer repeats
    python benchmarks/bench_builders.py --models mobilenet_v2 densenet121
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# pylint: disable=wrong-import-position
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cnnkit import models  # noqa: E402

PAIRS = {
    "inception_v3": (models.build_inception_v3, keras.applications.InceptionV3, 299),
    "densenet121": (models.build_densenet121, keras.applications.DenseNet121, 224),
    "densenet169": (models.build_densenet169, keras.applications.DenseNet169, 224),
    "densenet201": (models.build_densenet201, keras.applications.DenseNet201, 224),
    "mobilenet_v2": (models.build_mobilenet_v2, keras.applications.MobileNetV2, 224),
}


def _timed(fn):
    """Wall time of ``fn()``, with the garbage collector paused (as ``timeit`` does)."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result
    finally:
        gc.enable()


def side_by_side(ours, theirs, repeats: int) -> tuple:
    """Median times of ``ours()`` and ``theirs()`` called alternately, and the median of
    the per-pair ratios (adjacent runs share the machine's load of the moment)."""
    times_ours, times_theirs = [], []
    for i in range(repeats):
        if i % 2 == 0:
            times_ours.append(_timed(ours)[0])
            times_theirs.append(_timed(theirs)[0])
        else:
            times_theirs.append(_timed(theirs)[0])
            times_ours.append(_timed(ours)[0])
    ratios = [a / b for a, b in zip(times_ours, times_theirs)]
    return (statistics.median(times_ours), statistics.median(times_theirs),
            statistics.median(ratios))


def bench_pair(name: str, repeats: int) -> list:
    """Rows ``(name, measure, ours, keras, ratio)`` for one builder pair."""
    ours_fn, keras_fn, size = PAIRS[name]
    mine, theirs = ours_fn(weights=None), keras_fn(weights=None)  # warm-up builds
    rows = [(name, "build (s)", *side_by_side(lambda: ours_fn(weights=None),
                                               lambda: keras_fn(weights=None), repeats))]
    rng = np.random.default_rng(0)
    for batch, n in ((1, repeats * 5), (32, max(2, repeats - 1))):
        x = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
        mine.predict_on_batch(x)
        theirs.predict_on_batch(x)
        t_ours, t_theirs, ratio = side_by_side(lambda m=mine, x=x: m.predict_on_batch(x),
                                               lambda m=theirs, x=x: m.predict_on_batch(x),
                                               n)
        rows.append((name, f"latency batch {batch} (ms)", t_ours * 1e3, t_theirs * 1e3,
                     ratio))
    return rows


def machine() -> str:
    """The CPU, core count and software versions, in one line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh
                     if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}, "
            f"Keras {keras.__version__} ({keras.backend.backend()} backend)")


def to_markdown(rows: list, repeats: int, load: tuple) -> str:
    """The results as a markdown section; ``load``: load averages before and after."""
    lines = [
        "# Builders vs keras.applications: build time and CPU latency",
        "",
        f"Machine: {machine()}; 1-minute load average {load[0]:.1f} before the run, "
        f"{load[1]:.1f} after.",
        f"Command: `python benchmarks/bench_builders.py` (repeats={repeats}); medians of "
        "alternating runs, `weights=None`, default ImageNet input size; latency is "
        "`predict_on_batch`.  Ratio = median of adjacent-run ratios ours / keras "
        "(target <= 1.05).",
        "",
        "The builders' layers have the same classes and configurations, in the same order, "
        "as keras.applications' (`tests/test_models_parity.py`), so the forward passes "
        "compute the same ops; latency ratios away from 1 measure the machine's noise.",
        "",
        "| model | measure | keras-cnnkit | keras.applications | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for name, measure, ours, theirs, ratio in rows:
        lines.append(f"| {name} | {measure} | {ours:.3f} | {theirs:.3f} | {ratio:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    """Run the benchmark, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--models", nargs="+", choices=sorted(PAIRS), default=list(PAIRS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat (noisier)")
    parser.add_argument("--output", default=os.path.join(HERE, "results_builders.md"))
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    rows = []
    load_before = os.getloadavg()[0]
    for name in args.models:
        rows.extend(bench_pair(name, repeats))
        print(f"{name}: done", flush=True)
    text = to_markdown(rows, repeats, (load_before, os.getloadavg()[0]))
    print(text)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
