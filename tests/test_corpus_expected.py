"""The corpus test: every rule's findings on real architectures against reviewed tables.

``tests/data/corpus/expected/SOURCE.tsv`` lists, per model, every finding the rules yield
(as each rule yields it: no grouping, no impact threshold, ``--select ALL``) with a
verdict a person gave it, ``keep`` or ``reject``, and a one-line reason
(``tools/corpus/expected.py`` writes new lines for review).  Here each model is linted
again and must give exactly the table's findings: a new finding, or one that went away,
fails until the table is reviewed.  The README's precision table (kept / reported per
rule) is generated from the same tables (``tools/gen_readme.py``).

Sources: the keras.applications configs as Keras 3 and tf_keras saved them and a few
keras-hub / kimm configs (all committed, fast); the torchvision / timm ONNX exports of
the corpus (``tox -e corpus-onnx`` makes them; ``slow``, skipped where they are absent).
Models tf_keras wrote with flat ``TFOpLambda`` references cannot be read yet; their line
says so and they are expected failures until a reader fix makes them readable (then
their findings need a reviewed table).
"""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "corpus"))
import expected as corpus  # noqa: E402  pylint: disable=wrong-import-position

from keras_cnnkit.errors import CnnkitError  # noqa: E402  pylint: disable=wrong-import-position


def _cases():
    for source in corpus.SOURCES:
        table = corpus.read_table(source)
        marks = [pytest.mark.slow] if source == "onnx" else []
        for model in sorted({key[0] for key in table}):
            unreadable = table.get((model, "-", "-"), ("",))[0] == "unreadable"
            model_marks = marks + ([pytest.mark.xfail(reason=table[(model, "-", "-")][1],
                                                      strict=False)] if unreadable else [])
            yield pytest.param(source, model, id=model, marks=model_marks)


def test_tables_are_reviewed():
    """Every line has a verdict and a reason a person wrote (no ``?`` proposal left)."""
    for source in corpus.SOURCES:
        table = corpus.read_table(source)
        assert table or source == "onnx", source
        for key, (verdict, reason) in table.items():
            assert verdict in ("keep", "reject", "unreadable", "clean"), key
            assert reason and not reason.endswith("?"), key


def test_tables_cover_every_model():
    """Every keras.applications model (40 Keras 3, 71 tf_keras) and every extra config
    is in its table: its findings, or one ``clean`` or ``unreadable`` line."""
    for source in ("keras3", "tf_keras", "extra"):
        listed = {key[0] for key in corpus.read_table(source)}
        assert listed == set(corpus.models(source)), source
    assert len(corpus.models("keras3")) == 40 and len(corpus.models("tf_keras")) == 71


@pytest.mark.parametrize("source, model", list(_cases()))
def test_findings_match_the_reviewed_table(source, model):
    """The rules' findings on the model are exactly the table's."""
    path = corpus.models(source).get(model)
    if path is None or not Path(path).exists():
        pytest.skip(f"{model}: not in this corpus (run tox -e corpus-onnx)")
    table = {key: value for key, value in corpus.read_table(source).items()
             if key[0] == model}
    try:
        graph = corpus.graph_for(Path(path))
    except CnnkitError as exc:
        assert (model, "-", "-") in table, f"{model} cannot be read: {exc}"
        pytest.xfail(f"{model} cannot be read yet: {exc}")
    got = {(model, f.layer, f.symbol) for f in corpus.raw_findings(graph)}
    expected = {key for key in table if key[1:] != ("-", "-")}
    new, gone = sorted(got - expected), sorted(expected - got)
    assert not new and not gone, (
        f"{model}: {len(new)} finding(s) not in the table, {len(gone)} gone "
        f"(review with python tools/corpus/expected.py --source {source} --update): "
        f"new {new[:5]}, gone {gone[:5]}")


def test_precision_table_adds_up():
    """The README's precision figures are the tables' kept / reported counts."""
    rows = corpus.precision_counts()
    for source in ("keras3", "tf_keras"):
        table = corpus.read_table(source)
        for symbol in {key[2] for key in table if key[2] != "-"}:
            kept = sum(1 for key, (v, _) in table.items() if key[2] == symbol and v == "keep")
            reported = sum(1 for key in table if key[2] == symbol)
            assert rows[symbol][source] == (kept, reported)


@pytest.mark.skipif(not os.environ.get("CNKIT_CORPUS_DIR")
                    and not corpus.corpus_onnx_dir().exists(),
                    reason="no ONNX corpus here")
@pytest.mark.slow
def test_onnx_table_covers_twenty_models():
    """The ONNX table reviews at least 20 torchvision / timm architectures."""
    assert len({key[0] for key in corpus.read_table("onnx")}) >= 20
