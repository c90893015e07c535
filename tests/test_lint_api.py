"""The Python API (``keras_cnnkit.lint``), the report, and the rule registry."""
import json
from importlib import metadata

import keras
import pytest
from keras import layers as L

import keras_cnnkit
from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
from keras_cnnkit.errors import CnnkitError, ConfigError
from keras_cnnkit.lint import registry
from keras_cnnkit.lint.api import RuleError, lint, lint_graph
from keras_cnnkit.lint.findings import Rule, Severity
from keras_cnnkit.lint.report import Report
from keras_cnnkit.lint.sites import impact, rule_findings

#: The fields the issue lists for every finding.
FINDING_FIELDS = {"code", "symbol", "severity", "layer", "message", "suggestion",
                  "params_before", "params_after", "macs_before", "macs_after",
                  "flops_before", "flops_after"}


def vgg_like():
    """A small model with several kinds of findings."""
    x = keras.Input((32, 32, 3), name="x")
    y = L.Conv2D(64, 3, padding="same", name="c1")(x)
    y = L.BatchNormalization(name="bn1")(y)
    y = L.Conv2D(64, 5, padding="same", name="c2")(y)
    y = L.MaxPooling2D(4, name="pool")(y)
    y = L.Flatten(name="flat")(y)
    y = L.Dense(30, name="fc")(y)
    return keras.Model(x, L.Dense(10, name="out")(y), name="vgg_like")


class ThirdPartyRule(Rule):
    """Reports every dense layer (a plugin rule used by the registry tests).

    ## What it does
    Reports dense layers.

    ## Why is this bad?
    It is not; this rule exists for the tests.

    ## Example
    ```python
    keras.layers.Dense(3)
    ```

    ## Use instead
    Nothing.

    ## References
    - This test module.
    """

    code = "XYZ900"
    symbol = "every-dense"
    severity = Severity.INFO

    def check(self, graph):
        return [self.finding(n, "a dense layer") for n in graph if n.op == "dense"]


class Undocumented(Rule):  # pylint: disable=abstract-method
    """No sections."""

    code = "XYZ901"
    symbol = "undocumented"


def test_keras_cnnkit_lint_is_callable_three_ways():
    """``keras_cnnkit.lint(m)``, ``from keras_cnnkit import lint`` and the api function."""
    model = vgg_like()
    from keras_cnnkit import lint as top_level  # pylint: disable=import-outside-toplevel
    reports = [keras_cnnkit.lint(model),  # pylint: disable=not-callable
               top_level(model), lint(model)]  # pylint: disable=not-callable
    assert all(isinstance(r, Report) for r in reports)
    assert len({tuple((f.code, f.layer) for f in r.findings) for r in reports}) == 1
    assert keras_cnnkit.Report is Report


def test_report_fields_sorting_and_json():
    """Findings carry the issue's fields, one per site, sort by impact, and serialise to
    JSON."""
    report = lint(vgg_like(), min_impact=0)
    assert report.model == "vgg_like" and report.source == "<keras model>"
    assert report.summary.params == vgg_like().count_params()
    symbols = {f.symbol for f in rule_findings(report.findings)}
    assert {"bias-before-batchnorm", "large-kernel", "flatten-dense-head"} <= symbols
    # fc's 30 units are not a multiple of 8, but fc does 0.1% of the MACs: under the
    # tensor-core-alignment rule's min_share (0.5%), so not reported
    assert "tensor-core-alignment" not in symbols
    impacts = [impact(f) for f in report.findings]
    known = [s for s in impacts if s is not None]
    assert known == sorted(known, reverse=True)
    assert impacts[len(known):] == [None] * (len(impacts) - len(known))
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data) == {"model", "source", "rules", "summary", "findings", "min_impact",
                         "below_min_impact", "savings", "device_profile"}
    for finding in data["findings"]:
        assert FINDING_FIELDS <= set(finding)
    head = next(f for f in data["findings"] if f["symbol"] == "flatten-dense-head")
    assert head["params_before"] == 8 * 8 * 64 * 30 + 30
    assert [n["op"] for n in head["replacement"]["nodes"]] == ["global_pool", "dense"]
    assert data["summary"]["params"] == report.summary.params


def test_select_and_ignore_by_code_symbol_prefix():
    """Selectors are codes, code prefixes, symbols or ALL; unknown ones are errors."""
    model = vgg_like()
    assert {f.code for f in lint(model, select=["CNK101"]).findings} == {"CNK101"}
    assert {f.code for f in lint(model, select="large-kernel").findings} == {"CNK101"}
    by_prefix = {f.code for f in lint(model, select=["CNK10"]).findings}
    assert by_prefix and all(c.startswith("CNK10") for c in by_prefix)
    everything = lint(model, select=["ALL"])
    ignored = lint(model, ignore=["bias-before-batchnorm", "CNK105"])
    assert {f.code for f in ignored.rule_findings} == (
        {f.code for f in everything.rule_findings} - {"CNK108", "CNK105"})
    # an ignored rule's alternative is in no site
    assert {"CNK108", "CNK105"} <= {f.code for f in rule_findings(everything.findings
                                                                   + everything.below_impact)}
    assert not {"CNK108", "CNK105"} & {f.code for f in rule_findings(ignored.findings
                                                                      + ignored.below_impact)}
    assert "CNK108" not in ignored.rules
    with pytest.raises(ConfigError, match="no-such-rule"):
        lint(model, select=["no-such-rule"])
    with pytest.raises(ConfigError):
        lint(model, ignore=["CNK999"])


