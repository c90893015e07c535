"""``cnnkit-export``'s IR exporter against tf2onnx and Keras' own ONNX export (issue 20).

For each model (keras.applications, ``weights=None``, 224×224 unless ``--size``; saved
once to ``.keras`` in a temporary folder) and each exporter, one fresh child process
exports the file to ONNX, unverified:

* ``ir``: :func:`keras_cnnkit.export.direct.export_file` (reads the file statically; no
  Keras model is built);
* ``ir-verify``: the same, verified (onnxruntime, then Keras on the same input, layer
  by layer: each layer built from its config, its stored weights loaded, run, dropped;
  what ``cnnkit-export`` does by default);
* ``tf2onnx``: the model loaded with :func:`keras_cnnkit.io_guard.load_keras_model`, then
  :func:`keras_cnnkit.onnx_convert.export_onnx` (tf2onnx, the old ``cnnkit-export`` path);
* ``keras``: the model loaded the same way, then ``model.export(path, format="onnx")``.

Measured: the wall time of the child (imports included: what a user waits for), the time
of the export itself as the child reports it, and the child's peak RSS (``ru_maxrss`` of
``os.wait4``).  Each child runs under ``RLIMIT_AS`` = ``--mem-cap-gb`` (default 20 GB) so
that a runaway exporter is stopped before the machine is; a child that dies reports
``killed (>N GB)`` or its error.  Then each file written is timed in onnxruntime (CPU,
batch 1, one intra-op thread, median of ``--runs`` runs after 2 warm-up runs; the files
of one model are loaded in one child process and run in turn, so that the machine's
load drifts over all of them alike) and its nodes counted.

Prints a table, writes JSON (``--json``, default ``benchmarks/results/export.json``) and
the section of ``RESULTS.md`` (``--output``, default ``benchmarks/results_export.md``;
``python benchmarks/run_all.py --assemble`` puts it in).

With ``--merge``, the rows of the earlier run in ``--json`` that this run does not
measure are kept, each row stamped with the run it comes from (the Markdown says which
rows come from which run, with that run's load).

Usage::

    python benchmarks/bench_export.py             # MobileNetV2, ResNet50, InceptionV3, VGG16
    python benchmarks/bench_export.py --quick     # MobileNetV2 at 96×96 (smoke test)
    python benchmarks/bench_export.py --exporters ir-verify --merge   # re-measure one row kind
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ("MobileNetV2", "ResNet50", "InceptionV3", "VGG16")
EXPORTERS = ("ir", "ir-verify", "tf2onnx", "keras")

_SAVE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
name, size, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3)).save(path)
"""

_EXPORT = """
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
exporter, src, out = sys.argv[1:4]
start = time.perf_counter()
if exporter.startswith("ir"):
    from keras_cnnkit.export.direct import export_file
    result = export_file(src, out, verify=exporter == "ir-verify", force=True)
    if result.max_abs_diff is not None:
        print(json.dumps({"export_s": time.perf_counter() - start,
                          "max_abs_diff": result.max_abs_diff,
                          "verified_by": result.verified_by}))
        sys.exit(0)
else:
    from keras_cnnkit.io_guard import load_keras_model
    model = load_keras_model(src)
    if exporter == "tf2onnx":
        from keras_cnnkit.onnx_convert import export_onnx
        export_onnx(model, out, verify=False)
    else:
        import numpy as np
        model(np.zeros((1,) + tuple(model.inputs[0].shape[1:]), "float32"))  # Keras needs a call
        model.export(out, format="onnx", verbose=False)
print(json.dumps({"export_s": time.perf_counter() - start}))
"""

