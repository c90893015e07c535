"""Measure what a device profile is fitted and checked on, in one timed run (a lent GPU).

In order, until ``--max-minutes`` (what was measured is written after every item, so a
run cut short keeps it):

1. the calibration grid (``keras_cnnkit.bench.calibration.grid``; ``gpu`` on a GPU):
   what the profile is fitted on;
2. its held-out before/after check pairs;
3. the rule grid: each rule's fix at each grid shape (``bench_rules.py``'s patterns),
   before and after timed interleaved at batch 1 and 32, held-out shapes first: the
   cases the fitted profile and the H100 profile are checked on;
4. whole keras.applications models (MobileNetV2, ResNet50) at batch 1 and 32, if time
   is left (``--models`` time is reserved for them).

Everything goes into one JSON file (``keras_cnnkit.latency.data.write_measurements``:
every fragment's IR travels with its time), which
``python tools/fit_latency_profiles.py h200 FILE`` fits and checks on any machine.
The code is backend-agnostic (Keras ops, compiled by the backend: ``jax.jit`` on JAX,
XLA on TensorFlow); TensorFlow is never imported on the JAX backend.

Usage::

    KERAS_BACKEND=jax python benchmarks/latency_gpu.py --out gpu-out/latency_gpu.json
    python benchmarks/latency_gpu.py --grid tiny --rule-grid tiny --models --out /tmp/x.json
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(HERE), HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

#: The whole models timed last.
MODELS = ("MobileNetV2", "ResNet50")


def rule_jobs(grid: str) -> list:
    """``(rule, channels, size)`` of the rule grid, the held-out shapes first, then the
    others; within a shape every rule (a run cut short keeps whole shapes)."""
    import bench_rules  # pylint: disable=import-error
    import latency_grid  # pylint: disable=import-error
    pairs = list(bench_rules.GRIDS[grid])
    held = [p for p in pairs if latency_grid.shape_group(*p) in latency_grid.HELD_OUT]
    pairs = held + [p for p in pairs if p not in held]
    jobs = []
    for c, s in pairs:
        for rule in bench_rules._patterns():  # pylint: disable=protected-access
            if rule == "flatten-dense-head" and not bench_rules._head_fits(c, s):  # pylint: disable=protected-access
                continue
            jobs.append((rule, c, s))
    return jobs


def measure_rule(fragments, rule: str, channels: int, size: int, batches, dtype: str,
                 budget_s: float) -> list:
    """The :class:`~keras_cnnkit.latency.data.Case` s of one rule at one shape."""
    import latency_grid  # pylint: disable=import-error

    from keras_cnnkit.bench.calibration import time_side_by_side
    from keras_cnnkit.latency.data import Case
    from keras_cnnkit.rewrite.build import replacement_models
    graph, finding = fragments.finding(rule, channels, size)
    if finding is None:
        return []
    before_nodes, after_nodes, _, _ = fragments.grid(rule, channels, size)
    before, after = replacement_models(graph, finding.replacement, dtype=dtype, name=rule)
    group = latency_grid.shape_group(channels, size)
    cases = []
    for batch in batches:
        before_ms, after_ms = time_side_by_side([before, after], batch, budget_s)
        cases.append(Case(f"{rule} C={channels} {size}x{size}", group, batch, before_nodes,
                          after_nodes, before_ms, after_ms, rule))
    return cases


def measure_model(name: str, batches, budget_s: float) -> list:
    """Observations of a keras.applications model's forward pass (random weights)."""
    import keras

    from keras_cnnkit.bench.calibration import model_nodes, time_side_by_side
    from keras_cnnkit.latency.data import Observation
    model = getattr(keras.applications, name)(weights=None)
    nodes = model_nodes(model)
    out = []
    for batch in batches:
        (ms,) = time_side_by_side([model], batch, budget_s)
        out.append(Observation(nodes, batch, ms, f"{name} b{batch}", f"model:{name}"))
    return out


def run(args) -> str:
    """Measure and write; returns the output path."""
    import keras

    import latency_grid  # pylint: disable=import-error

    from keras_cnnkit.bench.device import detect
    from keras_cnnkit.bench.calibration import check_cases, grid, measure_grid, measure_pairs
    from keras_cnnkit.latency.data import write_measurements

    started = time.perf_counter()
    if args.dtype != "float32":
        keras.config.set_dtype_policy(args.dtype)
    device = detect()
    grid_name = args.grid or ("gpu" if device.is_gpu else "cpu")
    meta = {"device": device.to_dict(), "backend": device.backend, "dtype": args.dtype,
            "keras": keras.__version__, "grid": grid_name, "rule_grid": args.rule_grid,
            "date": time.strftime("%Y-%m-%d"), "complete": False, "skipped": []}
    observations, cases = [], []

    def elapsed() -> float:
        return (time.perf_counter() - started) / 60.0

    def save(note: str = "") -> None:
        meta["minutes"] = round(elapsed(), 2)
        write_measurements(args.out, meta, observations, cases)
        if note:
            print(f"[{60 * elapsed():5.0f} s] {note}", flush=True)

    reserve = args.model_minutes if args.models else 0.0
    entries = grid(grid_name)
    for index, entry in enumerate(entries):
        if elapsed() >= args.max_minutes - reserve:
            meta["skipped"].append(f"{len(entries) - index} grid entries: out of time")
            break
        observations += measure_grid([entry], budget_s=args.budget)
        save(f"grid {entry.label}")
    cases += measure_pairs(check_cases(grid_name), budget_s=args.budget)
    save("check pairs")
    fragments = latency_grid.GridFragments()
    jobs = rule_jobs(args.rule_grid)
    for index, (rule, c, s) in enumerate(jobs):
        if elapsed() >= args.max_minutes - reserve:
            meta["skipped"].append(f"{len(jobs) - index} rule-grid case(s): out of time")
            break
        try:
            cases += measure_rule(fragments, rule, c, s, args.batches, args.dtype,
                                  args.budget)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            meta["skipped"].append(f"{rule} {c}x{s}: {type(exc).__name__}: {exc}"[:300])
        save(f"rule {rule} {c}x{s}")
    for name in MODELS if args.models else ():
        if elapsed() >= args.max_minutes:
            meta["skipped"].append(f"model {name}: out of time")
            continue
        try:
            observations += measure_model(name, args.batches, args.budget)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            meta["skipped"].append(f"model {name}: {type(exc).__name__}: {exc}"[:300])
        save(f"model {name}")
    meta["complete"] = not meta["skipped"]
    save("done")
    return args.out


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--grid", choices=["cpu", "gpu", "tiny"],
                        help="calibration grid (default: by the device)")
    parser.add_argument("--rule-grid", default="full", choices=["full", "quick", "tiny"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--budget", type=float, default=0.6,
                        help="rough seconds per measurement")
    parser.add_argument("--max-minutes", type=float, default=4.5,
                        help="stop starting new items after this long")
    parser.add_argument("--models", action="store_true",
                        help="also time MobileNetV2 and ResNet50")
    parser.add_argument("--model-minutes", type=float, default=1.0,
                        help="minutes kept for the models at the end")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Run; prints where the results went."""
    args = parse_args(argv)
    path = run(args)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
