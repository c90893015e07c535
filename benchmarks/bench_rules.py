"""Where do FLOP savings turn into time savings?  Every rule's fix, timed over a grid.

For each fixable lint rule, a small model holding the rule's pattern is built at each
(channels, map size) of the grid and linted; the finding's own replacement (the rule's
IR fragment) and the nodes it removes are built as Keras models (random weights) and
timed side by side at each batch size with :mod:`keras_cnnkit.bench` (compiled, warm-up
excluded, synchronised, median and IQR).  The table puts the cost model's estimated
FLOP ratio (after / before) next to the measured time ratio, per rule and device.

Also measured: the cases the issue names (VGG16's flatten→fc1 head against global
average pooling; the bottleneck form of VGG16's 512→512 3×3 convs), and the harness's
own noise: every case is timed a second time straight after the first, and the two
medians must agree within 10% for cases over 1 ms.

Results are kept per device in ``benchmarks/results/rules_<backend>-<device>.json``
(merged case by case, so the grid can be filled in several runs, e.g. ``--rules``) and
rendered, for every device on record, to ``benchmarks/results_rules.md`` and
``benchmarks/rules_ratio.png``.

Usage::

    python benchmarks/bench_rules.py --quick          # small grid, CPU-friendly
    KERAS_BACKEND=jax python benchmarks/bench_rules.py  # full grid on a GPU
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Callable, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(HERE) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(HERE))

#: Full grid: (channels, map) pairs of realistic CNN stages (C·S between 1792 and 7168).
FULL_PAIRS = tuple((c, s) for c in (32, 64, 128, 256, 512, 1024) for s in (7, 14, 28, 56, 112)
                   if 1792 <= c * s <= 7168)
#: Quick grid: small shapes that run in about a minute on two CPU cores.
QUICK_PAIRS = ((32, 28), (64, 14), (128, 7))
#: The test grid (tiny, seconds).
TINY_PAIRS = ((16, 8),)
GRIDS = {"full": FULL_PAIRS, "quick": QUICK_PAIRS, "tiny": TINY_PAIRS}

#: Rule options that let every pattern fire at every grid shape (the benchmark wants the
#: replacement's timing everywhere, not only where the rule would report it).
RULE_OPTIONS = {"asymmetric-factorization": {"min_size": 1, "max_size": 10 ** 6},
                "depthwise-separable-candidate": {"min_saving": 0.0, "min_channels": 0},
                "missing-bottleneck": {"min_width": 1}}

#: Noise criterion: two consecutive runs agree within this for cases over 1 ms.
NOISE_LIMIT = 0.10
NOISE_MIN_MS = 1.0


def _patterns() -> dict:
    """Rule symbol → ``build(channels, size) -> keras.Model`` holding its pattern."""
    import keras
    layers = keras.layers

    def single(kernel):
        def build(c, s):
            x = keras.Input((s, s, c))
            y = layers.Conv2D(c, kernel, padding="same", name="conv")(x)
            return keras.Model(x, layers.GlobalAveragePooling2D(name="gap")(y))
        return build

    def head(c, s):
        x = keras.Input((s, s, c))
        y = layers.Flatten(name="flatten")(x)
        return keras.Model(x, layers.Dense(1024, activation="relu", name="fc1")(y))

    def projection(c, s):
        x = keras.Input((s, s, c))
        y = layers.Conv2D(4 * c, 1, activation="relu", name="expand")(x)
        y = layers.Conv2D(c, 1, name="project")(y)
        y = layers.ReLU(name="project_relu")(y)
        return keras.Model(x, layers.Add(name="add")([x, y]))

    def groups(c, s):
        x = keras.Input((s, s, c))
        y = layers.Conv2D(c, 1, groups=4, activation="relu", name="g1")(x)
        return keras.Model(x, layers.Conv2D(c, 1, groups=4, name="g2")(y))

    def bias_bn(c, s):
        x = keras.Input((s, s, c))
        y = layers.Conv2D(c, 3, padding="same", name="conv")(x)
        return keras.Model(x, layers.BatchNormalization(name="bn")(y))

    def dropout_bn(c, s):
        x = keras.Input((s, s, c))
        y = layers.Dropout(0.3, name="drop")(x)
        return keras.Model(x, layers.BatchNormalization(name="bn")(y))

    return {
        "large-kernel": single(5),
        "asymmetric-factorization": single(7),
        "missing-bottleneck": single(3),
        "depthwise-separable-candidate": single(3),
        "flatten-dense-head": head,
        "relu-after-projection": projection,
        "group-conv-without-shuffle": groups,
        "bias-before-batchnorm": bias_bn,
        "dropout-before-batchnorm": dropout_bn,
    }


def _head_fits(c: int, s: int) -> bool:
    """Flatten→Dense(1024) heads above ~100M weights are not realistic; skip them."""
    return c * s * s * 1024 <= 110_000_000


def finding_for(model, symbol: str):
    """Lint ``model`` with the one rule; its first finding that has a replacement."""
    from keras_cnnkit.lint.api import lint
    report = lint(model, select=[symbol], options=RULE_OPTIONS, min_impact=0)
    for finding in report.rule_findings:
        if finding.replacement is not None:
            return report.graph, finding
    return report.graph, None


def _timing_kwargs(args) -> dict:
    return {"warmup": 2, "repeats": args.repeats, "min_sample_s": args.min_sample,
            "max_rel_iqr": args.max_spread or None, "retries": 2,
            "budget_s": args.budget}


def time_pair(graph, finding, batches, args, noise: bool) -> list:
    """Rows for one finding: before/after medians per batch (and a second 'before' run).

    Each side is compiled once per batch.  The noise run repeats the same interleaved
    before/after measurement straight after the first (a solo rerun of 'before' is not
    the same benchmark: on a CPU, the 'after' model's traffic between the interleaved
    samples evicts the 'before' weights from the cache, which a solo run never sees).
    """
    from keras_cnnkit.bench.timing import measure_interleaved, random_inputs, runner
    from keras_cnnkit.rewrite.build import replacement_models
    before, after = replacement_models(graph, finding.replacement, dtype=args.dtype,
                                       name=finding.symbol)
    rows = []
    for batch in batches:
        runs, mode = [], None
        for model in (before, after):
            run_fn, sync, mode = runner(model, random_inputs(model, batch))
            runs.append((run_fn, sync))
        t_before, t_after = measure_interleaved(runs, **_timing_kwargs(args))
        again = measure_interleaved(runs, **_timing_kwargs(args)) if noise else None
        rows.append({
            "batch": batch, "compile": mode,
            "flops_before": finding.flops_before, "flops_after": finding.flops_after,
            "params_before": finding.params_before, "params_after": finding.params_after,
            "before_ms": t_before.median_ms, "before_iqr_ms": t_before.iqr_ms,
            "after_ms": t_after.median_ms, "after_iqr_ms": t_after.iqr_ms,
            "attempts": max(t.attempts for t in (t_before, t_after)),
            "before_rerun_ms": again[0].median_ms if again is not None else None,
            "after_rerun_ms": again[1].median_ms if again is not None else None,
        })
    return rows


def named_cases() -> list:
    """The issue's named cases: ``(label, symbol, build_model, layer)``."""
    import keras

    def vgg16():
        return keras.applications.VGG16(weights=None)

    return [("VGG16 fc1 head → GAP", "flatten-dense-head", vgg16, "fc1"),
            ("VGG16 block4_conv2 512→512 3×3 (28×28) → bottleneck", "missing-bottleneck",
             vgg16, "block4_conv2"),
            ("VGG16 block5_conv2 512→512 3×3 (14×14) → bottleneck", "missing-bottleneck",
             vgg16, "block5_conv2")]


