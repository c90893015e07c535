"""The corpus test's expected-findings tables: lint, compare, and propose verdicts to review.

    python tools/corpus/expected.py --source keras3 [--update]
    python tools/corpus/expected.py --source onnx --update      # needs the ONNX corpus

A table, ``tests/data/corpus/expected/SOURCE.tsv``, holds one line per finding the rules
yield on a model of that source (every rule, ``--select ALL``, every finding as the rule
yields it: no grouping, no impact threshold), tab-separated:

    model   layer   symbol   verdict   reason

``verdict`` is ``keep`` (a finding a careful reviewer keeps) or ``reject`` (a false
positive), ``reason`` one line on why.  A model that cannot be read has one line
``model  -  -  unreadable  reason``, a model without findings one line
``model  -  -  clean  reason`` (why nothing is worth reporting there).  Sources:
``keras3`` and ``tf_keras`` (the committed keras.applications configs), ``extra`` (the
committed keras-hub / kimm configs), ``onnx`` (the torchvision / timm exports in
``$CNKIT_CORPUS_DIR/onnx``, static 224×224 files).

Without ``--update`` the script prints the differences between the table and what the
rules yield now.  With it, the table is rewritten: kept lines keep their verdict and
reason (those are the review), lines for findings that are gone are dropped, and new
findings get a *proposed* verdict and reason from :func:`propose`, marked ``?`` at the
end of the reason until a person has read them (the test fails on a ``?``).
"""
from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # this checkout's linter, not an installed one
    sys.path.insert(0, str(ROOT))
DATA = ROOT / "tests" / "data" / "corpus"
TABLES = DATA / "expected"
SOURCES = ("keras3", "tf_keras", "extra", "onnx")
HEADER = ("model", "layer", "symbol", "verdict", "reason")
#: The ONNX models of the table: every static export of the corpus.
ONNX_SUFFIX = ".static.onnx"


def corpus_onnx_dir() -> Path:
    """``$CNKIT_CORPUS_DIR/onnx`` (default ``~/.cache/keras-cnnkit/corpus/onnx``)."""
    base = os.environ.get("CNKIT_CORPUS_DIR") or os.path.expanduser(
        "~/.cache/keras-cnnkit/corpus")
    return Path(base) / "onnx"


def models(source: str) -> dict:
    """``{model key: path or gzipped config path}`` of a source."""
    if source == "onnx":
        folder = corpus_onnx_dir()
        return {f"onnx/{p.name[:-len(ONNX_SUFFIX)]}": p
                for p in sorted(folder.glob(f"*{ONNX_SUFFIX}"))}
    index = json.loads((DATA / ("extra/index.json" if source == "extra" else "index.json"))
                       .read_text())
    return {e["file"].replace(".json.gz", ""): DATA / e["file"] for e in index
            if e["file"].startswith(source + "/")}


def graph_for(path: Path):
    """The graph IR of a corpus file (a gzipped config is unpacked to a temporary file)."""
    from keras_cnnkit.lint.api import graph_of
    if path.suffix != ".gz":
        return graph_of(str(path))
    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        fh.write(gzip.decompress(path.read_bytes()))
        fh.flush()
        return graph_of(fh.name)


def raw_findings(graph) -> list:
    """Every finding of every rule on ``graph``, as the rules yield them."""
    from keras_cnnkit.lint import registry
    out = []
    for rule in registry.instantiate(registry.select_rules(["ALL"])):
        out.extend(rule.check(graph))
    return out


def lint_source(source: str) -> dict:
    """``{model: [finding, ...] or error message}`` of a source, with the graph kept for
    proposing reasons."""
    from keras_cnnkit.errors import CnnkitError
    out = {}
    for key, path in models(source).items():
        try:
            graph = graph_for(path)
        except CnnkitError as exc:
            out[key] = (None, str(exc).split(": ")[-1])
            continue
        out[key] = (graph, raw_findings(graph))
    return out


def read_table(source: str) -> dict:
    """``{(model, layer, symbol): (verdict, reason)}`` of a table (empty if none)."""
    path = TABLES / f"{source}.tsv"
    if not path.exists():
        return {}
    rows = csv.reader(io.StringIO(path.read_text()), delimiter="\t")
    next(rows)
    return {tuple(row[:3]): (row[3], row[4]) for row in rows if row}


def write_table(source: str, table: dict) -> None:
    """Write a table, sorted by model, rule, layer."""
    TABLES.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(HEADER)
    for key in sorted(table, key=lambda k: (k[0], k[2], k[1])):
        writer.writerow([*key, *table[key]])
    (TABLES / f"{source}.tsv").write_text(buf.getvalue())


