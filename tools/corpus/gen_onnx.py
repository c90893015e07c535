"""torchvision and timm CNNs exported to ONNX (opset 17), for the real-model corpus.

Run through tox (CPU torch lives only in that env, never in the system Python):

    tox -e corpus-onnx                     # everything
    tox -e corpus-onnx -- --only resnet18  # some models
    tox -e corpus-onnx -- --list

Each model is exported twice into ``<corpus>/onnx/``: ``NAME.static.onnx`` (input
1x3x224x224) and ``NAME.dynamic.onnx`` (batch, height and width dynamic through
``dynamic_axes``), both in eval mode with the TorchScript exporter (``dynamo=False``),
which folds batch norm into the preceding convolution.  The manifest (``manifest/onnx.json``)
records torch's parameter count, the ONNX initializers' element count (what a reader of
the file can see), and fvcore's MAC counts at 224x224: conv + linear (``ref_macs``) and
all operators (``fvcore_total_macs``, which also counts matmul/einsum/upsample/...).
RepVGG and MobileOne are exported in their train (multi-branch) form.  Existing files
are kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Manifest, corpus_dir  # noqa: E402

# (library, constructor name, notes)
MODELS = [
    ("torchvision", "resnet18", ""),
    ("torchvision", "resnet50", ""),
    ("torchvision", "resnext50_32x4d", "grouped 3x3 (32 groups)"),
    ("torchvision", "wide_resnet50_2", ""),
    ("torchvision", "mobilenet_v2", ""),
    ("torchvision", "mobilenet_v3_large", "SE convs over 1x1 maps, hardswish"),
    ("torchvision", "mobilenet_v3_small", ""),
    ("torchvision", "efficientnet_b0", ""),
    ("torchvision", "efficientnet_v2_s", "Fused-MBConv in early stages"),
    ("torchvision", "shufflenet_v2_x1_0", "channel shuffle as reshape/transpose"),
    ("torchvision", "squeezenet1_0", "fire modules, conv classifier"),
    ("torchvision", "squeezenet1_1", ""),
    ("torchvision", "densenet121", ""),
    ("torchvision", "googlenet", "aux heads dropped in eval"),
    ("torchvision", "inception_v3", "aux head dropped in eval; run at 224, not 299"),
    ("torchvision", "vgg16", "Flatten + Linear head (adaptive avg pool to 7x7)"),
    ("torchvision", "vgg16_bn", ""),
    ("torchvision", "alexnet", ""),
    ("torchvision", "regnet_y_400mf", ""),
    ("torchvision", "regnet_x_1_6gf", ""),
    ("torchvision", "convnext_tiny", "layer scale, LayerNorm, 7x7 depthwise"),
    ("torchvision", "mnasnet1_0", ""),
    ("timm", "repvgg_a0", "train form: 3x3 + 1x1 + identity-BN branches"),
    ("timm", "mobileone_s0", "train form: over-parameterised branches"),
    ("timm", "res2net50_26w_4s", "hierarchical split 3x3s"),
    ("timm", "dla34", ""),
    ("timm", "ghostnet_100", "ghost modules (cheap depthwise ops + concat)"),
    ("timm", "cspdarknet53", ""),
    ("timm", "cspresnet50", ""),
    ("timm", "efficientnet_lite0", ""),
    ("timm", "mixnet_s", "mixed kernel sizes (split + concat)"),
    ("timm", "rexnet_100", ""),
    ("timm", "lcnet_100", ""),
    ("timm", "hrnet_w18_small", "multi-resolution branches, upsample"),
    ("timm", "ese_vovnet19b_dw", "one-shot aggregation"),
    ("timm", "dpn68", "dual path, grouped 3x3"),
    ("timm", "selecsls42b", ""),
    ("timm", "resnest14d", "split attention (radix 2)"),
    ("timm", "xception41", "separable convs (timm)"),
    ("timm", "tinynet_a", ""),
]


def build(lib: str, name: str):
    if lib == "torchvision":
        import torchvision
        kw = {"weights": None}
        if name in ("googlenet", "inception_v3"):
            kw.update(aux_logits=True, init_weights=True)
        return getattr(torchvision.models, name)(**kw)
    import timm
    return timm.create_model(name, pretrained=False)


def conv_linear_macs(model, x):
    """fvcore at batch 1: (conv+linear MACs, total MACs, by-operator dict, method)."""
    try:
        from fvcore.nn import FlopCountAnalysis
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fca = FlopCountAnalysis(model, x)
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            by_op = {k: int(v) for k, v in fca.by_operator().items()}
            total = int(fca.total())
        cl = sum(v for k, v in by_op.items() if k in ("conv", "linear", "addmm"))
        return cl, total, by_op, "fvcore FlopCountAnalysis: conv + linear + addmm (1 MAC = 1 fvcore flop)"
    except Exception as e:  # noqa: BLE001
        from torch.utils.flop_counter import FlopCounterMode
        import torch
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            model(x)
        counts = fc.get_flop_counts().get("Global", {})
        by_op = {str(k): int(v) // 2 for k, v in counts.items()}
        cl = sum(v for k, v in by_op.items() if "convolution" in k or "mm" in k)
        return cl, sum(by_op.values()), by_op, f"torch.utils.flop_counter (fvcore failed: {type(e).__name__})"


def export(model, x, tmp, kw):
    import torch
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(tmp), opset_version=17,
                          input_names=["input"], output_names=["output"],
                          dynamo=False, do_constant_folding=True, **kw)


def onnx_initializer_elements(path, per_use: bool = False) -> int:
    """Elements of the file's initializers; ``per_use``: counted once per node input using
    them (the exporter stores identical tensors once, e.g. the all-zero convs that
    zero-init-last batch norm folds into, so the model's parameters are the per-use count)."""
    import onnx
    import numpy as np
    m = onnx.load(str(path), load_external_data=False)
    sizes = {t.name: int(np.prod(t.dims)) if len(t.dims) else 1 for t in m.graph.initializer}
    if not per_use:
        return int(sum(sizes.values()))
    return int(sum(sizes[i] for n in m.graph.node for i in n.input if i in sizes))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    ns = ap.parse_args(argv)
    models = MODELS
    if ns.only:
        want = set(ns.only.split(","))
        models = [m for m in models if m[1] in want]
    if ns.list:
        print("\n".join(f"{lib}:{name}" for lib, name, _ in models))
        return 0

    import torch
    import torchvision
    import timm
    import onnx
    torch.set_num_threads(1)
    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "timm": timm.__version__, "onnx": onnx.__version__}
    try:
        import fvcore
        versions["fvcore"] = getattr(fvcore, "__version__", "0.1.5")
    except ImportError:
        pass
    out = corpus_dir() / "onnx"
    out.mkdir(parents=True, exist_ok=True)
    man = Manifest("onnx")
    failures = 0
    for i, (lib, name, notes) in enumerate(models):
        rels = {v: f"onnx/{name}.{v}.onnx" for v in ("static", "dynamic")}
        if all(man.has(r) for r in rels.values()):
            continue
        t0 = time.time()
        try:
            torch.manual_seed(0)
            model = build(lib, name).eval()
            x = torch.randn(1, 3, 224, 224)
            n_params = sum(p.numel() for p in model.parameters())
            n_buffers = sum(b.numel() for n, b in model.named_buffers() if "num_batches" not in n)
            with torch.no_grad():
                cl, total, by_op, method = conv_linear_macs(model, x)
            notes_extra = {}
            for variant, rel in rels.items():
                path = corpus_dir() / rel
                if not path.exists():
                    tmp = path.with_name(path.stem + ".partial.onnx")
                    kw = {}
                    if variant == "dynamic":
                        kw["dynamic_axes"] = {"input": {0: "batch", 2: "height", 3: "width"},
                                              "output": {0: "batch"}}
                    try:
                        export(model, x, tmp, kw)
                    except Exception as exc:  # noqa: BLE001
                        if variant != "dynamic":
                            raise
                        # adaptive_avg_pool2d to a fixed size (VGG, AlexNet) does not export
                        # with dynamic height/width: keep the batch dynamic only.
                        kw["dynamic_axes"] = {"input": {0: "batch"}, "output": {0: "batch"}}
                        notes_extra[rel] = (f"dynamic batch only: dynamic H/W export failed "
                                            f"({type(exc).__name__}: {str(exc)[:120]})")
                        export(model, x, tmp, kw)
                    onnx.checker.check_model(str(tmp))
                    os.replace(tmp, path)
                man.add({
                    "file": rel, "format": "onnx", "variant": variant,
                    "source": lib, "library": lib, "version": versions[lib], "versions": versions,
                    "architecture": name, "input_shape": [3, 224, 224],
                    "dynamic_axes": (variant == "dynamic") and ("batch only" if rel in notes_extra else "batch, height, width"),
                    "opset": 17,
                    "count_params": int(n_params), "bn_buffers": int(n_buffers),
                    "onnx_initializer_elements": onnx_initializer_elements(path),
                    "onnx_initializer_elements_per_use": onnx_initializer_elements(path, per_use=True),
                    "ref_macs": int(cl), "fvcore_total_macs": int(total), "ref_macs_by_op": by_op,
                    "ref_macs_method": method, "bytes": path.stat().st_size,
                    "notes": "; ".join(x for x in (notes, notes_extra.get(rel, "")) if x),
                })
            print(f"[{i + 1}/{len(models)}] {lib}:{name}: {n_params:,} params, {cl / 1e9:.3f} GMACs "
                  f"({time.time() - t0:.0f}s)", flush=True)
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"[{i + 1}/{len(models)}] {lib}:{name}: FAILED {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
