"""GitHub code scanning's SARIF ingestion rules, as the sarif-sdk validator states them.

Microsoft's SARIF multitool (``sarif validate --config policies/github.config.xml``) has
a GitHub rule set: ``GH1001``–``GH1007``, the GitHub Advanced Security required-property
rules (``GHAS1013``–``GHAS1018``, ``GHAS2012``), ``BASE1011`` (the final schema) and
``SARIF2012`` (help URIs, raised to a warning in GitHub's configuration).  This module
re-states each as a check on a SARIF log (a ``dict``), so the tests need no .NET tool:

    python tools/sarif_github_rules.py report.sarif     # prints problems, exit 1 if any

:data:`RULES` is the list the README shows (``tools/gen_readme.py``).  The array limits of
``GH1004`` are the validator's defaults (5 runs, 1,000 rules and results per run, 10
locations and 100 code flows per result, 100 steps per thread flow), stricter than the
limits GitHub documents for uploads (25,000 results per run).
"""
from __future__ import annotations

import json
import sys
from typing import Callable, Iterator
from urllib.parse import urlsplit

#: GH1004's default limits: JSON path (indices as 0) → largest length.
ARRAY_LIMITS = {"runs": 5, "runs/0/tool/driver/rules": 1000, "runs/0/results": 1000,
                "runs/0/results/0/locations": 10, "runs/0/results/0/codeFlows": 100,
                "runs/0/results/0/codeFlows/0/threadFlows/0/locations": 100}
#: ``$schema`` endings BASE1011 accepts (the final SARIF 2.1.0 schema).
FINAL_SCHEMAS = ("2.1.0", "2.1.0.json", "2.1.0-rtm.6", "2.1.0-rtm.6.json")


def _results(log: dict) -> Iterator[tuple]:
    for r, run in enumerate(log.get("runs") or []):
        for i, result in enumerate(run.get("results") or []):
            yield f"runs[{r}].results[{i}]", run, result


def _locations(result: dict) -> Iterator[tuple]:
    for key in ("locations", "relatedLocations"):
        for i, location in enumerate(result.get(key) or []):
            yield f"{key}[{i}]", location


def _text(obj) -> str:
    return (obj or {}).get("text") or "" if isinstance(obj, dict) else ""


def gh1001(log: dict) -> Iterator[str]:
    """Each result has a location with ``physicalLocation.artifactLocation.uri``."""
    for where, _, result in _results(log):
        if not result.get("locations"):
            yield f"{where}: no 'locations'"
        for at, location in _locations(result):
            if not ((location.get("physicalLocation") or {}).get("artifactLocation")
                    or {}).get("uri"):
                yield f"{where}.{at}: no physicalLocation.artifactLocation.uri"


def gh1002(log: dict) -> Iterator[str]:
    """Thread-flow locations are inline, never an ``index`` into ``run.threadFlowLocations``."""
    for where, _, result in _results(log):
        for flow in result.get("codeFlows") or []:
            for thread in flow.get("threadFlows") or []:
                for step in thread.get("locations") or []:
                    if step.get("index", -1) >= 0:
                        yield f"{where}: a threadFlowLocation uses 'index'"


def gh1003(log: dict) -> Iterator[str]:
    """Each result location has a ``region`` with a ``startLine`` (1 or more)."""
    for where, _, result in _results(log):
        for at, location in _locations(result):
            physical = location.get("physicalLocation")
            if physical is None:
                continue
            line = (physical.get("region") or {}).get("startLine")
            if not isinstance(line, int) or line < 1:
                yield f"{where}.{at}: no region.startLine"


