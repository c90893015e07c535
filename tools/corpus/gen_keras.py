"""Generate the keras.applications part of the corpus (random weights, nothing downloaded).

    python tools/corpus/gen_keras.py --source keras      # Keras 3: .keras, legacy .h5, config .json
    python tools/corpus/gen_keras.py --source tf_keras   # Keras 2 (tf_keras): .h5 (+ config .json)
    ... [--quick] [--only ResNet50,VGG16] [--list]

Keras 3.15's keras.applications has 40 architectures; tf_keras 2.21 has those 40 plus
RegNetX/Y (24) and ResNetRS (7).  ``--quick`` skips the biggest (see BIG).  Files go to
``<corpus>/keras_apps/`` and ``<corpus>/tf_keras_apps/``; existing files are kept.
Run it under ``nice -n 10``: it builds up to 350M-parameter models on the CPU.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Manifest, MacCounter, corpus_dir, input_hw  # noqa: E402

# Over ~90M parameters or slow to build; skipped by --quick.
BIG = {
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge", "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2M", "EfficientNetV2L", "NASNetLarge", "VGG19",
    "RegNetX160", "RegNetX320", "RegNetY160", "RegNetY320",
    "ResNetRS152", "ResNetRS200", "ResNetRS270", "ResNetRS350", "ResNetRS420",
}


def arch_names(lib) -> list[str]:
    return sorted(n for n in dir(lib.applications) if n[0].isupper() and callable(getattr(lib.applications, n)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=["keras", "tf_keras"], default="keras")
    ap.add_argument("--quick", action="store_true", help="skip the biggest models: " + ", ".join(sorted(BIG)))
    ap.add_argument("--only", default="", help="comma-separated architecture names")
    ap.add_argument("--list", action="store_true")
    ns = ap.parse_args(argv)

    if ns.source == "keras":
        import keras as lib
        from keras.src.layers.layer import Layer as LayerBase
        sub, source_key, formats = "keras_apps", "keras_apps", ("json", "h5", "keras")
        source = "keras.applications"
    else:
        import tf_keras as lib
        from tf_keras.src.engine.base_layer import Layer as LayerBase
        sub, source_key, formats = "tf_keras_apps", "tf_keras_apps", ("json", "h5")
        source = "tf_keras.applications"
    version = lib.__version__
    names = arch_names(lib)
    if ns.only:
        want = set(ns.only.split(","))
        names = [n for n in names if n in want]
    if ns.quick:
        names = [n for n in names if n not in BIG]
    if ns.list:
        print("\n".join(names))
        return 0

    out = corpus_dir() / sub
    out.mkdir(parents=True, exist_ok=True)
    man = Manifest(source_key)
    failures = 0
    for i, name in enumerate(names):
        rels = {fmt: f"{sub}/{name}.{fmt}" for fmt in formats}
        if all(man.has(r) for r in rels.values()):
            continue
        t0 = time.time()
        try:
            model = getattr(lib.applications, name)(weights=None)
            shape = input_hw(model)
            import numpy as np
            x = np.zeros((1,) + shape, dtype="float32")
            with MacCounter(LayerBase) as mc:
                model(x, training=False)
            meta = {
                "source": source, "library": lib.__name__, "version": version,
                "architecture": name, "input_shape": list(shape),
                "count_params": int(model.count_params()),
                "trainable_params": int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
                "ref_macs": int(mc.total), "ref_macs_by_kind": mc.by_kind,
                "ref_macs_method": "wrapped Layer.__call__, eager forward at batch 1 (conv, depthwise, separable, dense)",
                "n_layers": len(model.layers),
                "layer_classes": sorted({type(l).__name__ for l in model.layers}),
            }
            for fmt, rel in rels.items():
                path = corpus_dir() / rel
                if not path.exists():
                    tmp = path.with_name(path.stem + ".partial." + fmt)
                    if fmt == "json":
                        tmp.write_text(model.to_json())
                    else:
                        model.save(str(tmp))
                    os.replace(tmp, path)
                man.add({"file": rel, "format": fmt, "bytes": path.stat().st_size, **meta})
            print(f"[{i + 1}/{len(names)}] {name}: {meta['count_params']:,} params, "
                  f"{meta['ref_macs'] / 1e9:.3f} GMACs @ {shape}  ({time.time() - t0:.0f}s)", flush=True)
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"[{i + 1}/{len(names)}] {name}: FAILED {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
        finally:
            model = None
            lib.backend.clear_session()
            gc.collect()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
