"""Time, not FLOPs: the latency model's predictions against measurements, per profile.

For each device profile, on the rule-grid cases it was *not* fitted on (held-out shapes;
for a calibrated profile, every rule-grid case), the predicted time ratio (after /
before) of each fix is compared with the measured one:

* **within ±25%**: the share of cases whose predicted speed-up is within 25% of the
  measured one;
* **direction**: among cases whose measured ratio lies outside 0.9–1.1, the share
  predicted on the right side of 1 (faster or slower).

Both are given over all cases and over the cases whose measured 'before' time is at
least 0.2 ms (below that a GPU kernel is launch-bound and the measurements' own spread
is about ±10%).  The FLOP ratio, used as a time prediction, is the baseline.

Also: whole keras.applications models (predicted whole-model time against measured, this
CPU, batch 1), and with ``--calibrate`` the calibration itself on this machine (its
time, then the calibrated profile against a fresh quick rule grid measured right after
it, so both see the same machine load).

Writes ``benchmarks/results_latency_model.md`` and ``benchmarks/results/latency_model.json``.

Usage::

    python benchmarks/bench_latency_model.py --quick           # recorded grids only
    python benchmarks/bench_latency_model.py --calibrate --models
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.dirname(HERE), HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# pylint: disable=wrong-import-position,import-error
import latency_grid  # noqa: E402

RESULTS = os.path.join(HERE, "results")
CALIBRATION_FILE = os.path.join(RESULTS, "latency_calibration_cpu.json")
FRESH_GRID_FILE = os.path.join(RESULTS, "latency_rules_cpu_fresh.json")
H200_SUMMARY = os.path.join(RESULTS, "latency_h200.json")
FORMS_SUMMARY = os.path.join(RESULTS, "latency_forms.json")
#: (profile, recorded rule grid, the groups it was not fitted on; None: every group).
RECORDED = (
    ("h100-jax-tf32", "rules_jax-gpu-nvidia-h100-80gb-hbm3-float32.json",
     latency_grid.HELD_OUT_FULL + (latency_grid.NAMED_GROUP,)),
    ("h100-jax-bf16", "rules_jax-gpu-nvidia-h100-80gb-hbm3-bfloat16.json",
     latency_grid.HELD_OUT_FULL + (latency_grid.NAMED_GROUP,)),
    ("cpu-generic", "rules_tensorflow-cpu-float32.json",
     latency_grid.HELD_OUT_QUICK + (latency_grid.NAMED_GROUP,)),
)
MODELS = ("MobileNetV2", "ResNet50")


def flop_baseline(cases: list, min_ms: float = 0.2) -> dict:
    """The error figures of the FLOP ratio used as the predicted time ratio."""
    from keras_cnnkit.analysis.cost import nodes_cost
    from keras_cnnkit.latency.fit import CaseResult, error_figures
    results = []
    for case in cases:
        before, after = nodes_cost(case.before).flops, nodes_cost(case.after).flops
        if before and after:
            results.append(CaseResult(case, float(before), float(after)))
    over = [r for r in results if r.case.before_ms >= min_ms]
    return {"all": error_figures(results), "over_threshold": error_figures(over)}


def evaluate_rows(profile, cases: list, label: str, source: str) -> dict:
    """One table row: the profile's figures and the FLOP baseline on ``cases``."""
    from keras_cnnkit.latency.fit import evaluate, predict_cases
    return {"profile": profile.name, "evaluated_on": label, "source": source,
            "figures": evaluate(cases, profile), "flops": flop_baseline(cases),
            "cases": [r.to_dict() for r in predict_cases(cases, profile)]}


def recorded_rows(fragments) -> list:
    """The packaged profiles on the held-out part of their recorded grids."""
    from keras_cnnkit.latency.fit import split_groups
    from keras_cnnkit.latency.profile import load_profile
    rows = []
    for name, record_file, held in RECORDED:
        record = latency_grid.load_record(os.path.join(RESULTS, record_file))
        cases, _ = latency_grid.record_cases(record, fragments)
        _, test = split_groups(cases, held)
        profile = load_profile(name)
        row = evaluate_rows(profile, test, f"held-out shapes {', '.join(held)}",
                            f"results/{record_file}")
        row["cross_validation"] = (profile.errors or {}).get("cross_validation")
        rows.append(row)
    return rows


