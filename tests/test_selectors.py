"""One rule-selector matcher for ``--select``, ``--ignore``, per-layer ignores and
``--fix-select``: codes in any case, code prefixes, symbols and ``ALL``.

``--fix-select ALL`` and ``--fix-select cnk108`` used to pass validation (the registry
accepted them) and then skip every fix as "not selected" (the fix planner did not).
"""
import pytest

from keras_cnnkit.analysis.ir import Node, OpKind
from keras_cnnkit.lint.findings import Finding, Replacement, Severity
from keras_cnnkit.lint.registry import select_rules
from keras_cnnkit.lint.selectors import selector_matches
from keras_cnnkit.rewrite.plan import select_findings


@pytest.mark.parametrize("selector, expected", [
    ("ALL", True), ("all", True), (" All ", True), ("CNK105", True), ("cnk105", True),
    ("CNK1", True), ("cnk", True), ("flatten-dense-head", True), ("CNK10", True),
    ("CNK106", False), ("CNK2", False), ("large-kernel", False), ("", False),
    ("flatten", False), ("CNK105x", False),
])
def test_selector_matches(selector, expected):
    assert selector_matches(selector, "CNK105", "flatten-dense-head") is expected


def _finding(code: str, symbol: str, layer: str) -> Finding:
    node = Node(f"{layer}_fix", OpKind.IDENTITY, ["x"], [(4,)], (4,))
    return Finding(code, symbol, Severity.WARNING, layer, "m", flops_before=10, flops_after=5,
                   replacement=Replacement([layer], [node], node.name))


@pytest.mark.parametrize("select, chosen", [
    (["ALL"], {"CNK105", "CNK108"}), (["all"], {"CNK105", "CNK108"}),
    (["cnk105"], {"CNK105"}), (["Cnk1"], {"CNK105", "CNK108"}),
    (["bias-before-batchnorm"], {"CNK108"}), (["CNK108", "cnk105"], {"CNK105", "CNK108"}),
    (None, {"CNK105", "CNK108"}), (["CNK2"], set()),
])
def test_the_fix_planner_selects_as_the_registry_does(select, chosen):
    findings = [_finding("CNK105", "flatten-dense-head", "fc"),
                _finding("CNK108", "bias-before-batchnorm", "conv")]
    got, skipped = select_findings(findings, select)
    assert {f.code for f in got} == chosen
    assert {s.finding.code for s in skipped if s.reason == "not selected"} == \
        {"CNK105", "CNK108"} - chosen
    if select is not None and chosen:
        assert {r.code for r in select_rules(select)} >= chosen


@pytest.mark.parametrize("fix_select, every_rule", [
    ("ALL", True), ("all", True), ("cnk1", True), ("cnk108", False),
    ("bias-before-batchnorm", False)])
def test_cli_fix_select_all_and_lowercase_codes_fix(tmp_path, capsys, fix_select, every_rule):
    """A conv with a bias feeding batch norm: CNK108 (drop the bias) and CNK104 (depthwise
    separable, which the bias drop then joins)."""
    keras = pytest.importorskip("keras")
    from keras_cnnkit.lint.cli import main
    x = keras.Input((8, 8, 32))
    y = keras.layers.Conv2D(4, 3, name="conv")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    keras.Model(x, y).save(tmp_path / "m.keras")
    out = tmp_path / "fixed.keras"
    # --min-impact 0: the 4 biases are below the default 1% reporting threshold.
    status = main(["--fix", str(tmp_path / "m.keras"), "-o", str(out), "--no-config",
                   "--min-impact", "0", "--fix-select", fix_select])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "fixed CNK108 bias-before-batchnorm at conv" in printed
    if every_rule:
        assert "fixed CNK104 depthwise-separable-candidate at conv" in printed
        assert "not selected" not in printed
    else:
        assert "not fixed CNK104 depthwise-separable-candidate at conv: not selected" \
            in printed
        # conv 3·3·32·4 + 4 bias, BN 4·4: the 4 bias weights are gone
        assert keras.models.load_model(out, compile=False).count_params() == 1152 + 16
