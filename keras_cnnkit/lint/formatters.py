"""Output formats of ``cnnkit-lint``: text, JSON, SARIF 2.1.0 and GitHub workflow commands.

The last stage of the pipeline: every formatter takes the same inputs, a list of
:class:`FileResult` (one per path on the command line) and the rule metadata
(:class:`RuleInfo`), and returns the whole output as one string.  None of them reads a
model or re-runs an analysis.

``text``
    pylint-like, one line per finding::

        model.h5:block5_conv1: CNK103 missing-bottleneck: <message> [params 2,359,808 →
        279,296 (−88%), FLOPs 231,211,008 → 27,371,520 (−88%)]

    then a table with one row per model (layers, params, MACs, FLOPs, opaque layers,
    findings) and a one-line total.  With ``--benchmark`` a measured finding's line ends
    in ``[measured 3.59 → 0.623 ms (5.76×, b32)]`` (forward pass before → after, speed-up,
    batch), and each model's benchmark table (device, every run, the whole-model A/B,
    what was skipped and why) follows the findings.
``json``
    A contract, not a dump: the JSON Schema shipped as
    ``keras_cnnkit/schemas/lint-report.schema.json`` (:func:`json_schema`) names and
    describes every key, the README's description of the format is generated from it, and
    the tests validate real reports against it.  ``schema_version`` (the schema's
    ``schema_version`` const) changes whenever the shape does.  A finding's replacement
    graph, the linter's internal IR, is added only by ``--verbose-json``.  With
    ``--benchmark`` a measured finding also has ``latency_before_ms``,
    ``latency_after_ms``, ``speedup`` and ``device`` at its top level (every run under
    ``measurements``), and each model a ``"benchmark"`` entry
    (:meth:`~keras_cnnkit.bench.harness.BenchResult.to_dict`).
``sarif``
    SARIF 2.1.0 that GitHub code scanning displays: one run; the driver lists the rules
    that ran (id, name, short and full description, ``help`` text and markdown — the
    ``--explain`` page —, ``helpUri`` — the rule's first reference with a URL —, default
    level); each result has a ``physicalLocation`` (the model file, relative to the
    working directory, and a ``region.startLine``: the line of a JSON config, or of a
    ``.keras`` archive's ``config.json``, that names the layer, else 1), the layer as a
    ``logicalLocation`` and in the message, and a ``partialFingerprints`` entry hashed
    from (rule symbol, model file, layer), so that code scanning tracks a finding across
    runs however the model changes elsewhere.
``github``
    ``::warning file=model.h5,line=1,title=CNK103 missing-bottleneck::block5_conv1: ...``
    workflow commands (severity info → ``notice``; the line as in SARIF), annotating
    the file in a pull request.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import json
import os
import re
from pathlib import Path
from typing import Optional

from keras_cnnkit.lint.findings import Finding, Severity
from keras_cnnkit.lint.report import (finding_dict, finding_message, measured_fields,
                                      measurement_text, merged_measurements)

TOOL_NAME = "cnnkit-lint"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
#: The JSON Schema of ``--format json``, inside the package.
JSON_SCHEMA_FILE = "schemas/lint-report.schema.json"
_URL = re.compile(r"https?://[^\s<>()\]`'\"]+[^\s<>()\]`'\".,;:]")


@functools.lru_cache(maxsize=1)
def json_schema() -> dict:
    """The JSON Schema of ``cnnkit-lint --format json`` (shipped in the package)."""
    text = importlib.resources.files("keras_cnnkit").joinpath(JSON_SCHEMA_FILE).read_text(
        encoding="utf-8")
    return json.loads(text)


def json_schema_version() -> int:
    """The ``schema_version`` the JSON report carries: the schema's own const."""
    return int(json_schema()["properties"]["schema_version"]["const"])

_SARIF_LEVELS = {Severity.INFO: "note", Severity.WARNING: "warning", Severity.ERROR: "error"}
_GITHUB_LEVELS = {Severity.INFO: "notice", Severity.WARNING: "warning",
                  Severity.ERROR: "error"}