def test_rule_options_and_graph_input():
    """Per-rule options; a Graph is linted as is."""
    graph = graph_from_keras(vgg_like())
    assert not lint(graph, select=["plain-deep-stack"]).findings
    report = lint(graph, select=["plain-deep-stack"],
                  options={"plain-deep-stack": {"min_depth": 3}})
    assert [f.layer for f in report.findings] == ["out"]
    with pytest.raises(ConfigError, match="plain-deep-stack"):
        lint(graph, options={"plain-deep-stack": {"no_such_option": 1}})


def test_lint_graph_with_rule_instances_and_failing_rules():
    """``lint_graph(rules=...)`` runs given instances; a crashing rule is a RuleError."""
    graph = graph_from_keras(vgg_like())
    report = lint_graph(graph, rules=[ThirdPartyRule()], min_impact=0)
    assert sorted(f.layer for f in report.findings) == ["fc", "out"]

    class Crashing(ThirdPartyRule):
        """Raises (documented like its parent)."""

        def check(self, graph):
            raise ZeroDivisionError("boom")

    with pytest.raises(RuleError, match="XYZ900 every-dense failed.*boom"):
        lint_graph(graph, rules=[Crashing()])


def test_lint_a_file_path(tmp_path):
    """A path goes to the static file frontend (never executing the file)."""
    model = vgg_like()
    path = tmp_path / "model.keras"
    model.save(path)
    from_file = lint(str(path))
    assert from_file.summary.params == model.count_params()
    assert ({(f.code, f.layer) for f in from_file.findings}
            == {(f.code, f.layer) for f in lint(model).findings})
    with pytest.raises(CnnkitError):
        lint(str(tmp_path / "missing.keras"))
    with pytest.raises(TypeError):
        lint(42)


# --- the registry --------------------------------------------------------------------------

@pytest.fixture(name="fresh_registry")
def fixture_fresh_registry(monkeypatch):
    """Clear the registry's cache before and after (entry points are monkeypatched)."""
    registry.all_rules.cache_clear()
    yield monkeypatch
    registry.all_rules.cache_clear()


def entry_point(name, value):
    """An entry point of the rule group."""
    return metadata.EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)


def test_builtin_rules_come_from_entry_points():
    """setup.cfg declares every built-in rule in the entry-point group (its lines are
    generated from the rule modules: tests/test_readme.py checks they are current)."""
    from lint_rules import builtin_rules
    declared = {ep.name: ep.value for ep in metadata.entry_points(
        group=registry.ENTRY_POINT_GROUP)}
    assert declared == builtin_rules()
    assert [r.symbol for r in registry.all_rules()] == list(builtin_rules())


def test_fallback_when_metadata_is_missing(fresh_registry):
    """No distribution metadata: the built-in list is loaded."""
    fresh_registry.setattr(registry, "_entry_points", lambda: [])
    assert len(registry.all_rules()) == 13


class CodeClash(ThirdPartyRule):  # pylint: disable=missing-class-docstring
    __doc__ = ThirdPartyRule.__doc__   # reuses the plugin's code
    symbol = "code-clash"


class SymbolClash(ThirdPartyRule):  # pylint: disable=missing-class-docstring
    __doc__ = ThirdPartyRule.__doc__   # reuses a built-in symbol
    code = "XYZ902"
    symbol = "large-kernel"


def test_third_party_rule_is_added(fresh_registry):
    """A plugin rule joins the built-ins and can be selected."""
    good = entry_point("every-dense", f"{__name__}:ThirdPartyRule")
    fresh_registry.setattr(registry, "_entry_points", lambda: [good, good])
    assert registry.get_rule("XYZ900") is ThirdPartyRule
    assert len(registry.all_rules()) == 14
    assert sorted(f.layer for f in lint(vgg_like(), select=["every-dense"],
                                        min_impact=0).findings) == ["fc", "out"]


@pytest.mark.parametrize("value, message", [
    ("no_such_module_xyz:Rule", "'bad'.*failed to load.*ModuleNotFoundError"),
    ("json:dumps", "'bad'.*not a subclass"),
    (f"{__name__}:Undocumented", "'bad'.*lacks the section"),
    (f"{__name__}:SymbolClash", "'bad'.*'large-kernel' is taken"),
    (f"{__name__}:CodeClash", "share the code XYZ900"),
])
def test_broken_third_party_rules_are_errors(fresh_registry, value, message):
    """A plugin that fails to import, is not a Rule, lacks doc sections or reuses a
    symbol or code is an error naming it, not skipped."""
    eps = [entry_point("every-dense", f"{__name__}:ThirdPartyRule"), entry_point("bad", value)]
    fresh_registry.setattr(registry, "_entry_points", lambda: eps)
    with pytest.raises(registry.RuleLoadError, match=message):
        registry.all_rules()
