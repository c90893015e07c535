"""Fit the packaged latency profiles from recorded measurements, with held-out figures.

Profiles written to ``keras_cnnkit/latency/profiles/``:

* ``h100-jax-tf32`` / ``h100-jax-bf16``: from the recorded H100 rule grids
  (``benchmarks/results/rules_jax-gpu-nvidia-h100-80gb-hbm3-*.json``), fitted on the grid
  shapes not in ``latency_grid.HELD_OUT_FULL`` nor the VGG16 cases; the held-out figures
  are measured on those.  A leave-one-shape-out cross-validation over every shape is
  recorded too (``errors["cross_validation"]``).
* ``cpu-generic``: from the recorded TensorFlow CPU rule grid (1 thread) with
  ``HELD_OUT_QUICK`` and the VGG16 cases held out, plus a calibration grid measured on the
  same machine when one is given (``--calibration``).
* ``forms``: no profile; the model-form comparison (how the throughput and depth terms
  combine, one power law in taps or a factor per kernel size) by cross-validation over
  the H100 training shapes, to ``benchmarks/results/latency_forms.json``.
* ``h200-jax-tf32``: from the JSON that ``benchmarks/latency_gpu.py`` writes on a GPU
  (``h200 PATH``): fitted on its calibration grid only, so every rule-grid case it
  measured is held out; the H100 profile's figures on the same cases (is a profile
  portable across one GPU generation?) and a fit that also uses the rule grid's
  training shapes are written beside it, to ``benchmarks/results/latency_h200.json``.

Usage::

    python tools/fit_latency_profiles.py h100
    python tools/fit_latency_profiles.py forms
    python tools/fit_latency_profiles.py cpu \
        [--calibration benchmarks/results/latency_calibration_cpu.json]
    python tools/fit_latency_profiles.py h200 gpu-out/latency_gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _path in (ROOT, os.path.join(ROOT, "benchmarks")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# pylint: disable=wrong-import-position,import-error
import latency_grid  # noqa: E402

from keras_cnnkit.latency import fit as fitting  # noqa: E402
from keras_cnnkit.latency.data import read_measurements  # noqa: E402
from keras_cnnkit.latency.model import predict_nodes  # noqa: E402
from keras_cnnkit.latency.nominal import nominal_profile  # noqa: E402
from keras_cnnkit.latency.profile import packaged_dir  # noqa: E402

RESULTS = os.path.join(ROOT, "benchmarks", "results")
H100 = "NVIDIA H100 80GB HBM3"
H100_RECORDS = {"h100-jax-tf32": ("rules_jax-gpu-nvidia-h100-80gb-hbm3-float32.json",
                                  "float32"),
                "h100-jax-bf16": ("rules_jax-gpu-nvidia-h100-80gb-hbm3-bfloat16.json",
                                  "bfloat16")}
CPU_RECORD = "rules_tensorflow-cpu-float32.json"


def cross_validate(cases: list, start, groups=None, kernel_fit: str = "factors") -> dict:
    """Leave-one-group-out: each group's cases predicted by a fit on all other groups."""
    groups = sorted(groups or {c.group for c in cases})
    results = []
    for group in groups:
        train, test = fitting.split_groups(cases, [group])
        if not test or not train:
            continue
        profile = fitting.fit_profile(fitting.observations_of(train), start, "cv",
                                      kernel_fit=kernel_fit)
        results += fitting.predict_cases(test, profile)
    over = [r for r in results if r.case.before_ms >= 0.2]
    both = [r for r in over if r.case.after_ms >= 0.2]
    return {"min_ms": 0.2, "folds": len(groups), "all": fitting.error_figures(results),
            "over_threshold": fitting.error_figures(over),
            "both_over_threshold": fitting.error_figures(both)}


def fit_recorded(name: str, record_file: str, held_out: tuple, start, extra=(),
                 cv: bool = True, source_note: str = ""):
    """A profile fitted on a recorded rule grid's training shapes (+ ``extra``
    observations), with its error figures."""
    record = latency_grid.load_record(os.path.join(RESULTS, record_file))
    cases, problems = latency_grid.record_cases(record)
    if problems:
        print(f"{record_file}: {len(problems)} rows not used: {problems[:3]}")
    held = tuple(held_out) + (latency_grid.NAMED_GROUP,)
    train, test = fitting.split_groups(cases, held)
    provenance = {"source": f"benchmarks/results/{record_file}" + source_note,
                  "recorded": record.get("date"), "keras": record.get("keras"),
                  "held_out_groups": list(held), "train_cases": len(train),
                  "held_out_cases": len(test)}
    observations = fitting.observations_of(train) + list(extra)
    profile = fitting.fit_profile(observations, start, name, provenance=provenance)
    profile.errors = {
        "held_out": fitting.evaluate(test, profile),
        "held_out_source": "rule-grid shapes " + ", ".join(held) + " (not in the fit)",
        "train": fitting.evaluate(train, profile),
    }
    if cv:
        grid_cases = [c for c in cases if c.group != latency_grid.NAMED_GROUP]
        profile.errors["cross_validation"] = cross_validate(grid_cases, start)
    return profile, cases