@dataclasses.dataclass
class RuleInfo:
    """What the formatters need to know of a rule."""

    code: str
    symbol: str
    severity: Severity
    summary: str
    docs: dict
    fixable: bool = False

    @classmethod
    def from_rule(cls, rule) -> "RuleInfo":
        """From a :class:`~keras_cnnkit.lint.findings.Rule` class or instance."""
        return cls(rule.code, rule.symbol, Severity(rule.severity), rule.summary(),
                   rule.docs(), bool(getattr(rule, "fixable", False)))

    def explain(self) -> str:
        """The ``--explain`` page (markdown): heading line, summary, docstring sections."""
        fix = "fix available" if self.fixable else "no automatic fix"
        lines = [f"{self.code} {self.symbol} ({self.severity}; {fix})", "", self.summary]
        for heading, body in self.docs.items():
            lines += ["", f"## {heading}", "", body]
        return "\n".join(lines) + "\n"

    @property
    def help_uri(self) -> Optional[str]:
        """The first URL of the rule's *References* (its paper), or ``None``."""
        found = _URL.search(self.docs.get("References", ""))
        return found.group(0) if found else None


@dataclasses.dataclass
class FileResult:
    """The outcome of linting one path.

    Attributes:
        path: the path as given on the command line.
        summary: the model's cost summary (a ``ModelSummary``), ``None`` on error.
        findings: the findings reported (after select/ignore, suppressions, baseline).
        error: the one-line problem when the file could not be linted.
        suppressed: findings dropped by per-layer ignores.
        baselined: findings dropped because the baseline holds them.
        benchmark: the :class:`~keras_cnnkit.bench.harness.BenchResult` of
            ``--benchmark``, else ``None``: the formatters attach its figures to the
            findings they print (see :class:`~keras_cnnkit.lint.report.Measurements`).
        source_lines: layer → line of the model file that names it (JSON configs; see
            :attr:`keras_cnnkit.analysis.ir.Graph.source_lines`); SARIF and GitHub
            annotations point there, at line 1 where it is not known.
    """

    path: str
    summary: object = None
    findings: list = dataclasses.field(default_factory=list)
    error: Optional[str] = None
    suppressed: int = 0
    baselined: int = 0
    benchmark: object = None
    source_lines: dict = dataclasses.field(default_factory=dict)

    def line_of(self, layer: str) -> int:
        """The 1-based line where the model file names ``layer`` (1 where unknown)."""
        return int(self.source_lines.get(layer) or
                   self.source_lines.get(layer.rsplit("/", 1)[-1]) or 1)


# --- helpers -------------------------------------------------------------------------

def _int(value: Optional[int]) -> str:
    return "?" if value is None else f"{value:,}"


def _change(before: Optional[int], after: Optional[int]) -> str:
    """``"2,359,808 → 279,296 (−88%)"``."""
    text = f"{_int(before)} → {_int(after)}"
    if before and after is not None:
        pct = round(100 * (after - before) / before)
        sign = "−" if pct < 0 else "+" if pct > 0 else ""
        text += f" ({sign}{abs(pct)}%)"
    return text


def savings_text(finding: Finding) -> str:
    """``"params a → b (−x%), FLOPs c → d (−y%)"``; empty for advisory findings."""
    parts = []
    if finding.params_before is not None or finding.params_after is not None:
        parts.append(f"params {_change(finding.params_before, finding.params_after)}")
    if finding.flops_before is not None or finding.flops_after is not None:
        parts.append(f"FLOPs {_change(finding.flops_before, finding.flops_after)}")
    return ", ".join(parts)


def _finding_text(finding: Finding, bench=None) -> str:
    """``"<message> [<savings>] [measured <times>]"``; ``bench``: the file's benchmark."""
    savings = savings_text(finding)
    measured = measurement_text(merged_measurements(finding, bench)) if bench else ""
    return (finding_message(finding, bench) + (f" [{savings}]" if savings else "")
            + (f" [measured {measured}]" if measured else ""))


def _opaque(summary) -> list:
    return [{"layer": row.layer, "node": row.name, "class_name": row.source_class}
            for row in getattr(summary, "nodes", ()) if row.op == "opaque"]


