"""The real-model ONNX corpus, when it is there (issue 14; ``slow``).

``$CNNKIT_CORPUS_DIR`` (default ``~/.cache/keras-cnnkit/corpus``) holds 40 torchvision and
timm CNNs exported to ONNX at 1×3×224×224 (``.static.onnx``) and with dynamic batch,
height and width (``.dynamic.onnx``), and ``manifest/onnx.json`` with, per file, fvcore's
conv + linear MACs of the torch model at 224² (``ref_macs``) and the file's initializer
elements counted per use (``onnx_initializer_elements_per_use``) — all measured by the
corpus generator (``tools/corpus/gen_onnx.py`` on the corpus branch), not by this
package.  Every file is linted as a user would, with no input shape.  Skipped without
the corpus.
"""
import functools
import json
import os
from pathlib import Path

import pytest

from keras_cnnkit.analysis.cost import node_cost
from keras_cnnkit.lint.api import lint

CORPUS = Path(os.environ.get("CNNKIT_CORPUS_DIR")
              or os.path.expanduser("~/.cache/keras-cnnkit/corpus"))
MANIFEST = CORPUS / "manifest" / "onnx.json"
ENTRIES = ([e for e in json.loads(MANIFEST.read_text()) if (CORPUS / e["file"]).exists()]
           if MANIFEST.is_file() else [])
WEIGHTED = ("conv", "depthwise_conv", "dense")

pytestmark = [pytest.mark.slow, pytest.mark.onnx_corpus,
              pytest.mark.skipif(not ENTRIES, reason=f"no ONNX corpus in {CORPUS}")]


@functools.lru_cache(maxsize=2)
def linted(path: str):
    return lint(path, select=["ALL"])


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
def test_corpus_file_reads_completely(entry):
    """No opaque node, every cost known, conv + linear MACs equal fvcore's, parameters
    equal the file's initializers per use; a dynamic file gives the static twin's MACs
    and findings."""
    report = linted(str(CORPUS / entry["file"]))
    assert [n.name for n in report.graph if n.op == "opaque"] == []
    assert report.summary.complete, report.summary.unknown[:5]
    assert sum(node_cost(n).macs or 0 for n in report.graph
               if n.op in WEIGHTED) == entry["ref_macs"]
    assert report.summary.params == entry["onnx_initializer_elements_per_use"]
    if entry["variant"] == "dynamic":
        # dynamic_axes: true (batch, height, width) or "batch only" (VGG, AlexNet: their
        # adaptive pooling to a fixed size does not export with dynamic H/W)
        spatial = entry["dynamic_axes"] is True
        assert [("taken as 224" in note) for note in report.graph.notes] == (
            [True] if spatial else [])
        static = linted(str(CORPUS / entry["file"].replace(".dynamic.", ".static.")))
        assert report.summary.macs == static.summary.macs
        assert sorted((f.code, f.layer) for f in report.findings) == sorted(
            (f.code, f.layer) for f in static.findings)
