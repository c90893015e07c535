"""``cnnkit-lint`` over every keras.applications model file: serial against ``-j N``.

Every model in ``keras.applications`` (``weights=None``) is saved once by Keras itself
into ``--zoo-dir`` (``.keras`` archives by default, weights included: about 7.7 GB for
the 38 models; ``--kind json`` writes their JSON configs instead, a few MB).  Then the
linter runs on all of them as CI would, in fresh processes (``python -m
keras_cnnkit.lint --no-config -q FILES...``), serially and with ``-j N``, interleaved,
``--repeats`` times each.  Reported: the median wall time, the throughput in models per
second, the speed-up, and whether every ``-j`` run's stdout, stderr and exit status were
byte-identical to the serial run's.  The machine's CPU count and load average are
recorded with the figures, since other processes share the cores.

Writes ``benchmarks/results_zoo.md`` (``--output`` to change).

Usage::

    python benchmarks/bench_zoo.py                 # .keras files, serial vs -j 2
    python benchmarks/bench_zoo.py --kind json --repeats 5
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: Saves every keras.applications model (weights=None) to argv[1] as argv[2] files.
_SAVE = r"""
import inspect, logging, os, sys
logging.getLogger("absl").setLevel(logging.ERROR)
import keras
out, kind = sys.argv[1], sys.argv[2]
names = sorted(n for n, f in vars(keras.applications).items()
               if inspect.isfunction(f) and n[0].isupper())
for name in names:
    path = os.path.join(out, f"{name}.{kind}")
    if os.path.exists(path):
        continue
    kwargs = {"weights": None}
    if name.startswith("MobileNetV3"):
        kwargs["input_shape"] = (224, 224, 3)
    model = getattr(keras.applications, name)(**kwargs)
    if kind == "json":
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(model.to_json())
        os.replace(path + ".tmp", path)
    else:
        model.save(path + ".tmp.keras")
        os.replace(path + ".tmp.keras", path)
    keras.backend.clear_session()
    print(name, flush=True)
"""


def make_zoo(zoo_dir: str, kind: str) -> list:
    """Save the models missing from ``zoo_dir``; the sorted list of model files."""
    os.makedirs(zoo_dir, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", _SAVE, zoo_dir, kind], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return sorted(os.path.join(zoo_dir, f) for f in os.listdir(zoo_dir)
                  if f.endswith(f".{kind}") and not f.endswith(f".tmp.{kind}"))


def lint(files: list, jobs: int) -> tuple:
    """``(seconds, (status, stdout, stderr))`` of one ``cnnkit-lint`` process."""
    cmd = [sys.executable, "-m", "keras_cnnkit.lint", "--no-config", "-q", *files]
    if jobs != 1:
        cmd[3:3] = ["-j", str(jobs)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
    return time.perf_counter() - start, (proc.returncode, proc.stdout, proc.stderr)


def measure(files: list, jobs: int, repeats: int) -> dict:
    """Serial and ``-j jobs`` runs, interleaved; times, speed-up, byte-identity."""
    serial_times, parallel_times, identical = [], [], True
    reference = None
    for _ in range(repeats):
        seconds, output = lint(files, 1)
        serial_times.append(seconds)
        reference = reference or output
        identical &= output == reference
        seconds, output = lint(files, jobs)
        parallel_times.append(seconds)
        identical &= output == reference
    serial, parallel = statistics.median(serial_times), statistics.median(parallel_times)
    return {"files": len(files), "jobs": jobs, "serial_s": serial, "parallel_s": parallel,
            "serial_times": serial_times, "parallel_times": parallel_times,
            "speedup": serial / parallel, "identical": identical,
            "status": reference[0], "findings_lines": reference[1].count(b"\n")}


def report(result: dict, kind: str, zoo_bytes: int) -> str:
    """The markdown results."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n = result["files"]
    rows = [("serial (`-j 1`)", result["serial_s"], result["serial_times"]),
            (f"`-j {result['jobs']}`", result["parallel_s"], result["parallel_times"])]
    lines = ["# cnnkit-lint over the keras.applications zoo: serial vs parallel", "",
             f"{n} keras.applications models (`weights=None`) saved by Keras as `.{kind}` "
             f"files ({zoo_bytes / 1e9:.2f} GB), linted in one `cnnkit-lint --no-config -q` "
             f"process per run, serial and parallel runs interleaved; medians of "
             f"{len(result['serial_times'])} runs.", "",
             f"Machine: {platform.processor() or platform.machine()}, {cpus} CPUs, load "
             f"average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) at the end, "
             f"Python {platform.python_version()}.", "",
             "| run | wall time (s) | models/s | runs (s) |", "|---|---:|---:|---|"]
    for label, seconds, runs in rows:
        lines.append(f"| {label} | {seconds:.2f} | {n / seconds:.2f} | "
                     f"{', '.join(f'{t:.2f}' for t in runs)} |")
    lines += ["", f"Speed-up of `-j {result['jobs']}`: **{result['speedup']:.2f}×**.  Output "
              f"(stdout, stderr, exit status {result['status']}, {result['findings_lines']} "
              f"lines) byte-identical to the serial run in every run: "
              f"**{'yes' if result['identical'] else 'NO'}**.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Make the zoo, measure, print and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--kind", choices=["keras", "json"], default="keras",
                        help="model files to lint: .keras archives or JSON configs")
    parser.add_argument("--zoo-dir", default=os.path.join(tempfile.gettempdir(),
                                                          "cnnkit_zoo"),
                        help="where the model files are saved (kept for the next run)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="workers of the parallel run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(HERE, "results_zoo.md"))
    parser.add_argument("--quick", action="store_true",
                        help="JSON configs, one repeat (writes results_zoo_json.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.kind, args.repeats = "json", 1
        args.output = os.path.join(HERE, "results_zoo_json.md")
    files = make_zoo(args.zoo_dir, args.kind)
    result = measure(files, args.jobs, args.repeats)
    text = report(result, args.kind, sum(os.path.getsize(f) for f in files))
    print(text)
    with open(args.output, "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
