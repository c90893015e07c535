"""Run every benchmark script in ``benchmarks/`` (``bench_*.py``), one after another.

Each runs in its own Python process, so that backends and compiled state do not leak
from one to the next.  ``--quick`` is passed on to the scripts that accept it; other
arguments after ``--`` go to every script.  The exit status is non-zero when one failed.

Usage::

    python benchmarks/run_all.py --quick
    python benchmarks/run_all.py --only bench_rules -- --named
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def scripts(only=None) -> list:
    """The benchmark scripts, sorted by name (``only``: names without ``.py``)."""
    found = sorted(name for name in os.listdir(HERE)
                   if name.startswith("bench_") and name.endswith(".py"))
    if only:
        found = [name for name in found if name[:-3] in only]
    return [os.path.join(HERE, name) for name in found]


def accepts_quick(path: str) -> bool:
    """Whether a script has a ``--quick`` option (read from its source, not run)."""
    with open(path, encoding="utf-8") as fh:
        return '"--quick"' in fh.read()


def main(argv=None) -> int:
    """Run the scripts; print one status line each and a summary."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="small grids, where offered")
    parser.add_argument("--only", nargs="+", help="script names without .py")
    args = parser.parse_args(argv)
    failed = []
    paths = scripts(args.only)
    for path in paths:
        cmd = [sys.executable, path] + (["--quick"] if args.quick and accepts_quick(path)
                                        else []) + extra
        start = time.perf_counter()
        print(f"== {os.path.basename(path)}: {' '.join(cmd[2:]) or '(no arguments)'}",
              flush=True)
        code = subprocess.call(cmd, cwd=os.path.dirname(HERE))
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        print(f"== {os.path.basename(path)}: {status} in {time.perf_counter() - start:.0f} s",
              flush=True)
        if code:
            failed.append(os.path.basename(path))
    print(f"{len(paths) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