def _save(profile, directory: str = "") -> str:
    path = os.path.join(directory or packaged_dir(), f"{profile.name}.json")
    profile.save(path)
    print(f"wrote {path}: {profile.error_summary()}")
    return path


def fit_h100(cv: bool = True) -> list:
    """Fit and write both H100 profiles."""
    paths = []
    for name, (record_file, dtype) in H100_RECORDS.items():
        start = nominal_profile(name, "gpu", H100, "jax", dtype, "jit")
        start.notes = ("float32 runs as TF32 on the tensor cores (the backends' default on "
                       "this GPU)" if dtype == "float32" else "")
        profile, _ = fit_recorded(name, record_file, latency_grid.HELD_OUT_FULL, start,
                                  cv=cv)
        paths.append(_save(profile))
    return paths


def fit_cpu(calibration: str = "", cv: bool = True) -> str:
    """Fit and write the generic CPU profile."""
    extra, note = [], ""
    if calibration:
        meta, extra, _ = read_measurements(calibration)
        note = (f" + calibration grid {os.path.relpath(calibration, ROOT)} "
                f"({meta.get('date')}, {len(extra)} observations)")
    start = nominal_profile("cpu-generic", "cpu", "x86-64 CPU (fitted on a 2-core AMD EPYC)",
                            "tensorflow", "float32", "xla", cpu_threads=1)
    start.notes = ("Fitted on one 2-core AMD EPYC (AVX-512) VM, TensorFlow XLA, one thread. "
                   "Absolute times scale with the machine; ratios (speed-ups) carry over "
                   "better.  Run cnnkit-lint --calibrate for this machine's own profile.")
    profile, _ = fit_recorded("cpu-generic", CPU_RECORD, latency_grid.HELD_OUT_QUICK, start,
                              extra=extra, cv=cv, source_note=note)
    return _save(profile)


#: The model forms ``forms`` compares: (label, depth_norm, kernel_fit).  The first is
#: the form the profiles had before per-kernel factors (max of the terms, one power law).
FORMS = (("max, one power law in taps", None, "power"),
         ("max, factors per kernel size", None, "factors"),
         ("sum (1-norm), factors per kernel size", 1.0, "factors"),
         ("1.5-norm, factors per kernel size", 1.5, "factors"),
         ("hypot (2-norm), one power law in taps", 2.0, "power"),
         ("hypot (2-norm), factors per kernel size", 2.0, "factors"),
         ("3-norm, factors per kernel size", 3.0, "factors"))


def compare_forms(out: str = os.path.join(RESULTS, "latency_forms.json")) -> dict:
    """Model selection without the held-out shapes: for each form in :data:`FORMS` and
    each H100 record, leave-one-shape-out cross-validation over the *training* shapes
    only (the held-out shapes and the VGG16 cases stay unseen, so the held-out figures
    remain a test of the form chosen here)."""
    summary = {"method": "leave-one-shape-out over the training shapes of each record "
                         "(held-out shapes and VGG16 cases excluded)", "forms": []}
    for label, norm, kernel_fit in FORMS:
        row = {"form": label, "depth_norm": norm, "kernel_fit": kernel_fit, "profiles": {}}
        for name, (record_file, dtype) in H100_RECORDS.items():
            record = latency_grid.load_record(os.path.join(RESULTS, record_file))
            cases, _ = latency_grid.record_cases(record)
            train, _ = fitting.split_groups(
                cases, latency_grid.HELD_OUT_FULL + (latency_grid.NAMED_GROUP,))
            start = nominal_profile(name, "gpu", H100, "jax", dtype, "jit")
            start.depth_norm = norm
            row["profiles"][name] = cross_validate(train, start, kernel_fit=kernel_fit)
        summary["forms"].append(row)
        print(label, {n: round(cv["over_threshold"].get("within_25") or 0, 2)
                      for n, cv in row["profiles"].items()}, flush=True)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    print(f"wrote {out}")
    return summary


