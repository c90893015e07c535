"""The static linter on the committed real-model configs (``tests/data/corpus/``).

Every keras.applications architecture, as Keras 3.15 and tf_keras 2.21 saved its bare
config (``model.to_json()``, gzipped; written by ``tools/corpus/export_test_data.py`` from
the corpus that ``tools/corpus/`` generates).  No model is built: each config is linted
from a file, as ``cnnkit-lint model.json`` would.  The expected figures in ``index.json``
were measured when the model was built, independently of keras_cnnkit: Keras'
``count_params()`` and a conv/dense MAC count taken from each layer's kernel shape and
its real output shape during one forward pass.

Every config is read, tf_keras' TF-op layers and InceptionResNetV2's ``CustomScaleLayer``
included: a config that stops reading fails.
"""
import gzip
import json
from pathlib import Path

import pytest

from keras_cnnkit.lint.api import lint

DATA = Path(__file__).parent / "data" / "corpus"
INDEX = json.loads((DATA / "index.json").read_text()) if (DATA / "index.json").exists() else []

def _cases():
    for entry in INDEX:
        yield pytest.param(entry, id=entry["file"].replace(".json.gz", ""))


def test_index_covers_both_libraries():
    """The committed data holds every Keras 3 and tf_keras keras.applications model."""
    libraries = {e["library"] for e in INDEX}
    assert libraries == {"keras", "tf_keras"}, libraries
    assert sum(e["library"] == "keras" for e in INDEX) == 40
    assert sum(e["library"] == "tf_keras" for e in INDEX) == 71


@pytest.mark.parametrize("entry", list(_cases()))
def test_corpus_config_lints_with_reference_counts(entry, tmp_path):
    """A committed config lints from a file with the reference params and MACs."""
    path = tmp_path / Path(entry["file"]).name.replace(".gz", "")
    path.write_bytes(gzip.decompress((DATA / entry["file"]).read_bytes()))
    report = lint(str(path), select=["ALL"])
    summary = report.summary.to_dict()
    if any(f.code == "CNK001" for f in report.rule_findings):   # opaque layers
        # A bare config has no weights: an opaque layer's own weights (ConvNeXt's
        # LayerScale gammas, 0.02%) are not counted; the rest must still add up.
        assert summary["params"] <= entry["count_params"]
        assert summary["params"] == pytest.approx(entry["count_params"], rel=0.005)
    else:
        assert summary["params"] == entry["count_params"]
    assert summary["macs"] == pytest.approx(entry["ref_macs"], rel=0.005)
