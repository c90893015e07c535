"""The real-model corpus (slow; skipped unless ``$CNNKIT_CORPUS_DIR`` or the default
``~/.cache/keras-cnnkit/corpus`` holds it; ``tools/corpus`` writes it).

Every reference figure comes from the corpus manifests, measured when the files were
written, independently of keras_cnnkit: the library's ``count_params()`` and the conv +
dense MACs counted during a forward pass.

* Every keras.applications file (Keras 3 ``.keras``/``.h5``/``.json``) and every tf_keras
  one (``.h5``/``.json``) lints with no opaque node, params exact, MACs within 0.5%.
* Each tf_keras ``.h5`` gives the MACs and findings of the Keras 3 ``.keras`` of the same
  architecture (layers mapped by the order of their weighted nodes).
* Every keras-hub and kimm file (native and Functional) lints, params = count_params()
  (the Functional twins of kimm ViT store two non-parameter position sizes: +2).
"""
import collections
import json
import os
from pathlib import Path

import pytest

from keras_cnnkit.analysis.ops import Trait, op_def
from keras_cnnkit.lint.api import lint

pytestmark = pytest.mark.slow

CORPUS = Path(os.environ.get("CNNKIT_CORPUS_DIR")
              or os.path.expanduser("~/.cache/keras-cnnkit/corpus"))


def _manifest(source: str) -> list:
    path = CORPUS / "manifest" / f"{source}.json"
    if not path.exists():
        pytest.skip(f"no corpus manifest {path}")
    return [e for e in json.loads(path.read_text()) if (CORPUS / e["file"]).exists()]


@pytest.mark.parametrize("source", ["keras_apps", "tf_keras_apps"])
def test_keras_applications_files(source):
    """No opaque node; params exact; MACs within 0.5% of the independent count."""
    problems = []
    for entry in _manifest(source):
        summary = lint(str(CORPUS / entry["file"])).summary
        opaque = [r.name for r in summary.nodes if r.op == "opaque"]
        if opaque or summary.unknown or summary.params != entry["count_params"] or abs(
                summary.macs - entry["ref_macs"]) > 0.005 * entry["ref_macs"]:
            problems.append((entry["file"], summary.params, entry["count_params"],
                             summary.macs, entry["ref_macs"], opaque[:3]))
    assert problems == []


def _weighted(report) -> list:
    return [n for n in report.graph if op_def(n.op).has(Trait.WEIGHTED)]


def test_tf_keras_h5_equals_keras3():
    """tf_keras .h5 ≡ Keras 3 .keras: MACs and findings (names mapped)."""
    keras3 = {e["architecture"]: e for e in _manifest("keras_apps") if e["format"] == "keras"}
    differ = []
    for entry in _manifest("tf_keras_apps"):
        if entry["format"] != "h5" or entry["architecture"] not in keras3:
            continue
        mine = lint(str(CORPUS / entry["file"]), select=["ALL"])
        theirs = lint(str(CORPUS / keras3[entry["architecture"]]["file"]), select=["ALL"])
        names = {a.layer: b.layer for a, b in zip(_weighted(mine), _weighted(theirs))}
        found = collections.Counter((f.code, names.get(f.layer, f.layer))
                                    for f in mine.findings)
        expected = collections.Counter((f.code, f.layer) for f in theirs.findings)
        if mine.summary.macs != theirs.summary.macs or found != expected:
            differ.append(entry["architecture"])
    assert differ == []


@pytest.mark.parametrize("source", ["keras_hub", "kimm"])
def test_library_files(source):
    """Every keras-hub / kimm file lints; params = count_params() (native files: exactly)."""
    problems = []
    for entry in _manifest(source):
        summary = lint(str(CORPUS / entry["file"])).summary
        extra = summary.params - entry["count_params"]
        tolerated = 2 if "VisionTransformer" in entry["file"] and ".functional." in \
            entry["file"] else 0
        if not 0 <= extra <= tolerated:
            problems.append((entry["file"], summary.params, entry["count_params"]))
    assert problems == []
