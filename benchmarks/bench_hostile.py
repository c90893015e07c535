"""Issue 17's hostile files: time, peak memory and outcome of reading each one.

Every case of ``tests/hostile_files.py`` (DenseBlock and FactorizedConv bombs, a shared
nested model, JSON size/value/depth bombs, zip members that inflate to gigabytes, HDF5
hard-link cycles and deep paths, ONNX constant folding bombs; in ``.keras``, ``.h5``,
``.json`` and ``.onnx``, under ``cnnkit-lint``, the Python API, ``--fix`` and
``cnnkit-export``) is built in a temporary directory and read by a fresh child process
under an address-space limit (``RLIMIT_AS``) and a wall-clock limit.  For each case the
table gives the wall time and the child's CPU time (user + system: its own work, however
busy the machine), its peak resident memory (``ru_maxrss`` from
``wait4``), the exit status and the first line of stderr; it also checks that the input
is byte-identical afterwards and that no file was left in the directory.

``--checkout DIR`` measures another checkout (the code before a change: ``--checkout
/path/to/main``) with the same files.

Usage::

    python benchmarks/bench_hostile.py                       # this checkout, 1 GB, 10 s
    python benchmarks/bench_hostile.py --mem-gb 4 --timeout 60 --checkout ../main
    python benchmarks/bench_hostile.py --only dense_block onnx
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import hostile_files as hf  # noqa: E402  pylint: disable=wrong-import-position,import-error


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def argv_for(case, path: str, out_dir: str) -> list:
    """The command that reads ``path`` the way ``case.mode`` says."""
    return hf.case_argv(case, path, out_dir)


def measure_case(case, checkout: str, mem: int, timeout: float) -> dict:
    """Build ``case`` in a fresh directory and read it once; the row's fields."""
    with tempfile.TemporaryDirectory() as work:
        src = os.path.join(work, "in")
        out = os.path.join(work, "out")
        os.mkdir(src)
        os.mkdir(out)
        path = case.build(src)
        size = os.path.getsize(path)
        before = _digest(path)
        listing = sorted(os.listdir(src))
        env = hf.child_env(PYTHONPATH=os.pathsep.join([checkout, os.path.join(ROOT, "tests")]))
        run = hf.run_limited(argv_for(case, path, out), mem, timeout, cwd=out, env=env)
        left = sorted(set(os.listdir(src)) - set(listing)) + sorted(os.listdir(out))
        line = next((l for l in run.stderr.splitlines() if l.strip()), "")
        return {"case": case.name, "mode": case.mode, "bytes": size, "run": run,
                "first_line": line, "lines": len(run.stderr.strip().splitlines()),
                "unchanged": _digest(path) == before, "left": left}


def _row(r: dict) -> str:
    run = r["run"]
    line = r["first_line"].replace("|", "\\|")
    if len(line) > 150:
        line = line[:147] + "..."
    return (f"| {r['case']} | {r['mode']} | {r['bytes']:,} | {run.seconds:.1f} | "
            f"{run.cpu_seconds:.1f} | "
            f"{run.peak_bytes / hf.MB:,.0f} | "
            f"{'killed (time)' if run.timed_out else run.returncode} | {r['lines']} | "
            f"{'yes' if r['unchanged'] else 'NO'} | {', '.join(r['left']) or 'none'} | "
            f"{line} |")


def main(argv=None) -> int:
    """Measure the cases; print (and optionally write) a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkout", default=ROOT, help="the code to measure (default: "
                        "this checkout)")
    parser.add_argument("--mem-gb", type=float, default=1.0, help="RLIMIT_AS of the child")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL")
    parser.add_argument("--only", nargs="*", help="case-name prefixes to run")
    parser.add_argument("--issue-only", action="store_true", help="issue 17's cases only")
    parser.add_argument("--output", help="also write the table to this file")
    args = parser.parse_args(argv)
    cases = [c for c in hf.CASES if (not args.only or c.name.startswith(tuple(args.only)))
             and (c.issue or not args.issue_only)]
    mem = int(args.mem_gb * hf.GB)
    header = (f"{platform.node() or 'this machine'}, {platform.processor() or platform.machine()}"
              f", Python {platform.python_version()}; checkout {os.path.abspath(args.checkout)};"
              f" RLIMIT_AS {args.mem_gb:g} GB, timeout {args.timeout:g} s\n\n"
              "| case | mode | file bytes | wall s | CPU s | peak MB | exit | stderr lines | "
              "input unchanged | left behind | first stderr line |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    print(header, flush=True)
    rows = []
    for case in cases:
        row = _row(measure_case(case, os.path.abspath(args.checkout), mem, args.timeout))
        print(row, flush=True)
        rows.append(row)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(header + "\n" + "\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
