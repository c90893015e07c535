"""Copy the corpus's bare Keras configs into ``tests/data/corpus/`` for the fast test suite.

    python tools/corpus/export_test_data.py

Writes ``tests/data/corpus/keras3/NAME.json.gz`` (Keras 3.15 keras.applications) and
``tests/data/corpus/tf_keras/NAME.json.gz`` (tf_keras 2.21 keras.applications), each the
model's ``to_json()`` re-serialised compactly and gzipped deterministically (mtime 0), and
``tests/data/corpus/index.json``: per file its source library and version, architecture,
input shape, ``count_params`` and the reference conv+dense MACs measured when the model
was built (see tools/corpus/common.py).  A config has no weights: what only a weights file
shows (the ``.h5``/``.keras`` readers' weight-shape checks) is not covered by this data.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
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


def main() -> int:
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
    print(f"{len(index)} configs, {total / 1e6:.2f} MB gzipped, in {DEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
