"""The machine-readable outputs as contracts: JSON against its shipped schema, SARIF against
the SARIF 2.1.0 schema and GitHub's ingestion rules.

Everything here runs the static linter path (no TensorFlow), on the bundled example model
and on hand-written configs.
"""
import copy
import hashlib
import json
import os
import shutil
import sys

import jsonschema
import pytest
import static_model_files as smf

from keras_cnnkit.lint.cli import main
from keras_cnnkit.lint.formatters import json_schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import sarif_github_rules  # noqa: E402  pylint: disable=wrong-import-position,import-error

pytestmark = pytest.mark.notf

EXAMPLE = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")
SCHEMA_FILE = os.path.join(ROOT, "keras_cnnkit", "schemas", "lint-report.schema.json")
SARIF_SCHEMA = os.path.join(ROOT, "tests", "data", "sarif-schema-2.1.0.json")
#: The shape of each schema_version, as a hash of the schema without its prose (see
#: :func:`_shape_hash`).  A change of shape must come with a new schema_version and a
#: new entry here; a description can change freely.
SHAPES = {2: "e10caf0e5babf678bce4510177d1b6160a07946d827246277b72d76fe5da8bfc",
          3: "7007e74b0addceaa54b7cd7328aac5b6a5cf83f5f6b8487f4186c350536004d7"}

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name


@pytest.fixture(autouse=True)
def cwd(tmp_path, monkeypatch):
    """Every test runs in an empty directory with the example copied in."""
    shutil.copy(EXAMPLE, tmp_path / "model.h5")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *args):
    """``(status, stdout)`` of ``cnnkit-lint --no-config args``."""
    status = main(["--no-config", *map(str, args)])
    return status, capsys.readouterr().out


def _validate(data: dict) -> None:
    jsonschema.validate(data, json_schema(), cls=jsonschema.Draft202012Validator)


# --- JSON ------------------------------------------------------------------------------

def test_shipped_schema_is_the_file_and_a_valid_schema():
    """The package reads its schema from keras_cnnkit/schemas (shipped as package data)."""
    with open(SCHEMA_FILE, encoding="utf-8") as handle:
        assert json_schema() == json.load(handle)
    jsonschema.Draft202012Validator.check_schema(json_schema())
    with open(os.path.join(ROOT, "setup.cfg"), encoding="utf-8") as handle:
        assert "schemas/*.json" in handle.read()


def _shape_hash(schema) -> str:
    """The schema without descriptions and titles: what a consumer's parser depends on."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("description", "title")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    text = json.dumps(strip(schema), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_schema_version_changes_with_the_shape():
    """Editing the schema's keys or types without a new schema_version fails here."""
    version = json_schema()["properties"]["schema_version"]["const"]
    assert version in SHAPES, f"record schema_version {version}'s shape in SHAPES"
    assert _shape_hash(json_schema()) == SHAPES[version], (
        "the JSON report's shape changed: bump schema_version in the schema and record "
        f"the new shape ({_shape_hash(json_schema())}) in SHAPES")


def test_example_json_validates_and_is_small(capsys):
    """The bundled example's report validates, carries no replacement graph (neither in
    a finding nor in its alternatives) and stays under 16 KB: 4 sites listed (2 below
    1%), the first with its 3 alternatives."""
    status, out = run(capsys, "model.h5", "--format", "json")
    assert status == 1
    data = json.loads(out)
    _validate(data)
    assert data["schema_version"] == json_schema()["properties"]["schema_version"]["const"]
    assert len(out.encode("utf-8")) < 16_000
    findings = data["models"][0]["findings"]
    assert len(findings) == 4 and data["models"][0]["below_min_impact"] == 2
    assert len(findings[0]["alternatives"]) == 3
    assert all("replacement" not in f for f in findings)
    assert all("replacement" not in a for f in findings for a in f["alternatives"])
    assert data["rules"] == sorted(data["rules"]) and "CNK103" in data["rules"]


def test_verbose_json_adds_the_replacement_graphs(capsys):
    """--verbose-json adds each finding's replacement (still valid), --select narrows
    the rules listed; --verbose-json without the json format is a usage error."""
    status, out = run(capsys, "model.h5", "--format", "json", "--verbose-json",
                      "--select", "CNK103")
    assert status == 1
    data = json.loads(out)
    _validate(data)
    assert data["rules"] == ["CNK103"]
    finding = next(f for f in data["models"][0]["findings"] if f["layer"] == "wide_conv")
    assert finding["replacement"]["removed"] == ["wide_conv"]
    # 1×1 256→64, 3×3 64→64, 1×1 64→256: the bottleneck's three convs.
    assert [n["op"] for n in finding["replacement"]["nodes"]] == ["conv", "conv", "conv"]
    assert main(["--no-config", "model.h5", "--verbose-json"]) == 2


def test_schema_rejects_undocumented_keys(capsys):
    """The schema is closed: a key it does not describe fails validation (so a new key
    cannot ship undocumented)."""
    _, out = run(capsys, "model.h5", "--format", "json")
    data = json.loads(out)
    data["models"][0]["findings"][0]["internal"] = {"nodes": []}
    with pytest.raises(jsonschema.ValidationError):
        _validate(data)
    broken = copy.deepcopy(json.loads(out))
    broken["models"][0]["summary"]["layers"] = 12
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