def calibrate_here(threads: int) -> dict:
    """Calibrate this machine (timed), then measure the quick rule grid fresh."""
    import bench_rules

    from keras_cnnkit.bench.calibration import calibrate
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        profile, _ = calibrate(name="local", grid_name="cpu", cpu_threads=threads,
                               path=os.path.join(tmp, "local.json"),
                               measurements_path=CALIBRATION_FILE)
        seconds = time.perf_counter() - started
        args = bench_rules.parse_args(["--quick", "--no-noise", "--out-dir", tmp])
        record = bench_rules.run(args, os.path.join(tmp, "results"))
    record["cpu_threads"] = threads
    with open(FRESH_GRID_FILE, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
    return {"seconds": round(seconds, 1), "profile": profile.to_dict()}


def calibrated_rows(fragments, profile) -> list:
    """The calibrated profile on the fresh quick grid and on the recorded CPU grid."""
    rows = []
    for path, label in ((FRESH_GRID_FILE, "quick rule grid measured after calibrating"),
                        (os.path.join(RESULTS, "rules_tensorflow-cpu-float32.json"),
                         "recorded CPU rule grid")):
        if not os.path.exists(path):
            continue
        record = latency_grid.load_record(path)
        label += f" ({record.get('date')}, load {record.get('load_at_start')})"
        cases, _ = latency_grid.record_cases(record, fragments)
        rows.append(evaluate_rows(profile, cases, f"{label}: every case (none in the fit)",
                                  os.path.relpath(path, HERE)))
    return rows


def repredict_models(previous: list, profiles: list) -> list:
    """``previous`` whole-model rows (measured earlier) with the predictions of the
    current ``profiles``: the measured times are kept, nothing is timed."""
    import keras

    from keras_cnnkit.bench.calibration import model_nodes
    from keras_cnnkit.latency.model import predict_nodes
    rows = []
    for row in previous:
        nodes = model_nodes(getattr(keras.applications, row["model"])(weights=None))
        rows.append({**row, "predicted_ms": {p.name: predict_nodes(nodes, p, row["batch"]).ms
                                             for p in profiles},
                     "measured_on": row.get("measured_on") or "an earlier run"})
    return rows


def model_rows(profiles: list, threads: int) -> list:
    """keras.applications models at batch 1: measured here against each profile."""
    import keras

    from keras_cnnkit.bench.calibration import model_nodes, time_side_by_side
    from keras_cnnkit.latency.model import predict_nodes
    rows = []
    for name in MODELS:
        model = getattr(keras.applications, name)(weights=None)
        nodes = model_nodes(model)
        (ms,) = time_side_by_side([model], 1, budget_s=3.0)
        rows.append({"model": name, "batch": 1, "measured_ms": ms, "cpu_threads": threads,
                     "measured_on": time.strftime("%Y-%m-%d"),
                     "predicted_ms": {p.name: predict_nodes(nodes, p, 1).ms
                                      for p in profiles}})
    return rows


# --- report ---------------------------------------------------------------------------


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _figure_cells(fig: dict) -> str:
    if not fig or not fig.get("cases"):
        return "0 | n/a | n/a |"
    return (f"{fig['cases']} | {_pct(fig['within_25'])} | {_pct(fig['direction'])} "
            f"({fig['direction_cases']}) |")


def render(result: dict) -> str:
    """``results_latency_model.md``."""
    out = ["# Latency model: predicted against measured time", "",
           "Generated by `benchmarks/bench_latency_model.py` (do not edit by hand).  A "
           "case is one lint fix at one shape and batch size, its 'before' and 'after' "
           "fragments timed side by side (`bench_rules.py`).  **within ±25%**: predicted "
           "speed-up within 25% of the measured one; **direction**: right side of 1, "
           "among cases whose measured time ratio is outside 0.9–1.1 (their number in "
           "parentheses).  '> 0.2 ms': cases whose measured 'before' time is at least "
           "0.2 ms.  The FLOP ratio as a time prediction is the baseline.  Every "
           "evaluated case was left out of the profile's fit.", "",
           "| profile | evaluated on | cases | within ±25% | direction | cases > 0.2 ms | "
           "within ±25% | direction | FLOP ratio > 0.2 ms: within ±25% | direction |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        fig, flops = row["figures"], row["flops"]["over_threshold"]
        flop_cells = (f"{_pct(flops.get('within_25'))} | {_pct(flops.get('direction'))} |"
                      if flops.get("cases") else "n/a | n/a |")
        out.append(f"| {row['profile']} | {row['evaluated_on']} | "
                   f"{_figure_cells(fig['all'])} {_figure_cells(fig['over_threshold'])} "
                   f"{flop_cells}")
    out += ["", "Leave-one-shape-out cross-validation of the GPU and CPU profiles' fits "
            "(every grid shape predicted by a fit without it; more cases than the fixed "
            "held-out split):", "",
            "| profile | folds | cases > 0.2 ms | within ±25% | direction | all cases | "
            "within ±25% | direction |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        cv = row.get("cross_validation")
        if cv:
            out.append(f"| {row['profile']} | {cv['folds']} | "
                       f"{_figure_cells(cv['over_threshold'])} {_figure_cells(cv['all'])}")
    if result.get("calibration"):
        cal = result["calibration"]
        out += ["", f"Calibration on this machine ({cal['device']}, TensorFlow XLA, "
                f"measured {cal.get('date') or 'in an earlier run'}, "
                f"{cal['cpu_threads']} thread): **{cal['seconds']:.0f} s** for "
                f"{cal['observations']} timed grid entries and {cal['checks']} held-out "
                f"check pairs, compilation included; 1-minute load average "
                f"{cal['load']} at the start (2 cores, shared)."]
    if result.get("forms"):
        forms = result["forms"]
        names = list(forms["forms"][0]["profiles"])
        out += ["", "## The model's form, chosen without the held-out shapes", "",
                "How the throughput and depth terms combine (`depth_norm`) and how a conv's "
                "figures depend on its kernel size, each form scored by " + forms["method"]
                + " (`tools/fit_latency_profiles.py forms`); cases over 0.2 ms, within "
                "±25% and direction:", "",
                "| form | " + " | ".join(f"{n}: cases | within ±25% | direction"
                                       for n in names) + " |",
                "|---|" + "---:|---:|---:|" * len(names)]
        for row in forms["forms"]:
            out.append(f"| {row['form']} | " + " ".join(
                _figure_cells(row["profiles"][n]["over_threshold"]) for n in names))
    if result.get("models"):
        names = sorted({p for m in result["models"] for p in m["predicted_ms"]})
        dates = sorted({m.get("measured_on") or "an earlier run" for m in result["models"]})
        out += ["", "Whole keras.applications models, batch 1, this CPU (one thread), "
                f"random weights (measured {', '.join(dates)}):", "",
                "| model | measured ms | " + " | ".join(f"{n} ms (error)" for n in names)
                + " |", "|---|---:|" + "---:|" * len(names)]
        for m in result["models"]:
            cells = []
            for n in names:
                pred = m["predicted_ms"].get(n)
                cells.append("n/a" if pred is None else
                             f"{pred:.1f} ({100 * (pred / m['measured_ms'] - 1):+.0f}%)")
            out.append(f"| {m['model']} | {m['measured_ms']:.1f} | " + " | ".join(cells) + " |")
    if result.get("h200"):
        out += ["", "## H200 (measured by `gpu_run.sh latency`)", ""]
        out += ["| profile | cases | within ±25% | direction | cases > 0.2 ms | "
                "within ±25% | direction |", "|---|---:|---:|---:|---:|---:|---:|"]
        for label, fig in result["h200"]["profiles"].items():
            out.append(f"| {label} | {_figure_cells(fig['all'])} "
                       f"{_figure_cells(fig['over_threshold'])}")
    out += ["", "## Held-out cases over 0.2 ms", "",
            "| profile | case | batch | measured before / after ms | ratio | predicted "
            "before / after ms | ratio |", "|---|---|---:|---|---:|---|---:|"]
    for row in result["rows"]:
        for case in row["cases"]:
            if case["before_ms"] < 0.2 or case["predicted_ratio"] is None:
                continue
            out.append(f"| {row['profile']} | {case['label']} | {case['batch']} | "
                       f"{case['before_ms']:.3f} / {case['after_ms']:.3f} | "
                       f"{case['ratio']:.2f} | {case['predicted_before_ms']:.3f} / "
                       f"{case['predicted_after_ms']:.3f} | {case['predicted_ratio']:.2f} |")
    return "\n".join(out) + "\n"


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true",
                        help="only the packaged profiles on the recorded grids")
    parser.add_argument("--calibrate", action="store_true",
                        help="calibrate this machine and measure the quick grid afresh")
    parser.add_argument("--models", action="store_true",
                        help="time MobileNetV2 and ResNet50 here against the predictions")
    parser.add_argument("--keep-measured", action="store_true",
                        help="re-predict from recorded measurements only: keep the previous "
                             "run's calibration time and whole-model times (re-predicted "
                             "with the current profiles)")
    parser.add_argument("--cpu-threads", type=int, default=1)
    parser.add_argument("--out-dir", default=HERE)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Evaluate, render, write."""
    args = parse_args(argv)
    from keras_cnnkit.bench.device import detect, set_cpu_threads
    from keras_cnnkit.bench.calibration import fit_from_measurements
    from keras_cnnkit.latency.data import read_measurements
    from keras_cnnkit.latency.profile import load_profile
    load = round(os.getloadavg()[0], 2)
    calibration = None
    if args.calibrate and not args.quick:
        calibration = calibrate_here(args.cpu_threads)  # first: it sets the threads
    elif args.cpu_threads and not args.quick:
        set_cpu_threads(args.cpu_threads)
    fragments = latency_grid.GridFragments()
    result = {"date": time.strftime("%Y-%m-%d"), "rows": recorded_rows(fragments)}
    profiles = [load_profile(name) for name, _, _ in RECORDED]
    if not args.quick:
        if os.path.exists(CALIBRATION_FILE):
            meta, observations, cases = read_measurements(CALIBRATION_FILE)
            device = detect()
            local = fit_from_measurements(observations, cases, "local (calibrated here)",
                                          device.kind, device.name, device.backend,
                                          cpu_threads=meta.get("cpu_threads"))
            profiles.append(local)
            result["rows"] += calibrated_rows(fragments, local)
            if calibration:
                result["calibration"] = {
                    "seconds": calibration["seconds"], "device": device.name,
                    "cpu_threads": args.cpu_threads, "observations": len(observations),
                    "checks": len(cases), "load": load, "date": time.strftime("%Y-%m-%d")}
        if args.models:
            result["models"] = model_rows([p for p in profiles if p.device["kind"] == "cpu"],
                                          args.cpu_threads)
    previous_path = os.path.join(args.out_dir, "results", "latency_model.json")
    if args.keep_measured and os.path.exists(previous_path):
        with open(previous_path, encoding="utf-8") as fh:
            previous = json.load(fh)
        if previous.get("calibration") and "calibration" not in result:
            result["calibration"] = {"date": previous.get("date"), **previous["calibration"]}
        if previous.get("models") and "models" not in result:
            result["models"] = repredict_models(
                previous["models"], [p for p in profiles if p.device["kind"] == "cpu"])
    if os.path.exists(FORMS_SUMMARY):
        with open(FORMS_SUMMARY, encoding="utf-8") as fh:
            result["forms"] = json.load(fh)
    if os.path.exists(H200_SUMMARY):
        with open(H200_SUMMARY, encoding="utf-8") as fh:
            result["h200"] = json.load(fh)
    os.makedirs(os.path.join(args.out_dir, "results"), exist_ok=True)
    with open(os.path.join(args.out_dir, "results", "latency_model.json"), "w",
              encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    md = os.path.join(args.out_dir, "results_latency_model.md")
    with open(md, "w", encoding="utf-8") as fh:
        fh.write(render(result))
    print(f"wrote {md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