_LATENCY = """
import json, statistics, sys, time
import numpy as np, onnx, onnxruntime as ort
runs, paths = int(sys.argv[1]), sys.argv[2:]
options = ort.SessionOptions()
options.intra_op_num_threads = 1
sessions, nodes = [], []
for path in paths:
    nodes.append(len(onnx.load(path, load_external_data=False).graph.node))
    sessions.append(ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]))
inp = sessions[0].get_inputs()[0]
shape = [1 if not isinstance(d, int) else d for d in inp.shape]
x = np.random.default_rng(0).uniform(-1, 1, shape).astype("float32")
times = [[] for _ in sessions]
for s in sessions:
    for _ in range(2):
        s.run(None, {s.get_inputs()[0].name: x})
for _ in range(runs):                      # interleaved: drift hits every file alike
    for s, t in zip(sessions, times):
        start = time.perf_counter()
        s.run(None, {s.get_inputs()[0].name: x})
        t.append(time.perf_counter() - start)
print(json.dumps([{"nodes": n, "latency_ms": 1000 * statistics.median(t)}
                  for n, t in zip(nodes, times)]))
"""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _child(code: str, args: list, cap_gb: float, timeout: float) -> dict:
    """Run ``code`` in a child under RLIMIT_AS; its JSON line, wall time and peak RSS."""
    cap = int(cap_gb * 1024 ** 3)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="3")
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # RLIMIT_AS must be set in the child before it starts (no threads here)
        proc = subprocess.Popen(  # pylint: disable=consider-using-with,W1509
            [sys.executable, "-c", code, *args], stdout=out, stderr=err, cwd=ROOT, env=env,
            preexec_fn=limit)
        try:
            _, status, usage = _wait4(proc.pid, timeout)
        except TimeoutError:
            proc.kill()
            os.wait4(proc.pid, 0)
            return {"error": f"timed out (>{timeout:.0f} s)"}
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(
            errors="replace")
    peak = usage.ru_maxrss * 1024
    result = {"wall_s": wall, "peak_rss_bytes": peak}
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        result["error"] = (f"killed (>{cap_gb:g} GB): {name} at the address-space cap, "
                           f"{peak / 1024 ** 3:.1f} GB resident")
    elif os.WEXITSTATUS(status) != 0:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        text = lines[-1] if lines else f"exit {os.WEXITSTATUS(status)}"
        if "MemoryError" in stderr or "std::bad_alloc" in stderr or "Cannot allocate" in stderr:
            text = f"killed (>{cap_gb:g} GB): {text[:120]}"
        result["error"] = text[:300]
    else:
        last = json.loads(stdout.strip().splitlines()[-1] if stdout.strip() else "{}")
        result.update(last if isinstance(last, dict) else {"result": last})
    return result


def _wait4(pid: int, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        wpid, status, usage = os.wait4(pid, os.WNOHANG)
        if wpid:
            return wpid, status, usage
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.05)


def run(models, size: int, exporters, cap_gb: float, runs: int, timeout: float) -> dict:
    """Every exporter on every model; returns the JSON-able results."""
    results = {"device": _cpu_model(), "cores": os.cpu_count(), "size": size,
               "python": platform.python_version(), "mem_cap_gb": cap_gb, "models": {}}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for name in models:
            src = os.path.join(tmp, f"{name}.keras")
            saved = _child(_SAVE, [name, str(size), src], cap_gb, timeout)
            row = {"file_bytes": os.path.getsize(src) if os.path.exists(src) else None}
            if "error" in saved:
                row["error"] = saved["error"]
                results["models"][name] = row
                continue
            written = {}
            for exporter in exporters:
                out = os.path.join(tmp, f"{name}.{exporter}.onnx")
                got = _child(_EXPORT, [exporter, src, out], cap_gb, timeout)
                if "error" not in got and os.path.exists(out) and exporter != "ir-verify":
                    written[exporter] = out
                row[exporter] = got
                print(f"{name:12s} {exporter:9s} {_fmt(got)}", flush=True)
                if exporter == "ir-verify" and os.path.exists(out):
                    os.unlink(out)
            if written:
                timed = _child(_LATENCY, [str(runs), *written.values()], cap_gb, timeout)
                for exporter, figures in zip(written, timed.get("result", [])):
                    row[exporter].update(figures)
                    print(f"{name:12s} {exporter:8s} {figures['nodes']} nodes, "
                          f"{figures['latency_ms']:.1f} ms onnxruntime (1 thread)", flush=True)
            for out in written.values():
                for path in (out, out + ".data"):
                    if os.path.exists(path):
                        os.unlink(path)
            os.unlink(src)
            results["models"][name] = row
    return results


def _fmt(got: dict) -> str:
    if "error" in got:
        return got["error"]
    return (f"{got['wall_s']:7.1f} s wall, {got.get('export_s', float('nan')):7.1f} s export, "
            f"{got['peak_rss_bytes'] / 1024 ** 3:5.2f} GB peak")


def _versions() -> str:
    from importlib import metadata
    found = []
    for package in ("keras", "tensorflow", "tf2onnx", "onnx", "onnxruntime", "h5py"):
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(found)


