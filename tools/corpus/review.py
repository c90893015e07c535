"""Summarise the linter's results over the real-model corpus and classify its findings.

    python tools/corpus/run_lint.py            # first: lint every corpus file
    python tools/corpus/review.py [--write-md tools/corpus/REVIEW.md] [--json OUT]

Per model file: read status (ok / exit 2 + the error line / crash), params and MACs vs the
manifest's reference, opaque nodes, findings per rule.  Then, over one canonical file per
(source, architecture) — Keras 3 ``.keras``, tf_keras ``.h5``, keras-hub / kimm
``.functional.keras`` (the native file when that one fails), ONNX ``.static.onnx`` —
each finding gets one class, first match wins:

  fp-stem            kernel rule (101-104) on a conv over <= 4 input channels (a stem)
  fp-1x1-map         a rule on a conv/dense whose input map is 1x1 (SE convs, conv heads)
  fp-asymmetric      kernel rule on a 1xn / nx1 conv (Inception's factorised convs)
  fp-grouped         103/104 on a grouped (not depthwise) conv: already cheap
  fp-fused-mbconv    103/104/102 on EfficientNetV2's Fused-MBConv 3x3 expansion
  fp-narrow          103/104 on a conv with fewer than 32 input or output channels
  fp-inner-reduce    106 on a 1x1 reduction whose output feeds another conv (a bottleneck's
                     inner reduce: ResNet, SqueezeNet squeeze, Inception 1x1 reduce), not
                     the block output / residual stream that MobileNetV2's argument is about
  fp-layer-scale     108 where the "batch norm" is a folded per-channel Mul (ConvNeXt's layer
                     scale in ONNX): a scale does not cancel a bias
  fp-class-head      111 on the classifier (channels = class count)
  fp-depthwise       111 on a depthwise conv (no tensor-core GEMM)
  fp-plain-by-design 110 on MobileNetV1 / PP-LCNet, plain on purpose (BN trains them fine)
  fp-dense-connect   110 on a chain whose layers reach each other through concatenation
  opaque-reader-gap  001 on a layer whose computation is public and known (TFOpLambda of a
                     tf op, LayerScale, StochasticDepth...): the reader could model it
  opaque-downstream  001 on a known Keras layer made opaque only because an opaque layer
                     upstream left its input shape unknown (a reader gap)
  opaque-custom      001 on a genuinely custom class (correct)
  double             a second/third kernel rule (101-104) on a conv already flagged by a
                     rule with a bigger FLOP saving: its saving must not be added
  noise              saving < 0.5% of the model's FLOPs and < 0.5% of its params (for 111:
                     the layer has < 0.5% of the model's MACs)
  tp                 the rest: a true positive worth reporting

Misses are found on the graph dumps: a conv whose kernel covers its whole input map
(VGG's fc6 written as a 7x7 conv) with no flatten-dense-head finding; an Add whose inputs
are >= 2 linear conv(+BN) branches of one tensor (RepVGG / MobileOne / ACNet train form),
mergeable exactly into one conv, which no mergeable-branches (CNK112) finding reports.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter, defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import corpus_dir, load_all_manifests  # noqa: E402

KERNEL_RULES = {"CNK101", "CNK102", "CNK103", "CNK104"}
LINEAR_PASS = {"batchnorm", "identity", "dropout", "pad", "rescale"}
BENIGN_OPAQUE = re.compile(
    r"TFOpLambda|LayerScale|CustomScaleLayer|StochasticDepth|SlicingOpLambda|Rescaling|Normalization|"
    r"TrueDivide|HardSwish|HardSigmoid", re.I)


def pct(a, b):
    if a is None or not b:
        return None
    return 100.0 * (a - b) / b


def fmt_pct(x):
    return "" if x is None else f"{x:+.2f}%"


def load_results():
    rows = []
    for e in load_all_manifests():
        p = corpus_dir() / "lint" / (e["file"] + ".json")
        rec = json.loads(p.read_text()) if p.exists() else None
        rows.append((e, rec))
    return rows


def status_of(rec):
    if rec is None:
        return "not linted", ""
    if rec.get("timeout"):
        return "timeout", f"no result after {rec['timeout']} s"
    if rec.get("worker_crash") is not None:
        return "crash", rec.get("stderr", "").strip().splitlines()[-1:] or [""]
    if rec["rc"] == 2:
        line = rec.get("stderr", "").strip().splitlines()
        return "error", (line[-1] if line else "")
    return "ok", ""


def normalise_error(msg: str) -> str:
    msg = re.sub(r"cnnkit-lint: error: \S+: ", "", msg)
    msg = re.sub(r"'[^']*(/|\\)[^']*'", "'<path>'", msg)
    msg = re.sub(r"(top-level class|layer) '[^']*'", r"\1 '…'", msg)
    msg = re.sub(r"malformed tensor reference \S+", "malformed tensor reference …", msg)
    msg = re.sub(r"\d{3,}", "N", msg)
    return msg[:300]


class ModelView:
    """One linted file: summary, findings, graph helpers."""

    def __init__(self, entry, rec):
        self.e = entry
        self.rec = rec
        self.model = rec["report"]["models"][0]
        self.summary = self.model["summary"]
        # The rules' own findings: each site's alternatives (reports before sites: the
        # findings themselves).
        self.findings = [alt for f in self.model["findings"]
                         for alt in (f.get("alternatives") or [f])]
        g = rec.get("graph") or {"nodes": [], "outputs": []}
        self.nodes = {n["name"]: n for n in g["nodes"]}
        self.by_layer = {}
        for n in g["nodes"]:
            self.by_layer.setdefault(n.get("layer") or n["name"], n)
        self.outputs = set(g.get("outputs", []))
        self.consumers = defaultdict(list)
        for n in g["nodes"]:
            for i in n["inputs"]:
                self.consumers[i].append(n["name"])

    def node(self, f):
        return self.nodes.get(f.get("node")) or self.by_layer.get(f.get("layer"))

    # shape helpers (data_format aware)
    @staticmethod
    def cf(n):
        return (n.get("attrs") or {}).get("data_format") == "channels_first"

    def in_shape(self, n):
        s = n["input_shapes"][0] if n.get("input_shapes") else None
        return s

    def in_ch(self, n):
        a = n.get("attrs") or {}
        if a.get("in_channels"):
            return a["in_channels"]
        if a.get("in_features"):
            return a["in_features"]
        s = self.in_shape(n)
        if not s:
            return None
        return s[0] if self.cf(n) else s[-1]

    def out_ch(self, n):
        a = n.get("attrs") or {}
        if a.get("filters"):
            return a["filters"]
        if a.get("units"):
            return a["units"]
        s = n.get("output_shape")
        if not s:
            return None
        return s[0] if self.cf(n) else s[-1]

    def in_spatial(self, n):
        s = self.in_shape(n)
        if not s or len(s) < 2:
            return ()
        return tuple(s[1:]) if self.cf(n) else tuple(s[:-1])

    def kernel(self, n):
        return tuple((n.get("attrs") or {}).get("kernel") or ())

    def groups(self, n):
        return (n.get("attrs") or {}).get("groups") or 1

    def downstream(self, name, through=LINEAR_PASS | {"activation"}):
        """Consumers of ``name``, skipping BN / activation / dropout nodes."""
        out, stack, seen = [], list(self.consumers.get(name, [])), set()
        while stack:
            c = stack.pop()
            if c in seen:
                continue
            seen.add(c)
            cn = self.nodes.get(c)
            if cn is None:
                continue
            if cn["op"] in through:
                stack.extend(self.consumers.get(c, []))
                if c in self.outputs:
                    out.append(cn)
            else:
                out.append(cn)
        return out

    def linear_source(self, name, max_hops=6):
        """Walk up through BN/identity/pad from ``name``; (first non-linear node, hops)."""
        n = self.nodes.get(name)
        hops = 0
        while n is not None and n["op"] in LINEAR_PASS and n["inputs"] and hops < max_hops:
            n = self.nodes.get(n["inputs"][0])
            hops += 1
        return n


def arch_family(e):
    return (e.get("architecture") or "").lower()


def classify(mv: ModelView):
    """(finding, class, reason, node) for every finding of one model."""
    fam = arch_family(mv.e)
    flops = mv.summary.get("flops") or 0
    params = mv.summary.get("params") or 0
    macs = mv.summary.get("macs") or 0
    out = []
    for f in mv.findings:
        n = mv.node(f)
        code = f["code"]
        cls, why = None, ""
        if n is not None:
            k = mv.kernel(n)
            cin, cout = mv.in_ch(n), mv.out_ch(n)
            sp = mv.in_spatial(n)
            g = mv.groups(n)
            st = tuple((n.get("attrs") or {}).get("strides") or ())
            bw = bottleneck_width(f)
            if code in KERNEL_RULES and cin is not None and cin <= 4:
                cls, why = "fp-stem", f"conv over {cin} input channels"
            elif code in KERNEL_RULES and len(k) == 2 and k == st and k[0] > 1:
                cls, why = "fp-patchify", f"{k[0]}x{k[1]} stride-{st[0]} patch / downsampling conv"
            elif (code not in ("CNK001", "CNK110", "CNK105") and sp and None not in sp
                  and all(d == 1 for d in sp)):
                cls, why = "fp-1x1-map", f"input map {sp}"
            elif code in KERNEL_RULES and len(k) == 2 and 1 in k and k[0] != k[1]:
                cls, why = "fp-asymmetric", f"{k[0]}x{k[1]} conv"
            elif code in {"CNK103", "CNK104"} and n["op"] == "conv" and 1 < g < (cin or 0):
                cls, why = "fp-grouped", f"groups={g}"
            elif (code in {"CNK102", "CNK103", "CNK104"} and "efficientnet" in fam and "v2" in fam
                  and n["op"] == "conv" and k == (3, 3) and g == 1):
                cls, why = "fp-fused-mbconv", f"Fused-MBConv 3x3 {cin}->{cout}"
            elif code == "CNK103" and bw is not None and bw < 32:
                cls, why = "fp-narrow", f"{cin}->{cout}: the suggested bottleneck is {bw} channels wide"
            elif code in {"CNK103", "CNK104", "CNK106"} and cin and cout and min(cin, cout) < 32:
                cls, why = "fp-narrow", f"{cin}->{cout} channels"
            elif code == "CNK106":
                down = mv.downstream(n["name"])
                convs = [d for d in down if d["op"] in ("conv", "depthwise_conv", "dense")]
                if down and len(convs) == len(down):
                    cls, why = "fp-inner-reduce", "reduced tensor feeds " + ", ".join(
                        sorted({d["op"] for d in convs}))
            elif code == "CNK108":
                bns = [d for d in mv.downstream(n["name"], through=set()) if d["op"] == "batchnorm"]
                if bns and all((b.get("attrs") or {}).get("center") is False for b in bns):
                    cls, why = "fp-layer-scale", (f"the 'batch norm' is a scale-only {bns[0].get('source_class')} "
                                                  "(layer scale): it scales the bias, cancels nothing")
            elif code == "CNK111":
                if n["op"] == "depthwise_conv" or (n["op"] == "conv" and g > 1 and g == cin):
                    cls, why = "fp-depthwise", "depthwise conv"
                elif cout in (1000, 1001, 21843, 11821):
                    cls, why = "fp-class-head", f"{cout} classes"
        if cls is None and code == "CNK001":
            layer_cls = (n or {}).get("source_class", "") if n else ""
            text = f"{layer_cls} {f.get('message', '')}"
            if "cannot be analysed (input shape unknown)" in f.get("message", ""):
                cls, why = "opaque-downstream", f"{layer_cls}: known layer after an opaque one"
            elif layer_cls.startswith(("kimm.", "keras_hub.")) or layer_cls == "Lambda":
                cls, why = "opaque-custom", layer_cls
            elif False:
                cls, why = "opaque-downstream", f"{layer_cls}: known layer after an opaque one"
            elif (BENIGN_OPAQUE.search(text) or layer_cls.startswith("keras.ops.")
                  or (layer_cls and "." not in layer_cls and ">" not in layer_cls and layer_cls != "Lambda")):
                cls, why = "opaque-reader-gap", layer_cls or f["message"][:60]
            else:
                cls, why = "opaque-custom", layer_cls or f["message"][:60]
        if cls is None and code == "CNK110":
            # a chain whose members are joined by concat (DenseNet) is not plain
            if "densenet" in fam:
                cls, why = "fp-dense-connect", "dense connectivity (concat)"
            elif fam in ("mobilenet", "lcnet100", "lcnet_100"):
                cls, why = "fp-plain-by-design", "a deliberately plain mobile network (MobileNetV1, PP-LCNet)"
        out.append([f, cls, why, n])
    # double counting among the kernel rules on one node
    per_node = defaultdict(list)
    for item in out:
        f, cls = item[0], item[1]
        if f["code"] in KERNEL_RULES and cls is None:
            per_node[f.get("node") or f["layer"]].append(item)
    for items in per_node.values():
        if len(items) > 1:
            items.sort(key=lambda it: -saving(it[0])[0])
            for it in items[1:]:
                it[1], it[2] = "double", f"also {items[0][0]['code']} on this conv"
    # noise
    for item in out:
        if item[1] is not None:
            continue
        f = item[0]
        sf, sp = saving(f)
        if f["code"] == "CNK111":
            n = item[3]
            m = (n or {}).get("cost", {}).get("macs") or 0
            if macs and m < 0.005 * macs:
                item[1], item[2] = "noise", f"layer has {100 * m / macs:.2f}% of the MACs"
        elif f["code"] in ("CNK001", "CNK110"):
            pass
        elif f.get("flops_before") is not None and (flops and sf < 0.005 * flops) and (params and sp < 0.005 * params):
            item[1], item[2] = "noise", f"saves {100 * sf / flops:.3f}% FLOPs, {100 * sp / params:.3f}% params"
        if item[1] is None:
            item[1] = "tp"
    return out


def bottleneck_width(f):
    """The inner width of a missing-bottleneck replacement (its first 1x1 conv's filters)."""
    rep = f.get("replacement") or {}
    for rn in rep.get("nodes") or []:
        if rn.get("op") == "conv":
            return (rn.get("attrs") or {}).get("filters")
    return None


def saving(f):
    sf = (f.get("flops_before") or 0) - (f.get("flops_after") or 0)
    sp = (f.get("params_before") or 0) - (f.get("params_after") or 0)
    return sf, sp


def find_misses(mv: ModelView):
    misses = []
    flagged105 = {f.get("node") for f in mv.findings if f["code"] == "CNK105"}
    flagged112 = {f.get("node") for f in mv.findings if f["code"] == "CNK112"}
    flagged_any = {f.get("node") for f in mv.findings}
    for n in mv.nodes.values():
        if n["op"] == "conv":
            k, sp = mv.kernel(n), mv.in_spatial(n)
            osp = tuple(n["output_shape"][1:] if mv.cf(n) else n["output_shape"][:-1]) if n.get("output_shape") else ()
            if (len(k) == 2 and len(sp) == 2 and None not in sp and k == tuple(sp) and k[0] > 1
                    and mv.groups(n) == 1 and osp and all(d == 1 for d in osp)
                    and n["name"] not in flagged105):
                misses.append({"kind": "fullmap-conv-head", "layer": n.get("layer") or n["name"],
                               "detail": f"{k[0]}x{k[1]} conv over a {sp[0]}x{sp[1]} map, "
                                         f"{mv.in_ch(n)}->{mv.out_ch(n)}, "
                                         f"{(n.get('cost') or {}).get('params')} params",
                               "params": (n.get("cost") or {}).get("params"),
                               "flagged_by_other_rules": n["name"] in flagged_any})
        if n["op"] == "add" and len(n["inputs"]) >= 2 and n["name"] not in flagged112:
            # an add fed by another add that feeds nothing else is one n-way sum
            if len(mv.consumers.get(n["name"], [])) == 1 and \
                    mv.nodes.get(mv.consumers[n["name"]][0], {}).get("op") == "add":
                continue
            leaves, stack = [], list(n["inputs"])
            while stack:
                i = stack.pop()
                src_n = mv.nodes.get(i)
                if src_n is not None and src_n["op"] == "add" and len(mv.consumers.get(i, [])) == 1:
                    stack.extend(src_n["inputs"])
                else:
                    leaves.append(i)
            branches = []
            for i in leaves:
                src = mv.nodes.get(i)
                path = []
                while src is not None and src["op"] in ("batchnorm", "identity", "pad"):
                    path.append(src)
                    src = mv.nodes.get(src["inputs"][0]) if src["inputs"] else None
                if src is not None and src["op"] in ("conv", "depthwise_conv"):
                    branches.append(("conv", src, src["inputs"][0] if src["inputs"] else None))
                elif path:  # a BN-only (identity) branch
                    branches.append(("bn", path[-1], path[-1]["inputs"][0] if path[-1]["inputs"] else None))
            by_src = defaultdict(list)
            for b in branches:
                # a conv's input may be a pad of the shared tensor
                s = b[2]
                sn = mv.nodes.get(s)
                if sn is not None and sn["op"] == "pad":
                    s = sn["inputs"][0]
                by_src[s].append(b)
            for s, bs in by_src.items():
                convs = [b for b in bs if b[0] == "conv"]
                if len(bs) >= 2 and convs:
                    big = max(convs, key=lambda b: (b[1].get("cost") or {}).get("macs") or 0)
                    extra = sum((b[1].get("cost") or {}).get("macs") or 0 for b in convs if b is not big)
                    kern = "+".join(sorted(("x".join(map(str, mv.kernel(b[1]))) if b[0] == "conv" else "BN")
                                           for b in bs))
                    misses.append({"kind": "parallel-linear-branches", "layer": n.get("layer") or n["name"],
                                   "detail": f"{len(bs)} linear branches of one tensor summed ({kern}); "
                                             f"merge into one {'x'.join(map(str, mv.kernel(big[1])))} conv "
                                             f"saves {extra:,} MACs",
                                   "macs_saved": extra})
            # also a Dense over a flattened spatial map without CNK105
        if n["op"] == "dense" and n["inputs"]:
            src = mv.nodes.get(n["inputs"][0])
            if src is not None and src["op"] in ("flatten", "reshape") and src.get("input_shapes"):
                s = src["input_shapes"][0]
                if s and len(s) == 3 and None not in s:
                    spatial = s[1:] if mv.cf(src) else s[:-1]
                    if max(spatial) > 1 and n["name"] not in flagged105:
                        misses.append({"kind": "flatten-dense-unflagged", "layer": n.get("layer") or n["name"],
                                       "detail": f"dense over flattened {s}"})
    return misses


def canonical(e) -> bool:
    f = e["file"]
    if f.startswith("keras_apps/"):
        return f.endswith(".keras")
    if f.startswith("tf_keras_apps/"):
        return f.endswith(".h5")
    if f.startswith(("keras_hub/", "kimm/")):
        return f.endswith(".functional.keras")
    if f.startswith("onnx/"):
        return f.endswith(".static.onnx")
    return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-md", help="replace the generated section of this markdown file")
    ap.add_argument("--json", help="write the full classification as JSON here")
    ns = ap.parse_args(argv)
    rows = load_results()
    md = []
    w = md.append

    # ---------------------------------------------------------------- per file
    src_counts = Counter()
    status_counts = Counter()
    errors = defaultdict(list)
    per_file = []
    views = {}
    for e, rec in rows:
        src = e["file"].split("/")[0]
        src_counts[src] += 1
        st, msg = status_of(rec)
        status_counts[(src, st)] += 1
        row = {"file": e["file"], "source": e.get("source"), "arch": e.get("architecture"),
               "format": e.get("format"), "variant": e.get("variant", ""), "status": st, "error": msg}
        if st == "error" or st == "crash" or st == "timeout":
            errors[normalise_error(msg if isinstance(msg, str) else str(msg))].append(e["file"])
        if st == "ok":
            mv = ModelView(e, rec)
            views[e["file"]] = mv
            s = mv.summary
            ref_p = (e.get("onnx_initializer_elements_per_use") or e.get("onnx_initializer_elements")) if e.get("format") == "onnx" else e.get("count_params")
            row.update(params=s.get("params"), ref_params=ref_p, params_diff=pct(s.get("params"), ref_p),
                       macs=s.get("macs"), ref_macs=e.get("ref_macs"), macs_diff=pct(s.get("macs"), e.get("ref_macs")),
                       opaque=len(s.get("opaque_layers") or []), unknown_cost=len(s.get("unknown_cost_layers") or []),
                       findings=dict(Counter(f["code"] for f in mv.findings)))
        per_file.append(row)

    w("### Corpus and read status\n")
    w("| source | files | ok | exit 2 | crash/timeout |")
    w("|---|---:|---:|---:|---:|")
    for src in sorted(src_counts):
        w(f"| {src} | {src_counts[src]} | {status_counts[(src, 'ok')]} | {status_counts[(src, 'error')]} | "
          f"{status_counts[(src, 'crash')] + status_counts[(src, 'timeout')]} |")
    w(f"| **all** | {sum(src_counts.values())} | {sum(v for (s, t), v in status_counts.items() if t == 'ok')} | "
      f"{sum(v for (s, t), v in status_counts.items() if t == 'error')} | "
      f"{sum(v for (s, t), v in status_counts.items() if t in ('crash', 'timeout'))} |\n")

    w("### Reading failures by cause\n")
    w("| files | error (path stripped) | examples |")
    w("|---:|---|---|")
    for msg, files in sorted(errors.items(), key=lambda kv: -len(kv[1])):
        w(f"| {len(files)} | `{msg.replace('|', '/')}` | {', '.join(files[:4])}{' …' if len(files) > 4 else ''} |")
    w("")

    # ---------------------------------------------------------------- params / MACs agreement
    w("### Params and MACs against the reference\n")
    w("Reference: Keras `count_params()` / ONNX initializer elements counted per use (the exporter stores identical tensors once); MACs: the generator's "
      "independent conv+dense counter (Keras) or fvcore conv+linear (ONNX), both at the "
      "model's input size. Rows are files whose figures differ by more than 0.5% (dynamic-shape ONNX files: see below).\n")
    w("| file | params | ref | Δ | MACs | ref | Δ | opaque | unknown cost |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    agree = Counter()
    for r in per_file:
        if r["status"] != "ok":
            continue
        pd, md_ = r.get("params_diff"), r.get("macs_diff")
        okp = pd is not None and abs(pd) <= 0.5
        okm = md_ is not None and abs(md_) <= 0.5
        agree[(r["file"].split("/")[0], okp, okm)] += 1
        if not (okp and okm) and ".dynamic." not in r["file"]:
            w(f"| {r['file']} | {r.get('params') or 0:,} | {r.get('ref_params') or 0:,} | {fmt_pct(pd)} | "
              f"{r.get('macs') or 0:,} | {r.get('ref_macs') or 0:,} | {fmt_pct(md_)} | {r['opaque']} | {r['unknown_cost']} |")
    w("")
    w("| source | params and MACs within 0.5% | params off | MACs off | both off |")
    w("|---|---:|---:|---:|---:|")
    for src in sorted({k[0] for k in agree}):
        w(f"| {src} | {agree[(src, True, True)]} | {agree[(src, False, True)]} | {agree[(src, True, False)]} | "
          f"{agree[(src, False, False)]} |")
    w("")

    # ---------------------------------------------------------------- format consistency
    w("### Same model, different file formats\n")
    groups = defaultdict(dict)
    for f, mv in views.items():
        key = f.split("/")[0], f.split("/")[1].split(".")[0]
        groups[key][f] = {(x["code"], x["layer"]) for x in mv.findings}
    incons = []
    for key, files in sorted(groups.items()):
        sets = list(files.values())
        if len(sets) > 1 and any(s != sets[0] for s in sets[1:]):
            sizes = ", ".join(f"{os.path.basename(k)}: {len(v)}" for k, v in files.items())
            incons.append(f"| {key[0]}/{key[1]} | {sizes} |")
    w(f"{len(incons)} of {sum(1 for v in groups.values() if len(v) > 1)} models linted in more than one readable "
      f"format get different finding sets (compared by rule and layer):\n")
    if incons:
        w("| model | findings per file |")
        w("|---|---|")
        md.extend(incons)
    w("")

    # ---------------------------------------------------------------- dynamic ONNX
    dyn = [(f, mv) for f, mv in views.items() if ".dynamic." in f]
    if dyn:
        w("### Dynamic-shape ONNX: default vs `--input-shape 224x224`\n")
        w("| model | MACs (default) | unknown-cost nodes | findings (default) | MACs at 224 | findings at 224 | "
          "224 findings = static's |")
        w("|---|---:|---:|---:|---:|---:|---|")
        same_n = 0
        for f, mv in sorted(dyn):
            w224 = mv.rec.get("with_input_shape_224") or {}
            s224 = w224.get("summary") or {}
            static = views.get(f.replace(".dynamic.", ".static."))
            same = None
            if static is not None and "findings" in w224:
                same = ({(c, l) for c, l in w224["findings"]} ==
                        {(x["code"], x["layer"]) for x in static.findings})
                same_n += bool(same)
            if w224.get("rc") == 2:
                w(f"| {os.path.basename(f).split('.')[0]} | {mv.summary.get('macs') or 0:,} | "
                  f"{len(mv.summary.get('unknown_cost_layers') or [])} | {len(mv.findings)} | "
                  f"n/a: {(w224.get('stderr') or '').strip().split(': ')[-1][:70]} | | |")
                continue
            w(f"| {os.path.basename(f).split('.')[0]} | {mv.summary.get('macs') or 0:,} | "
              f"{len(mv.summary.get('unknown_cost_layers') or [])} | {len(mv.findings)} | "
              f"{s224.get('macs') or 0:,} | {len(w224.get('findings') or [])} | {same} |")
        n_hw = sum(1 for f, mv in dyn if (mv.rec.get("with_input_shape_224") or {}).get("rc") != 2)
        w(f"\n{same_n} of the {n_hw} files with dynamic height/width give the static file's findings once "
          f"the size is given ({len(dyn) - n_hw} have a dynamic batch only).\n")

    # ---------------------------------------------------------------- classification
    classified = []
    misses = []
    for f, mv in views.items():
        if not canonical(mv.e):
            continue
        for fnd, cls, why, n in classify(mv):
            classified.append({"file": f, "arch": mv.e.get("architecture"), "code": fnd["code"],
                               "symbol": fnd["symbol"], "layer": fnd["layer"], "class": cls, "why": why,
                               "message": fnd["message"], "saving_flops": saving(fnd)[0],
                               "model_flops": mv.summary.get("flops")})
        for m in find_misses(mv):
            misses.append({"file": f, "arch": mv.e.get("architecture"), **m})
    canon_models = [f for f, mv in views.items() if canonical(mv.e)]
    w(f"### Findings by class ({len(classified)} findings on {len(canon_models)} canonical files)\n")
    codes = sorted({c["code"] for c in classified})
    classes = ["tp", "noise", "double"] + sorted({c["class"] for c in classified} - {"tp", "noise", "double"})
    cnt = Counter((c["code"], c["class"]) for c in classified)
    w("| rule | " + " | ".join(classes) + " | total | precision (tp / all) | correct claim (tp+noise+double) / all |")
    w("|---|" + "---:|" * (len(classes) + 3))
    for code in codes:
        tot = sum(cnt[(code, k)] for k in classes)
        tp = cnt[(code, "tp")]
        corr = tp + cnt[(code, "noise")] + cnt[(code, "double")] + cnt[(code, "opaque-custom")]
        w(f"| {code} | " + " | ".join(str(cnt[(code, k)] or "") for k in classes) +
          f" | {tot} | {100 * tp / tot:.0f}% | {100 * corr / tot:.0f}% |")
    tot_all = Counter(c["class"] for c in classified)
    w("| **all** | " + " | ".join(str(tot_all[k]) for k in classes) + f" | {len(classified)} | "
      f"{100 * tot_all['tp'] / max(1, len(classified)):.0f}% | |\n")

    w("Examples per class (file: layer — rule — why):\n")
    by_class = defaultdict(list)
    for c in classified:
        by_class[c["class"]].append(c)
    for k in classes:
        ex = by_class[k]
        seen_arch = set()
        picks = []
        for c in ex:
            if c["arch"] in seen_arch:
                continue
            seen_arch.add(c["arch"])
            picks.append(c)
            if len(picks) == 6:
                break
        w(f"- **{k}** ({len(ex)}): " + "; ".join(f"`{os.path.basename(c['file'])}`: `{c['layer']}` {c['code']} "
                                                 f"({c['why'] or c['message'][:70]})" for c in picks))
    w("")

    # overstated totals: the findings' savings added up, per model
    tot_sav = defaultdict(int)
    dedup_sav = defaultdict(dict)
    mflops = {}
    for c in classified:
        tot_sav[c["file"]] += max(0, c["saving_flops"])
        mflops[c["file"]] = c["model_flops"] or 0
        key = c["layer"]
        dedup_sav[c["file"]][key] = max(dedup_sav[c["file"]].get(key, 0), max(0, c["saving_flops"]))
    over = sorted(((100 * tot_sav[f] / mflops[f], 100 * sum(dedup_sav[f].values()) / mflops[f], f)
                   for f in tot_sav if mflops.get(f)), reverse=True)
    w("Adding up every finding's FLOP saving, as a report total would: "
      f"{sum(1 for o in over if o[0] > 100)} models 'save' more than 100% of their FLOPs, "
      f"{sum(1 for o in over if o[0] > 50)} more than 50%; counting each layer once (its best "
      f"finding) these become {sum(1 for o in over if o[1] > 100)} and {sum(1 for o in over if o[1] > 50)}. "
      "Largest: " + ", ".join(f"`{os.path.basename(f)}` {a:.0f}% ({b:.0f}% per layer)" for a, b, f in over[:6]) + ".\n")

    # per source
    w("| source | tp | noise | double | fp-* | opaque-* | findings | files |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    per_src = defaultdict(Counter)
    for c in classified:
        k = c["class"]
        per_src[c["file"].split("/")[0]][k if k in ("tp", "noise", "double") else k.split("-")[0]] += 1
    nfiles = Counter(f.split("/")[0] for f in canon_models)
    for src in sorted(nfiles):
        cc = per_src[src]
        w(f"| {src} | {cc['tp']} | {cc['noise']} | {cc['double']} | {cc['fp']} | {cc['opaque']} | "
          f"{sum(cc.values())} | {nfiles[src]} |")
    w("")

    # ---------------------------------------------------------------- misses
    w(f"### Misses ({len(misses)} on canonical files)\n")
    mk = Counter(m["kind"] for m in misses)
    w("| kind | count | models |")
    w("|---|---:|---|")
    for k, v in mk.most_common():
        archs = sorted({m["file"] for m in misses if m["kind"] == k})
        w(f"| {k} | {v} | {', '.join(os.path.basename(a) for a in archs[:12])}{' …' if len(archs) > 12 else ''} |")
    w("")
    par = defaultdict(int)
    for m in misses:
        if m["kind"] == "parallel-linear-branches":
            par[m["file"]] += m.get("macs_saved") or 0
    if par:
        w("Exact merge of the parallel branches (RepVGG/MobileOne-style re-parameterisation), per model: " +
          ", ".join(f"`{os.path.basename(f)}` {v / 1e6:,.0f} M MACs "
                    f"({100 * v / max(1, views[f].summary.get('macs') or 1):.1f}% of the model)" for f, v in sorted(par.items())) + ".\n")
    for k in mk:
        ex = [m for m in misses if m["kind"] == k][:4]
        for m in ex:
            w(f"- {k}: `{m['file']}` `{m['layer']}`: {m['detail']}")
    w("")

    # ---------------------------------------------------------------- per-model table
    w("### Per file\n")
    w("| file | status | params Δ | MACs Δ | opaque | findings per rule |")
    w("|---|---|---:|---:|---:|---|")
    for r in sorted(per_file, key=lambda r: r["file"]):
        if r["status"] != "ok":
            w(f"| {r['file']} | {r['status']}: {str(r['error'])[:90].replace('|', '/')} | | | | |")
        else:
            fr = ", ".join(f"{k}×{v}" for k, v in sorted(r["findings"].items()))
            w(f"| {r['file']} | ok | {fmt_pct(r.get('params_diff'))} | {fmt_pct(r.get('macs_diff'))} | "
              f"{r['opaque']} | {fr} |")
    text = "\n".join(md) + "\n"
    if ns.write_md:
        start, end = "<!-- review.py:start -->", "<!-- review.py:end -->"
        doc = open(ns.write_md).read() if os.path.exists(ns.write_md) else f"{start}\n{end}\n"
        i, j = doc.find(start), doc.find(end)
        doc = doc[:i + len(start)] + "\n" + text + doc[j:]
        with open(ns.write_md, "w") as fh:
            fh.write(doc)
    else:
        sys.stdout.write(text)
    if ns.json:
        with open(ns.json, "w") as fh:
            json.dump({"files": per_file, "findings": classified, "misses": misses,
                       "errors": {k: v for k, v in errors.items()}}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