def fit_h200(path: str, out: str = os.path.join(RESULTS, "latency_h200.json"),
             profile_dir: str = "") -> dict:
    """Fit the H200 profile from ``benchmarks/latency_gpu.py``'s JSON, check it and the
    H100 profile on the rule-grid cases measured there; write the profile and a
    summary."""
    from keras_cnnkit.latency.profile import load_profile
    meta, observations, cases = read_measurements(path)
    grid_obs = [o for o in observations if not o.group.startswith("model:")]
    models = [o for o in observations if o.group.startswith("model:")]
    checks = [c for c in cases if c.rule is None]
    rule_cases = [c for c in cases if c.rule is not None]
    device = meta["device"]["name"]
    dtype = meta.get("dtype", "float32")
    backend = meta.get("backend", "jax")
    name = f"h200-{backend}-tf32" if "H200" in device.upper() else "-".join(
        part for part in "".join(ch if ch.isalnum() else "-" for ch in device.lower()
                                 ).split("-") if part) + f"-{backend}"
    kind = meta["device"].get("kind", "gpu")
    start = nominal_profile(name, kind, device, backend, dtype,
                            {"jax": "jit", "tensorflow": "xla"}.get(backend, "eager"))
    # the calibration grid times each kernel size other than 3×3 at one or two shapes:
    # one power law in taps, as calibrate() fits (factors per size need a rule grid)
    profile = fitting.fit_profile(grid_obs, start, name, kernel_fit="power", provenance={
        "source": f"benchmarks/latency_gpu.py calibration grid ({meta.get('date')})",
        "observations_file": os.path.basename(path), "train_observations": len(grid_obs)})
    profile.errors = {
        "held_out": fitting.evaluate(rule_cases + checks, profile),
        "held_out_source": "every rule-grid case and check pair measured on this GPU "
                           "(the fit saw only the calibration grid)",
    }
    _save(profile, profile_dir)
    summary = {"device": meta["device"], "date": meta.get("date"),
               "measured": {"grid": len(grid_obs), "rule_cases": len(rule_cases),
                            "checks": len(checks), "models": len(models)},
               "profiles": {}}
    train, test = fitting.split_groups(rule_cases, latency_grid.HELD_OUT_FULL)
    with_grid = fitting.fit_profile(grid_obs + fitting.observations_of(train), start,
                                    f"{name}+grid")
    for label, prof, on in (
            (name, profile, rule_cases),
            (f"{name} (held-out shapes)", profile, test),
            ("h100-jax-tf32 on this GPU", load_profile("h100-jax-tf32"), rule_cases),
            ("h100-jax-tf32 on this GPU (held-out shapes)", load_profile("h100-jax-tf32"),
             test),
            (f"{name}+grid (calibration + training shapes; held-out shapes)", with_grid,
             test)):
        summary["profiles"][label] = fitting.evaluate(on, prof)
    summary["models"] = [
        {"label": o.label, "batch": o.batch, "ms": o.ms,
         "h200": predict_nodes(o.nodes, profile, o.batch).ms,
         "h100": predict_nodes(o.nodes, load_profile("h100-jax-tf32"), o.batch).ms}
        for o in models]
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=1)
    print(f"wrote {out}")
    return summary


def main(argv=None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("what", choices=["h100", "cpu", "h200", "all", "forms"])
    parser.add_argument("path", nargs="?", help="h200: the JSON from latency_gpu.py")
    parser.add_argument("--calibration", default="",
                        help="cpu: a calibration measurement file to fit on as well")
    parser.add_argument("--no-cv", action="store_true",
                        help="skip the leave-one-shape-out cross-validation")
    parser.add_argument("--profile-dir", default="",
                        help="h200: write the profile there (default: the package's)")
    parser.add_argument("--summary", default=os.path.join(RESULTS, "latency_h200.json"),
                        help="h200: where the summary JSON goes")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.what in ("h100", "all"):
        fit_h100(cv=not args.no_cv)
    if args.what in ("cpu", "all"):
        fit_cpu(args.calibration, cv=not args.no_cv)
    if args.what == "forms":
        compare_forms()
    if args.what == "h200":
        if not args.path:
            parser.error("h200 needs the JSON written by benchmarks/latency_gpu.py")
        fit_h200(args.path, args.summary, args.profile_dir)
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