def pct(before, after) -> str:
    """Saving in percent of ``before`` (``"?"`` when unknown)."""
    if not before or after is None:
        return "?"
    return f"{100 * (before - after) / before:.0f}%"


def propose(model: str, graph, finding) -> tuple:
    """A proposed ``(verdict, reason)`` for a new finding, for a person to review."""
    node = graph[finding.node]
    a = node.attrs
    arch = model.split("/")[-1].lower()
    rule = finding.symbol
    if rule == "opaque-layer":
        hidden = finding.measurements.get("hidden", 0)
        return "keep", (f"{finding.measurements['class_name']} is not a class the reader "
                        f"knows: its cost is unknown" + (f", and {hidden} layers after it"
                                                          if hidden else ""))
    if rule == "large-kernel":
        return "keep", (f"{a['kernel'][0]}×{a['kernel'][0]} {a['in_channels']}→{a['filters']}: "
                        "two 3×3 see the window (Inception-V3 §3.1 factorises exactly these)")
    if rule == "asymmetric-factorization":
        size = "×".join(str(d) for d in node.spatial())
        return "keep", (f"3×3 on a {size} map: 1×3 + 3×1 saves a third (Szegedy 2016 §3.2, "
                        "medium grids); an alternative to the separable form of this conv")
    if rule == "missing-bottleneck":
        return "keep", (f"plain {a['kernel'][0]}×{a['kernel'][1]} {a['in_channels']}→"
                        f"{a['filters']} with no 1×1 in front: the bottleneck saves "
                        f"{pct(finding.params_before, finding.params_after)} of its weights")
    if rule == "depthwise-separable-candidate":
        return "keep", (f"{a['kernel'][0]}×{a['kernel'][1]} {a['in_channels']}→{a['filters']} "
                        f"inside the network: separable saves "
                        f"{pct(finding.params_before, finding.params_after)} of its weights "
                        "(MobileNet's trade; info, not measured faster)")
    if rule == "flatten-dense-head":
        return "keep", (f"{arch}'s fc head over a flattened map: "
                        f"{finding.params_before:,} → {finding.params_after:,} params with GAP")
    if rule == "bias-before-batchnorm":
        return "keep", "a conv bias the batch norm after it cancels: exact fix, small saving"
    if rule == "tensor-core-alignment":
        return "keep", (f"{finding.measurements['channels']} channels on a layer with ≥ 0.5% "
                        "of the MACs: tensor cores compute in tiles of 8")
    if rule == "mergeable-branches":
        return "keep", (f"train-form parallel branches ({finding.measurements['branches']}): "
                        "exact merge into one conv for inference")
    return "keep", f"{rule}: {finding.message[:80]}"


def precision_counts() -> dict:
    """``{symbol: {source: (kept, reported)}}`` over the tables (findings only)."""
    counts: dict = {}
    for source in SOURCES:
        for (_, _, symbol), (verdict, _) in read_table(source).items():
            if symbol == "-":
                continue
            kept, reported = counts.setdefault(symbol, {}).get(source, (0, 0))
            counts[symbol][source] = (kept + (verdict == "keep"), reported + 1)
    return counts


def compare(source: str, update: bool = False) -> int:
    """Print the differences between the table and the rules' findings; with ``update``
    rewrite the table.  Returns the number of differences."""
    table = read_table(source)
    linted = lint_source(source)
    new_table, diffs = {}, 0
    for model, (graph, found) in linted.items():
        if graph is None:
            key = (model, "-", "-")
            new_table[key] = table.get(key, ("unreadable", found))
            diffs += key not in table
            continue
        if not found:
            key = (model, "-", "-")
            new_table[key] = table.get(key, ("clean", "no findings ?"))
            diffs += key not in table
        for finding in found:
            key = (model, finding.layer, finding.symbol)
            if key in table:
                new_table[key] = table[key]
            else:
                verdict, reason = propose(model, graph, finding)
                new_table[key] = (verdict, reason + " ?")
                diffs += 1
                print(f"new: {model} {finding.layer} {finding.symbol}")
    for key in set(table) - set(new_table):
        diffs += 1
        print(f"gone: {' '.join(key)}")
    if update:
        write_table(source, new_table)
    return diffs


def main(argv=None) -> int:
    """Compare (or ``--update``) one source's table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=SOURCES, required=True)
    parser.add_argument("--update", action="store_true")
    args = parser.parse_args(argv)
    diffs = compare(args.source, update=args.update)
    print(f"{args.source}: {diffs} difference(s)" + (" (table rewritten)" if args.update else ""))
    return 0 if args.update or not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