def summary_dict(summary) -> dict:
    """The JSON summary of a model: totals, unknown-cost and opaque layers."""
    out = summary.to_dict(per_node=False)
    out["unknown_cost_layers"] = list(out.pop("unknown"))
    out["opaque_layers"] = _opaque(summary)
    return out


def _counts(findings: list) -> dict:
    counts = {str(s): 0 for s in sorted(Severity, reverse=True)}
    for finding in findings:
        counts[str(Severity(finding.severity))] += 1
    return counts


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- text ----------------------------------------------------------------------------

def format_text(results: list, rules: list, show_summary: bool = True) -> str:
    """pylint-like lines, then a per-model table and totals (see the module docstring)."""
    del rules  # the text format names rules by code and symbol only
    lines = []
    for result in results:
        if result.error is not None:
            continue
        for f in result.findings:
            lines.append(f"{result.path}:{f.layer}: {f.code} {f.symbol}: "
                         f"{_finding_text(f, result.benchmark)}")
    for result in results:
        if result.benchmark is not None:
            lines += ["", f"{result.path}: {result.benchmark.format_text()}"]
    if not show_summary:
        return "\n".join(lines) + ("\n" if lines else "")
    if lines:
        lines.append("")
    table = [("model", "layers", "params", "MACs", "FLOPs", "opaque", "findings")]
    for result in results:
        if result.error is not None:
            table.append((result.path, "-", "-", "-", "-", "-", "error"))
            continue
        s = result.summary
        counts = _counts(result.findings)
        detail = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
        table.append((result.path, _int(s.layer_count), _int(s.params), _int(s.macs),
                      _int(s.flops), str(len(_opaque(s))),
                      str(len(result.findings)) + (f" ({detail})" if detail else "")))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for k, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(_totals_line(results))
    unknown = [(r.path, r.summary.unknown) for r in results
               if r.error is None and r.summary.unknown]
    for path, names in unknown:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        lines.append(f"{path}: cost unknown for {_plural(len(names), 'node')} "
                     f"(not counted in MACs/FLOPs): {shown}")
    return "\n".join(lines) + "\n"


def _totals_line(results: list) -> str:
    findings = [f for r in results for f in r.findings]
    counts = _counts(findings)
    detail = ", ".join(f"{n} {sev}" for sev, n in counts.items())
    linted = sum(r.error is None for r in results)
    text = f"{_plural(len(findings), 'finding')} ({detail}) in {_plural(linted, 'model')}"
    extras = []
    suppressed = sum(r.suppressed for r in results)
    baselined = sum(r.baselined for r in results)
    errors = sum(r.error is not None for r in results)
    if suppressed:
        extras.append(f"{suppressed} suppressed")
    if baselined:
        extras.append(f"{baselined} in baseline")
    if errors:
        extras.append(f"{_plural(errors, 'file')} not linted")
    return text + (f"; {', '.join(extras)}" if extras else "") + "."


# --- json ----------------------------------------------------------------------------

def _json_finding(finding: Finding, bench, verbose: bool) -> dict:
    """A finding as the schema describes it; the replacement graph only if ``verbose``."""
    out = finding_dict(finding, bench)
    if not verbose:
        out.pop("replacement", None)
    return out


def format_json(results: list, rules: list, verbose: bool = False) -> str:
    """The JSON report, as :func:`json_schema` describes it (see the module docstring);
    ``verbose`` (``--verbose-json``) adds each finding's replacement graph."""
    from keras_cnnkit import __version__

    models, errors = [], []
    for result in results:
        if result.error is not None:
            errors.append({"file": result.path, "problem": result.error})
            continue
        model = {"file": result.path, "summary": summary_dict(result.summary),
                 "findings": [_json_finding(f, result.benchmark, verbose)
                              for f in result.findings],
                 "suppressed": result.suppressed, "baselined": result.baselined}
        if result.benchmark is not None:
            model["benchmark"] = result.benchmark.to_dict()
        models.append(model)
    findings = [f for r in results for f in r.findings]
    data = {
        "schema_version": json_schema_version(),
        "tool": {"name": TOOL_NAME, "version": __version__},
        "rules": [r.code for r in rules],
        "models": models,
        "errors": errors,
        "totals": {"models": len(models), "errors": len(errors), "findings": len(findings),
                   "by_severity": _counts(findings)},
    }
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --- sarif ---------------------------------------------------------------------------