def _limits(node, path: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _limits(value, f"{path}/{key}" if path else key)
    elif isinstance(node, list):
        key = "/".join("0" if part.isdigit() else part for part in path.split("/"))
        limit = ARRAY_LIMITS.get(key)
        if limit is not None and len(node) > limit:
            yield f"{path}: {len(node)} elements, over GitHub's default limit of {limit}"
        for i, value in enumerate(node):
            yield from _limits(value, f"{path}/{i}")


def gh1004(log: dict) -> Iterator[str]:
    """Arrays stay within the validator's default display limits: 5 runs, 1,000 rules and
    1,000 results per run, 10 locations and 100 code flows per result, 100 steps per
    thread flow."""
    yield from _limits(log, "")


def _absolute(uri: str) -> bool:
    return bool(urlsplit(uri).scheme) and len(urlsplit(uri).scheme) > 1


def gh1005(log: dict) -> Iterator[str]:
    """Artifact URIs are relative, or absolute ``file:`` URIs."""
    for where, _, result in _results(log):
        for at, location in _locations(result):
            uri = (((location.get("physicalLocation") or {}).get("artifactLocation") or {})
                   .get("uri") or "")
            if uri and _absolute(uri) and urlsplit(uri).scheme != "file":
                yield f"{where}.{at}: {uri!r} is not a file path"


def gh1006(log: dict) -> Iterator[str]:
    """An absolute ``file:`` URI lies under an ``invocations[].workingDirectory`` (the
    checkout path); relative URIs need none."""
    for where, run, result in _results(log):
        roots = [((inv.get("workingDirectory") or {}).get("uri") or "").rstrip("/") + "/"
                 for inv in run.get("invocations") or []]
        roots = [root for root in roots if root != "/"]
        for at, location in _locations(result):
            uri = (((location.get("physicalLocation") or {}).get("artifactLocation") or {})
                   .get("uri") or "")
            if uri.startswith("file:") and not any(uri.startswith(root) for root in roots):
                yield f"{where}.{at}: absolute URI {uri!r} outside the checkout path"


def gh1007(log: dict) -> Iterator[str]:
    """Each result's ``message.text`` is given (no templated message only)."""
    for where, _, result in _results(log):
        if not _text(result.get("message")).strip():
            yield f"{where}: no message.text"


def github_rule_id(log: dict) -> Iterator[str]:
    """Each result names its rule (``ruleId``), which GitHub groups alerts by."""
    for where, _, result in _results(log):
        if not result.get("ruleId") and not (result.get("rule") or {}).get("id"):
            yield f"{where}: no ruleId"


def base1011(log: dict) -> Iterator[str]:
    """``$schema`` names the final SARIF 2.1.0 schema."""
    schema = log.get("$schema") or ""
    if schema and not schema.endswith(FINAL_SCHEMAS):
        yield f"$schema {schema!r} is not the final SARIF 2.1.0 schema"


def ghas1013(log: dict) -> Iterator[str]:
    """The log has ``$schema``, ``version`` 2.1.0 and a ``runs`` array."""
    if "$schema" not in log:
        yield "no $schema"
    if log.get("version") != "2.1.0":
        yield f"version {log.get('version')!r}, not '2.1.0'"
    if not isinstance(log.get("runs"), list):
        yield "no runs array"


def ghas1014(log: dict) -> Iterator[str]:
    """Each run has a ``tool`` and a ``results`` array."""
    for r, run in enumerate(log.get("runs") or []):
        if "tool" not in run:
            yield f"runs[{r}]: no tool"
        if not isinstance(run.get("results"), list):
            yield f"runs[{r}]: no results array"


def ghas1015(log: dict) -> Iterator[str]:
    """Each result has ``message.text``, a non-empty ``locations`` array and
    ``partialFingerprints``."""
    for where, _, result in _results(log):
        if not _text(result.get("message")).strip():
            yield f"{where}: no message.text"
        if not result.get("locations"):
            yield f"{where}: no locations"
        if "partialFingerprints" not in result:
            yield f"{where}: no partialFingerprints"


def ghas1016(log: dict) -> Iterator[str]:
    """Each location has a ``physicalLocation``."""
    for where, _, result in _results(log):
        for at, location in _locations(result):
            if "physicalLocation" not in location:
                yield f"{where}.{at}: no physicalLocation"


def ghas1017(log: dict) -> Iterator[str]:
    """Each ``physicalLocation`` has an ``artifactLocation`` and a consistent ``region``
    (a start: ``startLine``, ``charOffset`` or ``byteOffset``; ``endLine`` ≥ ``startLine``)."""
    for where, _, result in _results(log):
        for at, location in _locations(result):
            physical = location.get("physicalLocation")
            if physical is None:
                continue
            if "artifactLocation" not in physical:
                yield f"{where}.{at}: no artifactLocation"
            region = physical.get("region")
            if region is None:
                yield f"{where}.{at}: no region"
                continue
            if not any(k in region for k in ("startLine", "charOffset", "byteOffset")):
                yield f"{where}.{at}: region without startLine, charOffset or byteOffset"
            if "endLine" in region and region["endLine"] < region.get("startLine", 1):
                yield f"{where}.{at}: region endLine before startLine"


def ghas1018(log: dict) -> Iterator[str]:
    """Each run's ``tool.driver`` has a ``name`` and a ``rules`` array."""
    for r, run in enumerate(log.get("runs") or []):
        driver = (run.get("tool") or {}).get("driver")
        if driver is None:
            yield f"runs[{r}]: no tool.driver"
            continue
        if not (driver.get("name") or "").strip():
            yield f"runs[{r}]: tool.driver has no name"
        if not isinstance(driver.get("rules"), list):
            yield f"runs[{r}]: tool.driver has no rules array"


def _rules(log: dict) -> Iterator[tuple]:
    for r, run in enumerate(log.get("runs") or []):
        for i, rule in enumerate(((run.get("tool") or {}).get("driver") or {}).get("rules")
                                 or []):
            yield f"runs[{r}].tool.driver.rules[{i}]", rule


def ghas2012(log: dict) -> Iterator[str]:
    """Each rule has an ``id``, ``shortDescription.text``, ``fullDescription.text`` and
    ``help.text``."""
    for where, rule in _rules(log):
        for key in ("shortDescription", "fullDescription", "help"):
            if not _text(rule.get(key)).strip():
                yield f"{where}: no {key}.text"
        if not (rule.get("id") or "").strip():
            yield f"{where}: no id"


def sarif2012(log: dict) -> Iterator[str]:
    """Each rule has a ``helpUri`` (GitHub links to it)."""
    for where, rule in _rules(log):
        uri = rule.get("helpUri") or ""
        if not _absolute(uri):
            yield f"{where}: no absolute helpUri"


#: ``(id, name, check)`` of every rule checked, in the validator's order.
RULES: list = [
    ("GH1001", "ProvideRequiredLocationProperties", gh1001),
    ("GH1002", "InlineThreadFlowLocations", gh1002),
    ("GH1003", "ProvideRequiredRegionProperties", gh1003),
    ("GH1004", "ReviewArraysThatExceedConfigurableDefaults", gh1004),
    ("GH1005", "LocationsMustBeRelativeUrisOrFilePaths", gh1005),
    ("GH1006", "ProvideCheckoutPath", gh1006),
    ("GH1007", "ProvideFullyFormattedMessageStrings", gh1007),
    ("BASE1011", "ReferenceFinalSchema", base1011),
    ("GHAS1013", "ProvideRequiredSarifLogProperties", ghas1013),
    ("GHAS1014", "ProvideRequiredRunProperties", ghas1014),
    ("GHAS1015", "ProvideRequiredResultProperties", ghas1015),
    ("GHAS1016", "ProvideRequiredLocationProperties", ghas1016),
    ("GHAS1017", "ProvideRequiredPhysicalLocationProperties", ghas1017),
    ("GHAS1018", "ProvideRequiredToolProperties", ghas1018),
    ("GHAS2012", "ProvideRequiredReportingDescriptorProperties", ghas2012),
    ("SARIF2012", "ProvideHelpUris", sarif2012),
    ("ruleId", "(GitHub's SARIF documentation)", github_rule_id),
]


def check(log: dict) -> list:
    """Every problem of ``log``, as ``"RULE: where: what"`` lines (empty: it passes)."""
    problems = []
    for rule_id, _, rule in RULES:
        problems += [f"{rule_id}: {problem}" for problem in rule(log)]
    return problems


def markdown_list() -> str:
    """The README's list of the rules checked."""
    def check_doc(fn: Callable) -> str:
        return " ".join((fn.__doc__ or "").split()).replace("``", "`")
    return "\n".join(f"- `{rule_id}` {name}: {check_doc(fn)}" for rule_id, name, fn in RULES)


def main(argv=None) -> int:
    """Check SARIF files; print each problem; exit 1 if there is one."""
    problems = []
    for path in (sys.argv[1:] if argv is None else argv):
        with open(path, encoding="utf-8") as handle:
            problems += [f"{path}: {p}" for p in check(json.load(handle))]
    print("\n".join(problems) or "no problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
