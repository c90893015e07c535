"""Run the current linter over every corpus file and keep its raw output.

    python tools/corpus/run_lint.py [--force] [--only SUBSTR] [--timeout 900]

For each file in the manifests, one subprocess (``--worker``) runs exactly
``cnnkit-lint FILE --format json --select ALL --min-impact 0`` in-process
(``keras_cnnkit.lint.cli.main``; every site, whose alternatives are the rules' own
findings) and records its exit status, stderr and JSON, then dumps the file's graph IR
(``keras_cnnkit.lint.api.graph_of``: every node's op, attrs, shapes, params) for the review.
Results go to ``<corpus>/lint/<file>.json``; existing results are kept unless ``--force``.
The linter imported is the one of the current directory's checkout (run it from the
worktree root).  A worker that crashes or times out is recorded as such.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import corpus_dir, load_all_manifests  # noqa: E402


def result_path(rel: str):
    return corpus_dir() / "lint" / (rel + ".json")


def worker(path: str, out: str) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.getcwd())
    from keras_cnnkit.lint import cli
    import keras_cnnkit
    rec = {"file": path, "linter_module": keras_cnnkit.__file__}
    stdout, stderr = io.StringIO(), io.StringIO()
    t = time.time()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = cli.main([path, "--format", "json", "--select", "ALL", "--no-config",
                       "--min-impact", "0"])
    rec["cli_seconds"] = round(time.time() - t, 2)
    rec["rc"] = rc
    rec["stderr"] = stderr.getvalue()[-4000:]
    try:
        rec["report"] = json.loads(stdout.getvalue())
    except ValueError:
        rec["report"] = None
        rec["stdout_tail"] = stdout.getvalue()[-2000:]
    # Dynamic-shape files: also with an explicit input size, to see what the default loses.
    if ".dynamic." in os.path.basename(path):
        so, se = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
            rc2 = cli.main([path, "--format", "json", "--select", "ALL", "--no-config",
                            "--min-impact", "0", "--input-shape", "224x224"])
        try:
            m = json.loads(so.getvalue())["models"][0]
            rec["with_input_shape_224"] = {"rc": rc2, "summary": m["summary"],
                                           "findings": [[a["code"], a["layer"]] for f in m["findings"]
                                                        for a in f.get("alternatives") or [f]]}
        except (ValueError, KeyError, IndexError):
            rec["with_input_shape_224"] = {"rc": rc2, "stderr": se.getvalue()[-2000:]}
    # The graph IR, for the review's classifications (same frontend as the CLI).
    if rc in (0, 1):
        try:
            from keras_cnnkit.lint.api import graph_of
            from keras_cnnkit.lint.report import node_dict
            from keras_cnnkit.analysis.cost import node_cost
            g = graph_of(path)
            nodes = []
            for n in g.nodes.values() if isinstance(g.nodes, dict) else g.nodes:
                d = node_dict(n)
                d["params"] = n.params
                try:
                    c = node_cost(n)
                    d["cost"] = {"params": c.params, "macs": c.macs, "flops": c.flops}
                except Exception as e:  # noqa: BLE001
                    d["cost"] = {"error": repr(e)}
                nodes.append(d)
            rec["graph"] = {"name": g.name, "inputs": list(g.inputs), "outputs": list(g.outputs),
                            "nodes": nodes}
        except Exception as e:  # noqa: BLE001
            rec["graph_error"] = f"{type(e).__name__}: {e}"
    with open(out, "w") as f:
        json.dump(rec, f, default=str)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", nargs=2, metavar=("FILE", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--only", default="", help="substring of the corpus-relative path")
    ap.add_argument("--timeout", type=int, default=900)
    ns = ap.parse_args(argv)
    if ns.worker:
        return worker(*ns.worker)
    entries = load_all_manifests()
    todo = [e for e in entries if ns.only in e["file"] and (corpus_dir() / e["file"]).exists()]
    for i, e in enumerate(todo):
        rel = e["file"]
        out = result_path(rel)
        if out.exists() and not ns.force:
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".partial")
        t = time.time()
        try:
            p = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                                str(corpus_dir() / rel), str(tmp)],
                               capture_output=True, text=True, timeout=ns.timeout)
            if p.returncode != 0 or not tmp.exists():
                rec = {"file": str(corpus_dir() / rel), "rc": None, "worker_crash": p.returncode,
                       "stderr": p.stderr[-4000:]}
                tmp.write_text(json.dumps(rec))
        except subprocess.TimeoutExpired:
            rec = {"file": str(corpus_dir() / rel), "rc": None, "timeout": ns.timeout}
            tmp.write_text(json.dumps(rec))
        os.replace(tmp, out)
        rec = json.loads(out.read_text())
        n = len(rec["report"]["models"][0]["findings"]) if rec.get("report") and rec["report"].get("models") else "-"
        print(f"[{i + 1}/{len(todo)}] {rel}: rc={rec.get('rc')} findings={n} ({time.time() - t:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