def _uri(path: str, base: Path) -> str:
    """A file's URI relative to ``base`` (POSIX, percent-free), absolute if outside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_uri()


def _physical(uri: str, line: int) -> dict:
    """A SARIF location in file ``uri`` at ``line`` (GitHub needs ``region.startLine``)."""
    return {"physicalLocation": {"artifactLocation": {"uri": uri},
                                 "region": {"startLine": max(1, int(line))}}}


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _rule_descriptor(rule: RuleInfo) -> dict:
    what = rule.docs.get("What it does", rule.summary)
    why = rule.docs.get("Why is this bad?", "")
    full = f"{what}\n\n{why}".strip()
    page = rule.explain()
    descriptor = {
        "id": rule.code,
        "name": rule.symbol,
        "shortDescription": {"text": rule.summary or rule.symbol},
        "fullDescription": {"text": full or rule.summary or rule.symbol},
        "help": {"text": page, "markdown": page},
        "defaultConfiguration": {"level": _SARIF_LEVELS[Severity(rule.severity)]},
        "properties": {"tags": ["efficiency"], "fixable": rule.fixable},
    }
    if rule.help_uri:
        descriptor["helpUri"] = rule.help_uri
    return descriptor


def format_sarif(results: list, rules: list, base: Optional[Path] = None) -> str:
    """SARIF 2.1.0 (see the module docstring); paths relative to ``base`` (the CWD)."""
    from keras_cnnkit import __version__

    base = Path(os.path.abspath(base or os.getcwd()))
    index = {r.code: i for i, r in enumerate(rules)}
    sarif_results, notifications = [], []
    for result in results:
        uri = _uri(result.path, base)
        if result.error is not None:
            notifications.append({"level": "error", "message": {"text": result.error},
                                  "locations": [_physical(uri, 1)]})
            continue
        for f in result.findings:
            text = f"{f.layer}: {_finding_text(f, result.benchmark)}"
            entry = {
                "ruleId": f.code,
                "level": _SARIF_LEVELS[Severity(f.severity)],
                "message": {"text": text},
                "locations": [{**_physical(uri, result.line_of(f.layer)), "logicalLocations": [
                    {"name": f.layer, "fullyQualifiedName": f"{uri}:{f.layer}",
                     "kind": "object"}]}],
                "partialFingerprints": {"cnnkitRuleLayer/v1": _fingerprint(f.symbol, uri,
                                                                           f.layer)},
                "properties": {**{k: getattr(f, k) for k in (
                    "symbol", "params_before", "params_after", "macs_before", "macs_after",
                    "flops_before", "flops_after") if getattr(f, k) is not None},
                    **measured_fields(f, result.benchmark)},
            }
            if f.suggestion:
                entry["properties"]["suggestion"] = f.suggestion
            if f.code in index:
                entry["ruleIndex"] = index[f.code]
            sarif_results.append(entry)
    run = {
        "tool": {"driver": {"name": TOOL_NAME, "version": __version__,
                            "rules": [_rule_descriptor(r) for r in rules]}},
        "invocations": [{"executionSuccessful": not notifications,
                         "toolExecutionNotifications": notifications}],
        "results": sarif_results,
    }
    data = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# --- github --------------------------------------------------------------------------

def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def format_github(results: list, rules: list) -> str:
    """GitHub Actions workflow commands, one per finding and per unreadable file."""
    del rules
    lines = []
    for result in results:
        path = _gh_property(result.path)
        if result.error is not None:
            lines.append(f"::error file={path},title=cnnkit-lint::{_gh_data(result.error)}")
            continue
        for f in result.findings:
            message = f"{f.layer}: {_finding_text(f, result.benchmark)}"
            level = _GITHUB_LEVELS[Severity(f.severity)]
            title = _gh_property(f"{f.code} {f.symbol}")
            lines.append(f"::{level} file={path},line={result.line_of(f.layer)},"
                         f"title={title}::{_gh_data(message)}")
    return "\n".join(lines) + ("\n" if lines else "")


FORMATTERS = {"text": format_text, "json": format_json, "sarif": format_sarif,
              "github": format_github}