def test_json_errors_validate(capsys):
    """A run with an unreadable file still writes a valid report."""
    status, out = run(capsys, "model.h5", "missing.h5", "--format", "json")
    assert status == 2
    data = json.loads(out)
    _validate(data)
    assert data["errors"] == [{"file": "missing.h5", "problem": "no such file"}]


# --- SARIF -----------------------------------------------------------------------------

def _sarif(capsys, *paths) -> dict:
    status, out = run(capsys, *paths, "--format", "sarif")
    assert status in (0, 1)
    data = json.loads(out)
    with open(SARIF_SCHEMA, encoding="utf-8") as handle:
        jsonschema.validate(data, json.load(handle))
    return data


def test_example_sarif_passes_the_github_rules(capsys):
    """The bundled example's SARIF validates against SARIF 2.1.0 and breaks none of
    GitHub's ingestion rules; every result has a region and names its layer."""
    data = _sarif(capsys, "model.h5")
    assert sarif_github_rules.check(data) == []
    results = data["runs"][0]["results"]
    assert len(results) == 4      # one per site at or above --min-impact (default 1%)
    for result in results:
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "model.h5"
        assert physical["region"]["startLine"] == 1          # .h5 is binary
        (logical,) = location["logicalLocations"]
        assert result["message"]["text"].startswith(logical["name"] + ": ")


def test_sarif_rules_carry_help_from_explain(capsys):
    """help.markdown is the --explain page; helpUri is the rule's paper."""
    data = _sarif(capsys, "model.h5")
    rules = {r["id"]: r for r in data["runs"][0]["tool"]["driver"]["rules"]}
    assert main(["--no-config", "--explain", "CNK103"]) == 0
    page = capsys.readouterr().out
    assert rules["CNK103"]["help"]["markdown"] == page
    assert rules["CNK103"]["helpUri"] == "https://arxiv.org/abs/1512.03385"   # ResNet
    assert all(r["helpUri"].startswith("https://") for r in rules.values())


def test_sarif_region_is_the_layer_line_of_a_json_config(capsys, tmp_path):
    """In a pretty-printed JSON config a result points at the line naming its layer."""
    config = smf.conv_chain_config(2, size=16, channels=16)
    # 5×5 16→16: two 3×3 are cheaper (a 16→64 one would not be: large-kernel is silent)
    config["config"]["layers"][1]["config"].update(kernel_size=[5, 5], filters=16)
    path = tmp_path / "pretty.json"
    text = json.dumps(config, indent=2)
    path.write_text(text, encoding="utf-8")
    expected = next(i for i, line in enumerate(text.splitlines(), 1)
                    if line.strip() == '"name": "c0",')
    data = _sarif(capsys, "pretty.json")
    results = [r for r in data["runs"][0]["results"] if r["message"]["text"].startswith("c0:")]
    assert results
    for result in results:
        assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == expected
    assert sarif_github_rules.check(data) == []
    status = main(["--no-config", "pretty.json", "--format", "github", "--exit-zero"])
    out = capsys.readouterr().out
    assert status == 0 and f"file=pretty.json,line={expected}," in out


@pytest.mark.parametrize("break_it, rule", [
    (lambda r: r["locations"][0]["physicalLocation"].pop("region"), "GH1003"),
    (lambda r: r["locations"][0]["physicalLocation"]["region"].update(startLine=0),
     "GH1003"),
    (lambda r: r["locations"][0]["physicalLocation"]["artifactLocation"].update(
        uri="https://example.com/model.h5"), "GH1005"),
    (lambda r: r["locations"][0]["physicalLocation"]["artifactLocation"].update(
        uri="file:///elsewhere/model.h5"), "GH1006"),
    (lambda r: r.update(message={"id": "default"}), "GH1007"),
    (lambda r: r.pop("partialFingerprints"), "GHAS1015"),
    (lambda r: r.update(locations=[]), "GH1001"),
    (lambda r: r.update(locations=[{"physicalLocation": {}}] * 11), "GH1004"),
    (lambda r: r.pop("ruleId"), "ruleId"),
])
def test_github_rules_catch_what_github_rejects(capsys, break_it, rule):
    """Each check has teeth: one broken result is reported under its rule."""
    data = _sarif(capsys, "model.h5")
    break_it(data["runs"][0]["results"][0])
    problems = sarif_github_rules.check(data)
    assert any(p.startswith(rule + ":") for p in problems), problems


def test_github_rules_catch_rule_metadata_gaps(capsys):
    """A rule without fullDescription or helpUri is reported (GHAS2012, SARIF2012)."""
    data = _sarif(capsys, "model.h5")
    rule = data["runs"][0]["tool"]["driver"]["rules"][0]
    rule.pop("fullDescription")
    rule.pop("helpUri")
    problems = sarif_github_rules.check(data)
    assert any(p.startswith("GHAS2012:") for p in problems)
    assert any(p.startswith("SARIF2012:") for p in problems)
