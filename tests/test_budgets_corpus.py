"""The budgets' defaults are generous enough for every real model we know (issue 17).

Reads every model file of the corpus (``CNNKIT_CORPUS_DIR``, default
``~/.cache/keras-cnnkit/corpus``: keras.applications and tf_keras applications as
``.keras``, ``.h5`` and ``.json`` — NASNetLarge, EfficientNetB7, ConvNeXtXLarge (1.4 GB),
VGG19, ResNetRS420 among them — kimm and keras_hub functional models, ONNX exports)
with the default budgets: none may be refused for a budget.  While reading, every check
records the value it saw; the test prints each budget's largest value and asserts the
default is at least :data:`MARGIN` times it (``max-inflated-bytes``, bounded by real
weights files, at least twice).  Files the static reader refuses for other reasons
(subclassed keras_hub backbones, empty placeholders) are listed, not failed.
"""
import glob
import os

import pytest

from keras_cnnkit import budgets
from keras_cnnkit.analysis.frontends import budget_checks, h5_reader, onnx_budget
from keras_cnnkit.budgets import BudgetError
from keras_cnnkit.errors import ModelFileError

CORPUS = os.environ.get("CNNKIT_CORPUS_DIR",
                        os.path.expanduser("~/.cache/keras-cnnkit/corpus"))
FOLDERS = ("keras_apps", "tf_keras_apps", "kimm", "keras_hub", "onnx")
MARGIN = 10
#: Budgets whose real maximum is a file's own size: a smaller margin.
SMALL_MARGIN = {"max-inflated-bytes": 2}

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not os.path.isdir(os.path.join(CORPUS, "keras_apps")),
    reason="no model corpus (set CNNKIT_CORPUS_DIR)")]


def _files() -> list:
    found = []
    for folder in FOLDERS:
        for pattern in ("*.keras", "*.h5", "*.json", "*.onnx"):
            found += sorted(glob.glob(os.path.join(CORPUS, folder, pattern)))
    return found


def test_defaults_refuse_no_real_model(monkeypatch, capsys):
    from keras_cnnkit.analysis.frontends.static_file import load_graph

    seen: dict = {}

    def record(path, budget, value, what):
        if value > seen.get(budget, (0, ""))[0]:
            seen[budget] = (value, os.path.relpath(os.fspath(path), CORPUS))
        return real_check(path, budget, value, what)

    real_check = budgets.check
    for module in (budget_checks, h5_reader, onnx_budget):
        monkeypatch.setattr(module, "check", record)
    walks = []
    real_init = h5_reader.Walk.__init__

    def keep(self, path=""):
        real_init(self, path)
        walks.append(self)

    monkeypatch.setattr(h5_reader.Walk, "__init__", keep)
    passes = []
    real_pass = onnx_budget._ShapePass.__init__  # pylint: disable=protected-access

    def keep_pass(self, source, model):
        real_pass(self, source, model)
        passes.append(self)

    monkeypatch.setattr(onnx_budget._ShapePass, "__init__", keep_pass)  # pylint: disable=protected-access
    refused, other = [], []
    for path in _files():
        walks.clear()
        passes.clear()
        try:
            graph = load_graph(path)
        except BudgetError as exc:
            refused.append(str(exc))
            continue
        except ModelFileError as exc:
            other.append(str(exc)[-160:])
            continue
        name = os.path.relpath(path, CORPUS)
        for key, value in (("max-nodes", len(graph.nodes)),
                           ("max-h5-links", max((w.links for w in walks), default=0)),
                           ("max-shape-dims", max((p.dims for p in passes), default=0))):
            if value > seen.get(key, (0, ""))[0]:
                seen[key] = (value, name)
    with capsys.disabled():
        print(f"\nlargest values in {len(_files())} corpus files:")
        for key in budgets.names():
            value, where = seen.get(key, (0, "-"))
            print(f"  {key:20} {value:>15,}  ({where})  default "
                  f"{getattr(budgets.DEFAULT, key.replace('-', '_')):,}")
        print(f"not read for other reasons: {len(other)}")
    assert not refused, refused
    for key, (value, where) in seen.items():
        default = getattr(budgets.DEFAULT, key.replace("-", "_"))
        assert default >= SMALL_MARGIN.get(key, MARGIN) * value, (key, value, where)