def run(args, results_dir: Optional[str] = None) -> dict:
    """Measure every selected case; returns the device record.

    With ``results_dir`` the record is merged into the device's JSON file after every
    case, so a run cut short (``--max-minutes``, a killed job) keeps what it measured,
    and ``--resume`` skips the cases already on file.
    """
    import keras

    from keras_cnnkit.bench.device import detect
    from keras_cnnkit.progress import Progress

    if args.cpu_threads:
        from keras_cnnkit.bench.device import set_cpu_threads
        set_cpu_threads(args.cpu_threads)
    device = detect()
    patterns = _patterns()
    symbols = [s for s in patterns if not args.rules or s in args.rules]
    pairs = GRIDS[args.grid]
    jobs: list = []
    if not args.named_only:
        for symbol in symbols:
            for c, s in pairs:
                if symbol == "flatten-dense-head" and not _head_fits(c, s):
                    continue
                jobs.append(("grid", symbol, c, s, None))
    if args.named or args.named_only:
        jobs += [("named", symbol, label, layer, build)
                 for label, symbol, build, layer in named_cases()]
    cases, named, failures = [], [], []
    record = {"device": device.to_dict(), "backend": device.backend, "dtype": args.dtype,
              "load_at_start": _load_average(), "cpu_threads": args.cpu_threads,
              "keras": keras.__version__, "grid": None if args.named_only else args.grid,
              "max_spread": args.max_spread or None, "repeats": args.repeats,
              "min_sample_s": args.min_sample,
              "date": time.strftime("%Y-%m-%d"), "cases": cases, "named": named,
              "failures": failures, "seconds": 0.0}
    done = _done_jobs(results_dir, record, args.batches) if args.resume and results_dir else set()
    jobs = [job for job in jobs if _job_key(job) not in done]
    models: dict = {}
    progress = Progress(len(jobs), "bench_rules")
    started = time.perf_counter()
    with progress:
        for index, (kind, symbol, a, b, build) in enumerate(jobs):
            if args.max_minutes is not None and \
                    time.perf_counter() - started >= 60 * args.max_minutes:
                failures.append(f"{len(jobs) - index} case(s) left for a later --resume run "
                                f"(--max-minutes {args.max_minutes:g})")
                break
            progress.step(f"{symbol} {a} {b}")
            try:
                if kind == "grid":
                    graph, finding = finding_for(patterns[symbol](a, b), symbol)
                else:
                    model = models.setdefault(build, None) or build()
                    models[build] = model
                    graph, finding = _named_finding(model, symbol, b)
                if finding is None:
                    failures.append(f"{symbol} at {a}, {b}: the rule did not fire")
                    continue
                rows = time_pair(graph, finding, args.batches, args, noise=not args.no_noise)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                failures.append(f"{symbol} at {a}, {b}: {type(exc).__name__}: {exc}"[:300])
                continue
            for row in rows:
                if kind == "grid":
                    cases.append({"rule": symbol, "channels": a, "map": b, **row})
                else:
                    named.append({"case": a, "rule": symbol, "layer": b, **row})
            record["seconds"] = round(time.perf_counter() - started, 1)
            if results_dir:
                merge_record(results_dir, record)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def _job_key(job: tuple) -> tuple:
    kind, symbol, a, b, _ = job
    return (kind, symbol, a, b)