def merge(old: dict, new: dict) -> dict:
    """``old``'s results with ``new``'s rows put in (each row keeps its run's stamp)."""
    out = dict(old, models={name: dict(row) for name, row in old["models"].items()})
    earlier = old.get("measured_at", "earlier run")
    for row in out["models"].values():
        for exporter in EXPORTERS:
            if isinstance(row.get(exporter), dict):
                row[exporter] = dict(row[exporter])
                row[exporter].setdefault("measured_at", earlier)
    for name, row in new["models"].items():
        target = out["models"].setdefault(name, {})
        for key, value in row.items():
            target[key] = value
    sessions = old.get("sessions") or [{"measured_at": earlier, "load": old.get("load"),
                                        "exporters": list(EXPORTERS)}]
    out["sessions"] = sessions + new["sessions"]
    for key in ("device", "cores", "python", "size", "mem_cap_gb"):
        out[key] = new.get(key, out.get(key))
    return out


def _sessions(results: dict) -> list:
    return results.get("sessions") or [{"measured_at": results.get("measured_at"),
                                        "load": results.get("load"),
                                        "exporters": list(EXPORTERS)}]


def table(results: dict) -> str:
    """Markdown tables of ``results``: every run, then the IR exporter's ratios."""
    sessions = _sessions(results)
    runs = {str(session["measured_at"]): i + 1 for i, session in enumerate(sessions)}
    merged = len(sessions) > 1
    lines = ["| model | exporter | wall s | export s | peak RSS GB | ONNX nodes "
             "| ORT ms (b=1, 1 thread) |" + (" run |" if merged else ""),
             "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if merged else "")]
    for name, row in results["models"].items():
        for exporter in EXPORTERS:
            got = row.get(exporter)
            if got is None:
                continue
            which = f" {runs.get(str(got.get('measured_at')), '')} |" if merged else ""
            if "error" in got:
                lines.append(f"| {name} | {exporter} | {got['error']} | | "
                             f"{got.get('peak_rss_bytes', 0) / 1024 ** 3:.2f} | | |{which}")
                continue
            nodes = got.get("nodes", "same file as ir" if exporter == "ir-verify" else "")
            latency = f"{got['latency_ms']:.1f}" if "latency_ms" in got else ""
            lines.append(f"| {name} | {exporter} | {got['wall_s']:.1f} | "
                         f"{got['export_s']:.1f} | {got['peak_rss_bytes'] / 1024 ** 3:.2f} | "
                         f"{nodes} | {latency} |{which}")
    lines += ["", "| model | tf2onnx / ir wall | tf2onnx / ir peak RSS | keras / ir wall | "
                  "keras / ir peak RSS |", "|---|---:|---:|---:|---:|"]
    for name, row in results["models"].items():
        ir = row.get("ir")
        if not ir or "error" in ir:
            continue
        cells = []
        for other in ("tf2onnx", "keras"):
            got = row.get(other)
            if not got or "error" in got:
                at_death = (f"killed at ≥ {got['peak_rss_bytes'] / ir['peak_rss_bytes']:.0f}×"
                            if got and got.get("peak_rss_bytes") else "—")
                cells += ["failed", at_death]
            else:
                cells += [f"{got['wall_s'] / ir['wall_s']:.1f}×",
                          f"{got['peak_rss_bytes'] / ir['peak_rss_bytes']:.1f}×"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _peak(results: dict, model: str, exporter: str) -> str:
    got = results["models"].get(model, {}).get(exporter) or {}
    return f"{got['peak_rss_bytes'] / 1024 ** 3:.2f}" if "peak_rss_bytes" in got else "?"


def _runs_text(results: dict) -> tuple:
    """``(what goes in the parenthesis after the CPUs, a sentence on merged runs)``."""
    sessions = _sessions(results)
    if len(sessions) == 1:
        return f"load average {sessions[0]['load']} at start; other jobs share the machine", ""
    parts = [f"run {i + 1}, {one['measured_at']} (load average {one['load']} at start): "
             f"{', '.join(one['exporters'])}" for i, one in enumerate(sessions)]
    return ("other jobs share the machine",
            "The rows come from more than one run (the *run* column), a later run's rows "
            "replacing an earlier's: " + "; ".join(parts) + ".  ")


def markdown(results: dict) -> str:
    """The ``results_export.md`` section (headings one level up: ``run_all`` demotes)."""
    size = results["size"]
    load, merged = _runs_text(results)
    return f"""# Export (issue 20)

Measured by `benchmarks/bench_export.py` on {results['device']}, {results['cores']} logical
CPUs ({load}), Python
{results['python']}; {_versions()}.  keras.applications models, `weights=None`,
{size}×{size}×3, saved once to `.keras`.  Each export runs in its own child process under
a {results['mem_cap_gb']:g} GB address-space cap (`RLIMIT_AS`); wall time includes the
child's imports, "export s" is the export call alone; peak RSS is the child's
`ru_maxrss`.  {merged}`ir` is the IR exporter unverified, `ir-verify` the same verified against
Keras (TensorFlow backend, layer by layer), as `cnnkit-export` does by default; `tf2onnx`
is the old path (model loaded in Keras, traced, converted), `keras` is Keras'
`model.export(format="onnx")`.  onnxruntime latency: batch 1, one intra-op thread, median
of {results['runs']} runs, one model's files run in turn in one process.

{table(results)}

The IR exporter reads the `.keras` file statically and spools each weight to disk as it
is written, so its peak is one weight (VGG16's fc1, 411 MB) plus the interpreter.  The
others hold the Keras model, its TensorFlow graph and the converted model at once; on
VGG16 both were stopped by the {results['mem_cap_gb']:g} GB cap.  `ir-verify` runs the
file in onnxruntime first (no memory arena; the session is freed before Keras starts),
then Keras layer by layer: each layer is built from its own config in safe mode, its
stored weights loaded through Keras' `load_own_variables`, run on the activations of the
random input, and dropped with every activation no later layer reads.  Its peak is the
larger of onnxruntime's session (1.0 GB for VGG16) and the TensorFlow import (0.7 GB)
plus the largest layer (fc1: its variable and the array read from the file), so
{_peak(results, 'VGG16', 'ir-verify')} GB for VGG16, where loading the whole model in
Keras takes 2.9 GB by itself.  Before the layer-by-layer check, when Keras loaded the
whole model, `ir-verify` peaked at 0.93, 1.19, 1.00 and 2.87 GB on MobileNetV2, ResNet50,
InceptionV3 and VGG16 (2026-11-30, the run before 05:40 UTC), in 13–26 s.
A model the walk cannot take (a tf.keras file, a call with a constant array) is loaded
whole, as before.  The IR files have more nodes: batch norms and activations stay
separate ops.  onnxruntime fuses them into the convolutions when it loads the file, and
they run as fast as tf2onnx's.  `cnnkit-lint` gives the same MACs and finding codes on
each of these `.onnx` files as on its `.keras`; this holds for every keras.applications
model and builder tried, ShuffleNet V2 included: its channel splits and channel shuffles
read as such, with no opaque layer.
"""


def main(argv=None) -> int:
    """Command line; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--exporters", nargs="+", default=list(EXPORTERS), choices=EXPORTERS)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--quick", action="store_true",
                        help="MobileNetV2 at 96×96 only (a smoke test)")
    parser.add_argument("--mem-cap-gb", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--json", default=os.path.join(HERE, "results", "export.json"))
    parser.add_argument("--output", default=os.path.join(HERE, "results_export.md"),
                        help="the Markdown section for RESULTS.md ('' for none; --quick "
                             "writes none unless given)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the rows of --json's earlier run that this run does not "
                             "measure (the tables say which run each row comes from)")
    parser.add_argument("--from-json", metavar="PATH",
                        help="write the tables and --output from a run's JSON, measuring "
                             "nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as handle:
            results = json.load(handle)
        print(table(results))
        if args.output:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(markdown(results))
        return 0
    if args.quick:
        args.models, args.size, args.runs = ["MobileNetV2"], 96, 3
        if "--output" not in (argv or sys.argv[1:]):
            args.output = ""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = run(args.models, args.size, args.exporters, args.mem_cap_gb, args.runs,
                  args.timeout)
    results.update(load=load, runs=args.runs, measured_at=stamp,
                   sessions=[{"measured_at": stamp, "load": load,
                              "exporters": list(args.exporters)}])
    for row in results["models"].values():
        for exporter in args.exporters:
            if isinstance(row.get(exporter), dict):
                row[exporter]["measured_at"] = stamp
    if args.merge and os.path.exists(args.json):
        with open(args.json, encoding="utf-8") as handle:
            results = merge(json.load(handle), results)
    print(f"\n{results['device']}, {results['cores']} cores; {args.size}×{args.size}\n")
    print(table(results))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(markdown(results))
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
