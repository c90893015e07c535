"""Is linting linear in the number of layers?  And how long does InceptionV3 take?

Three measurements, in one run, on the CPU named in the output:

1. **IR chains**: synthetic chains of 100 to 10,000 layers (repeated conv 3×3 → batch
   norm → ReLU, 16 channels on a 16×16 map), converted with the shared Keras layer table
   (what the file frontend does) and linted with every rule (``lint_graph``: summary +
   rules).  Reported: time per chain, µs per layer, and a least-squares fit
   ``t = a + b·n`` with its R² (linear ⇒ R² ≈ 1 and a flat µs/layer column).
2. **Keras chains**: the same chains as live Keras models (default up to 2,000 layers:
   building a Keras model is the slow part, and Keras' own graph map recurses once per
   layer), linted with ``keras_cnnkit.lint`` (live frontend + summary + rules).
3. **InceptionV3** (``keras.applications``, built once): ``keras_cnnkit.lint`` time, the
   first call (imports and rule loading included) and the median of the next ones.

Usage::

    python benchmarks/bench_lint_scaling.py
    python benchmarks/bench_lint_scaling.py --sizes 100 1000 10000 --keras-sizes 100 1000
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PATTERN = (("Conv2D", {"filters": 16, "kernel_size": 3, "padding": "same", "use_bias": False}),
           ("BatchNormalization", {}),
           ("ReLU", {}))


def ir_chain(n_layers: int):
    """A Graph of ``n_layers`` layers (conv/BN/ReLU repeated) via the Keras layer table."""
    from keras_cnnkit.analysis.ir import Graph
    from keras_cnnkit.analysis.keras_layers import convert_layer

    graph = Graph(name=f"chain{n_layers}", source="<synthetic>", frontend="file")
    (node,) = convert_layer("input", "InputLayer", {"batch_shape": [None, 16, 16, 16]},
                            [], []).nodes
    graph.add(node)
    graph.inputs = ["input"]
    last = node
    for i in range(n_layers):
        class_name, config = PATTERN[i % len(PATTERN)]
        expansion = convert_layer(f"l{i}", class_name, config, [last.name],
                                  [last.output_shape])
        for new in expansion.nodes:
            graph.add(new)
        last = graph[expansion.output]
    graph.outputs = [last.name]
    return graph


def keras_chain(n_layers: int):
    """The same chain as a live Keras functional model."""
    import keras

    # keras.Model maps its graph recursively, a few frames per layer
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * n_layers))
    x = keras.Input((16, 16, 16))
    y = x
    for i in range(n_layers):
        class_name, config = PATTERN[i % len(PATTERN)]
        y = getattr(keras.layers, class_name)(**config)(y)
    return keras.Model(x, y)


def timed(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def linear_fit(xs, ys) -> tuple:
    """Least squares ``y = a + b·x``: (a, b, R²)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return a, b, 1 - ss_res / ss_tot if ss_tot else 1.0


def table(title: str, rows: list) -> None:
    """Print (n, seconds) rows with µs/layer and the linear fit."""
    print(f"\n{title}")
    print(f"{'layers':>8} {'time [ms]':>10} {'µs/layer':>9}")
    for n, t in rows:
        print(f"{n:>8} {1e3 * t:>10.1f} {1e6 * t / n:>9.1f}")
    if len(rows) >= 2:
        a, b, r2 = linear_fit([n for n, _ in rows], [t for _, t in rows])
        (n0, t0), (n1, t1) = rows[0], rows[-1]
        print(f"fit: t = {1e3 * a:.2f} ms + {1e6 * b:.1f} µs·n   R² = {r2:.4f};  "
              f"time ratio {t1 / t0:.1f}× for {n1 / n0:.0f}× the layers")


def main(argv=None) -> int:
    """Run the three measurements and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[100, 300, 1000, 3000, 10000])
    parser.add_argument("--keras-sizes", type=int, nargs="+", default=[100, 300, 1000, 2000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from keras_cnnkit.bench.device import cpu_name
    from keras_cnnkit.lint.api import lint, lint_graph

    print(f"device: {cpu_name()}, {os.cpu_count()} logical CPUs; Python "
          f"{sys.version.split()[0]}")
    lint_graph(ir_chain(10))                       # imports and rule loading, once

    rows_frontend, rows_lint = [], []
    for n in args.sizes:
        rows_frontend.append((n, timed(lambda n=n: ir_chain(n), args.repeats)))
        graph = ir_chain(n)
        rows_lint.append((n, timed(lambda g=graph: lint_graph(g), args.repeats)))
    table("IR chains: building the IR with the layer table (file-frontend path)",
          rows_frontend)
    table("IR chains: lint_graph (summary + all 12 rules)", rows_lint)

    rows_keras = []
    for n in args.keras_sizes:
        model = keras_chain(n)
        rows_keras.append((n, timed(lambda m=model: lint(m), args.repeats)))
        del model
    table("Keras chains: keras_cnnkit.lint on a live model (frontend + summary + rules)",
          rows_keras)

    import keras
    model = keras.applications.InceptionV3(weights=None)
    start = time.perf_counter()
    report = lint(model)
    first = time.perf_counter() - start
    later = timed(lambda: lint(model), max(args.repeats, 5))
    print(f"\nInceptionV3 ({len(report.graph)} nodes, {len(report.findings)} findings): "
          f"lint first call {1e3 * first:.0f} ms, then median {1e3 * later:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