def _done_jobs(results_dir: str, record: dict, batches) -> set:
    """Jobs whose rows, at every requested batch, are already in the device's JSON."""
    path = _results_path(results_dir, record)
    if not os.path.exists(path):
        return set()
    with open(path, encoding="utf-8") as fh:
        old = json.load(fh)
    seen: dict = {}
    for row in old.get("cases", []):
        seen.setdefault(("grid", row["rule"], row["channels"], row["map"]), set()).add(
            row["batch"])
    for row in old.get("named", []):
        seen.setdefault(("named", row["rule"], row["case"], row["layer"]), set()).add(
            row["batch"])
    return {key for key, got in seen.items() if set(batches) <= got}


def _load_average() -> Optional[float]:
    """The machine's 1-minute load average when the run started (other work skews it)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _named_finding(model, symbol: str, layer: str):
    from keras_cnnkit.lint.api import lint
    report = lint(model, select=[symbol], min_impact=0)
    for finding in report.rule_findings:
        if finding.layer == layer and finding.replacement is not None:
            return report.graph, finding
    return report.graph, None


# --- results on disk ------------------------------------------------------------------


def _device_key(record: dict) -> str:
    """``<backend>-<kind>[-<gpu model>]-<dtype>``: one file per backend, device and dtype
    (GPU models are told apart; the CPU key is the machine's own)."""
    dev = record["device"]
    parts = [record["backend"], dev["kind"]]
    if dev["kind"] == "gpu":
        slug = "".join(ch if ch.isalnum() else "-" for ch in dev["name"].lower())
        parts.append("-".join(p for p in slug.split("-") if p))
    return "-".join(parts + [record["dtype"]])


def _results_path(results_dir: str, record: dict) -> str:
    """The device's results file: ``rules_<device key>.json`` in ``results_dir``."""
    return os.path.join(results_dir, f"rules_{_device_key(record)}.json")


def merge_record(results_dir: str, record: dict) -> str:
    """Merge ``record`` into its device's JSON file (case by case); returns the path."""
    os.makedirs(results_dir, exist_ok=True)
    path = _results_path(results_dir, record)
    old = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            old = json.load(fh)

    def merged(key: str, ident: Callable) -> list:
        rows = {ident(r): r for r in old.get(key, [])}
        rows.update({ident(r): r for r in record[key]})
        return list(rows.values())

    out = dict(record)
    grids: set = set()
    for value in (old.get("grid"), record.get("grid")):
        grids.update(g for g in (value or "").split(", ") if g)
    out["grid"] = ", ".join(sorted(grids)) or None
    out["cases"] = merged("cases", lambda r: (r["rule"], r["channels"], r["map"], r["batch"]))
    out["named"] = merged("named", lambda r: (r["case"], r["batch"]))
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(out, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def load_records(results_dir: str) -> list:
    """Every device record on file, sorted by device key."""
    if not os.path.isdir(results_dir):
        return []
    records = []
    for name in sorted(os.listdir(results_dir)):
        if name.startswith("rules_") and name.endswith(".json"):
            with open(os.path.join(results_dir, name), encoding="utf-8") as fh:
                records.append(json.load(fh))
    return records


def ratio(row: dict, key_after: str, key_before: str) -> Optional[float]:
    """``row[after] / row[before]`` or None."""
    a, b = row.get(key_after), row.get(key_before)
    return a / b if a is not None and b else None


def noise_pairs(record: dict, min_ms: float = NOISE_MIN_MS) -> list:
    """Relative differences of the two consecutive runs (before, and after where it was
    rerun) of every case whose two medians are both over ``min_ms``."""
    diffs = []
    for row in record["cases"] + record["named"]:
        for which in ("before", "after"):
            first, second = row.get(f"{which}_ms"), row.get(f"{which}_rerun_ms")
            if first is None or second is None or min(first, second) <= min_ms:
                continue
            diffs.append(abs(first - second) / min(first, second))
    return diffs


def ratio_noise(record: dict, min_ms: float = NOISE_MIN_MS) -> list:
    """Relative differences of the time ratio (after / before) between the two runs, for
    cases rerun on both sides with every median over ``min_ms``: what the tool reports
    (a speed-up) is a ratio, and a machine-wide slow phase moves both sides together."""
    diffs = []
    for row in record["cases"] + record["named"]:
        values = [row.get(k) for k in ("before_ms", "after_ms", "before_rerun_ms",
                                       "after_rerun_ms")]
        if any(v is None for v in values) or min(values) <= min_ms:
            continue
        first, second = values[1] / values[0], values[3] / values[2]
        diffs.append(abs(first - second) / min(first, second))
    return diffs


def noise_stats(record: dict, min_ms: float = NOISE_MIN_MS) -> dict:
    """The noise figure: how far two consecutive runs of the same case are apart."""
    diffs = noise_pairs(record, min_ms)
    return {"n": len(diffs), "median": statistics.median(diffs) if diffs else None,
            "max": max(diffs) if diffs else None,
            "within": sum(d <= NOISE_LIMIT for d in diffs)}


def render_markdown(records: list) -> str:
    """``results_rules.md``: per device, the rule summary, the named cases, the noise
    figure, then the full grid table."""
    out = ["# Rule fixes: estimated FLOP ratio vs measured time ratio", "",
           "Generated by `benchmarks/bench_rules.py` (do not edit by hand).  Ratios are "
           "after / before: below 1 the fix is cheaper.  Times are medians over repeats "
           "(IQR in parentheses) of compiled forward passes on random inputs, warm-up and "
           "compilation excluded; the estimated ratio is the linter's own cost model "
           "(`flops_after / flops_before` of the finding).", ""]
    for record in records:
        dev = record["device"]
        out += [f"## {dev['label']} — backend {record['backend']}, {record['dtype']}, "
                f"compile {_compile_of(record)}", "",
                f"Keras {record.get('keras', '?')}, grid `{record.get('grid', '?')}`, "
                f"run {record.get('date', '?')}; CPU threads: "
                f"{record.get('cpu_threads') or 'backend default'}; 1-minute load average at "
                "the start of the "
                f"last run {record.get('load_at_start', '?')} (on a shared machine, a load "
                "above the core count inflates times and the noise figure).", ""]
        out += _summary_table(record) + [""]
        if record["named"]:
            out += ["### Named cases", "",
                    "| case | batch | before ms | after ms | speedup | est. FLOP ratio |",
                    "|---|---:|---:|---:|---:|---:|"]
            for row in sorted(record["named"], key=lambda r: (r["case"], r["batch"])):
                out.append(f"| {row['case']} | {row['batch']} | {_ms(row, 'before')} | "
                           f"{_ms(row, 'after')} | {row['before_ms'] / row['after_ms']:.2f}× | "
                           f"{ratio(row, 'flops_after', 'flops_before'):.3f} |")
            out.append("")
        noise = noise_stats(record)
        if noise["n"]:
            verdict = "all within" if noise["within"] == noise["n"] else \
                f"{noise['n'] - noise['within']} outside"
            reruns = "before and after" if any(
                r.get("after_rerun_ms") for r in record["cases"] + record["named"]) \
                else "before only (solo rerun)"
            out += ["### Harness noise", "",
                    f"Two consecutive runs of the same case (cases over {NOISE_MIN_MS:g} ms, "
                    f"n = {noise['n']}, rerun: {reruns}): median difference "
                    f"{100 * noise['median']:.1f}%, largest {100 * noise['max']:.1f}%; "
                    f"{verdict} {100 * NOISE_LIMIT:.0f}%.", ""]
        ratios = ratio_noise(record)
        if ratios:
            out += [f"The time ratio (after / before) of the same cases, first run against "
                    f"second (n = {len(ratios)}): median difference "
                    f"{100 * statistics.median(ratios):.1f}%, largest "
                    f"{100 * max(ratios):.1f}%; "
                    f"{sum(d <= NOISE_LIMIT for d in ratios)} within "
                    f"{100 * NOISE_LIMIT:.0f}%.", ""]
        retaken = sum((r.get("attempts") or 1) > 1 for r in record["cases"] + record["named"])
        if retaken:
            out += [f"{retaken} of {len(record['cases']) + len(record['named'])} cases were "
                    "retaken at least once because a side's IQR exceeded "
                    f"{100 * (record.get('max_spread') or NOISE_LIMIT):.0f}% of its median "
                    "(`--max-spread`).", ""]
        short = noise_stats(record, 0.0)
        if short["n"] > noise["n"]:
            out += [f"All cases, sub-millisecond ones included (n = {short['n']}): median "
                    f"difference {100 * short['median']:.1f}%, largest "
                    f"{100 * short['max']:.1f}%; {short['within']} within "
                    f"{100 * NOISE_LIMIT:.0f}%.", ""]
        if record.get("failures"):
            out += ["Not measured: " + "; ".join(record["failures"]), ""]
        out += ["### All cases", "",
                "| rule | C | map | batch | FLOPs before (per sample) | est. ratio | before ms | "
                "after ms | time ratio |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in sorted(record["cases"], key=lambda r: (r["rule"], r["channels"], r["map"],
                                                          r["batch"])):
            out.append(f"| {row['rule']} | {row['channels']} | {row['map']} | {row['batch']} "
                       f"| {row['flops_before']:,} | "
                       f"{_fmt(ratio(row, 'flops_after', 'flops_before'))} | "
                       f"{_ms(row, 'before')} | {_ms(row, 'after')} | "
                       f"{_fmt(ratio(row, 'after_ms', 'before_ms'))} |")
        out.append("")
    return "\n".join(out)


def _compile_of(record: dict) -> str:
    modes = {r.get("compile") for r in record["cases"] + record["named"]} - {None}
    return ", ".join(sorted(modes)) or "?"


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ms(row: dict, which: str) -> str:
    return f"{row[which + '_ms']:.3f} ({row[which + '_iqr_ms']:.3f})"


def _summary_table(record: dict) -> list:
    lines = ["| rule | cases | est. FLOP ratio (median) | time ratio (median) | "
             "time ratio range | faster (< 0.95) |", "|---|---:|---:|---:|---|---:|"]
    by_rule: dict = {}
    for row in record["cases"]:
        by_rule.setdefault(row["rule"], []).append(row)
    for rule, rows in sorted(by_rule.items()):
        est = [ratio(r, "flops_after", "flops_before") for r in rows]
        est = [e for e in est if e is not None]
        meas = [ratio(r, "after_ms", "before_ms") for r in rows]
        faster = sum(m < 0.95 for m in meas)
        lines.append(f"| {rule} | {len(rows)} | {_fmt(statistics.median(est) if est else None)}"
                     f" | {statistics.median(meas):.3f} | {min(meas):.2f}–{max(meas):.2f} | "
                     f"{faster}/{len(rows)} |")
    return lines


def render_plot(records: list, path: str) -> Optional[str]:
    """Log-log scatter of estimated FLOP ratio vs measured time ratio, one panel per
    device; ``None`` when matplotlib is missing or there is nothing to plot."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    records = [r for r in records if r["cases"]]
    if not records:
        return None
    cols = min(2, len(records))
    rows = -(-len(records) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 5.0 * rows), squeeze=False,
                             sharex=True, sharey=True)
    for ax in axes.flat[len(records):]:
        ax.set_visible(False)
    markers = "os^vD<>Pp*hX"
    for ax, record in zip(axes.flat, records):
        rules = sorted({r["rule"] for r in record["cases"]})
        for i, rule in enumerate(rules):
            pts = [(ratio(r, "flops_after", "flops_before"), ratio(r, "after_ms", "before_ms"))
                   for r in record["cases"] if r["rule"] == rule]
            pts = [(x, y) for x, y in pts if x and y]
            if pts:
                ax.scatter(*zip(*pts), label=rule, marker=markers[i % len(markers)], alpha=0.75)
        ax.axline((1, 1), (0.1, 0.1), color="grey", lw=1, ls="--", label="time ratio = FLOP ratio")
        ax.axhline(1, color="black", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("estimated FLOP ratio (after / before)")
        ax.set_ylabel("measured time ratio (after / before)")
        ax.set_title(f"{record['device']['label']}\n{record['backend']}, {record['dtype']}",
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", dest="grid", action="store_const", const="quick",
                        help="the small grid (about a minute on two CPU cores)")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="full")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--dtype", default="float32",
                        choices=["float32", "mixed_float16", "bfloat16"])
    parser.add_argument("--rules", nargs="+", help="only these rule symbols")
    parser.add_argument("--named", action="store_true",
                        help="also the named VGG16 cases (builds VGG16)")
    parser.add_argument("--named-only", action="store_true")
    parser.add_argument("--no-noise", action="store_true",
                        help="skip the second run of each case")
    parser.add_argument("--repeats", type=int, default=7,
                        help="samples per measurement (median and IQR over them)")
    parser.add_argument("--max-spread", type=float, default=0.10,
                        help="retake a measurement (twice at most) whose IQR exceeds this "
                             "fraction of its median; 0 never retakes")
    parser.add_argument("--min-sample", type=float, default=0.02,
                        help="seconds each sample lasts at least (calls averaged into it); "
                             "longer samples average out a shared machine's bursts")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="rough seconds per measurement")
    parser.add_argument("--cpu-threads", type=int,
                        help="limit CPU threads (1 gives steadier timings on a shared machine)")
    parser.add_argument("--out-dir", default=HERE,
                        help="where results_rules.md, rules_ratio.png and results/ go")
    parser.add_argument("--resume", action="store_true",
                        help="skip cases already in this device's results file")
    parser.add_argument("--max-minutes", type=float,
                        help="stop starting new cases after this long (what was measured "
                             "is kept; finish later with --resume)")
    parser.add_argument("--render-only", action="store_true",
                        help="only re-render the markdown and plot from results/")
    args = parser.parse_args(argv)
    args.grid = args.grid or "full"
    return args


def main(argv=None) -> int:
    """Run, merge, render; prints where the results went."""
    args = parse_args(argv)
    results_dir = os.path.join(args.out_dir, "results")
    if not args.render_only:
        record = run(args, results_dir)
        path = merge_record(results_dir, record)
        noise = noise_stats(record)
        print(f"{len(record['cases'])} grid rows, {len(record['named'])} named rows on "
              f"{record['device']['label']} ({record['backend']}) in {record['seconds']} s "
              f"→ {path}")
        if noise["n"]:
            print(f"noise: {noise['within']}/{noise['n']} cases over {NOISE_MIN_MS:g} ms "
                  f"within {100 * NOISE_LIMIT:.0f}% (largest {100 * noise['max']:.1f}%)")
        for failure in record["failures"]:
            print(f"not measured: {failure}", file=sys.stderr)
    records = load_records(results_dir)
    md_path = os.path.join(args.out_dir, "results_rules.md")
    with open(md_path, "w", encoding="utf-8") as fh:
        fh.write(render_markdown(records))
    png = render_plot(records, os.path.join(args.out_dir, "rules_ratio.png"))
    print(f"wrote {md_path}" + (f" and {png}" if png else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
