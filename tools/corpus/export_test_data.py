"""Copy the corpus's bare Keras configs into ``tests/data/corpus/`` for the fast test suite.

    python tools/corpus/export_test_data.py [--extra-only]

Writes ``tests/data/corpus/keras3/NAME.json.gz`` (Keras 3.15 keras.applications) and
``tests/data/corpus/tf_keras/NAME.json.gz`` (tf_keras 2.21 keras.applications), each the
model's ``to_json()`` re-serialised compactly and gzipped deterministically (mtime 0), and
``tests/data/corpus/index.json``: per file its source library and version, architecture,
input shape, ``count_params`` and the reference conv+dense MACs measured when the model
was built (see tools/corpus/common.py).  A few keras-hub / kimm models whose designs the
rules' exemptions are tested on (:data:`EXTRA`) go to ``tests/data/corpus/extra/``, with
their own ``index.json``: the ``config.json`` inside their re-wrapped Functional
``.keras`` archive.  A config has no weights: what only a weights file
shows (the ``.h5``/``.keras`` readers' weight-shape checks) is not covered by this data.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Manifest, corpus_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEST = ROOT / "tests" / "data" / "corpus"


def gz_bytes(text: str) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0, filename="") as f:
        f.write(text.encode())
    return buf.getvalue()


#: keras-hub / kimm models (Functional re-wraps) whose configs the fast suite lints: the
#: conv-written VGG head, ResNet-18's basic blocks (two libraries), PP-LCNet (plain);
#: PP-HGNet's deep stem and plain 3×3 HG blocks, PP-HGNetV2's forked stem, light blocks
#: and squeeze-excitation aggregation, GhostNet's ghost modules, MobileViTV2's separable
#: attention, EfficientNetV2's Fused-MBConv, ConvMixer's large depthwise kernels, and
#: kimm's own layers the reader does not know (ConvNeXt's LayerScale, RepVGG's
#: ReparameterizableConv2D).
EXTRA = ("kimm/VGG16.functional.keras", "kimm/ResNet18.functional.keras",
         "keras_hub/resnet18.functional.keras", "kimm/LCNet100.functional.keras",
         "kimm/HGNetSmall.functional.keras", "kimm/HGNetV2B4.functional.keras",
         "kimm/GhostNetW100.functional.keras", "kimm/MobileViTV2W050.functional.keras",
         "kimm/EfficientNetV2B0.functional.keras", "kimm/ConvMixer736D32.functional.keras",
         "kimm/ConvNeXtAtto.functional.keras", "kimm/RepVGGA0.functional.keras")


def export_extra() -> int:
    """The :data:`EXTRA` configs and their index; returns the bytes written."""
    entries = {e["file"]: e for key in ("kimm", "keras_hub")
               for e in Manifest(key).entries.values()}
    index, total = [], 0
    for rel in EXTRA:
        e = entries[rel]
        with zipfile.ZipFile(corpus_dir() / rel) as archive:
            cfg = json.loads(archive.read("config.json"))
        data = gz_bytes(json.dumps(cfg, separators=(",", ":"), sort_keys=False))
        name = f"{e['library'].replace('-', '_')}_{e['architecture']}.json.gz"
        out = DEST / "extra" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
        total += len(data)
        index.append({"file": f"extra/{name}", "source": e["source"], "library": e["library"],
                      "version": e["version"], "architecture": e["architecture"],
                      "input_shape": e["input_shape"], "count_params": e["count_params"],
                      "ref_macs": e["ref_macs"], "layer_classes": e.get("layer_classes", [])})
    (DEST / "extra" / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return total


def main(argv=None) -> int:
    if "--extra-only" in (sys.argv[1:] if argv is None else argv):
        total = export_extra()
        print(f"{len(EXTRA)} extra configs, {total / 1e6:.2f} MB gzipped, in {DEST / 'extra'}")
        return 0
    index = []
    total = 0
    for key, sub in (("keras_apps", "keras3"), ("tf_keras_apps", "tf_keras")):
        man = Manifest(key)
        for rel, e in sorted(man.entries.items()):
            if e.get("format") != "json" or not (corpus_dir() / rel).exists():
                continue
            cfg = json.loads((corpus_dir() / rel).read_text())
            data = gz_bytes(json.dumps(cfg, separators=(",", ":"), sort_keys=False))
            out = DEST / sub / (e["architecture"] + ".json.gz")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            total += len(data)
            index.append({"file": f"{sub}/{out.name}", "source": e["source"], "library": e["library"],
                          "version": e["version"], "architecture": e["architecture"],
                          "input_shape": e["input_shape"], "count_params": e["count_params"],
                          "ref_macs": e["ref_macs"], "layer_classes": e.get("layer_classes", [])})
    (DEST / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    total += export_extra()
    print(f"{len(index) + len(EXTRA)} configs, {total / 1e6:.2f} MB gzipped, in {DEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
