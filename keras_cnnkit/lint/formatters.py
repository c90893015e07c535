"""Output formats of ``cnnkit-lint``: text, JSON, SARIF 2.1.0 and GitHub workflow commands.

The last stage of the pipeline: every formatter takes the same inputs, a list of
:class:`FileResult` (one per path on the command line) and the rule metadata
(:class:`RuleInfo`), and returns the whole output as one string.  None of them reads a
model or re-runs an analysis.

``text``
    pylint-like, one line per finding (one per site: :mod:`keras_cnnkit.lint.sites`),
    largest impact first, showing the recommended alternative::

        model.h5:block5_conv1: CNK103 missing-bottleneck: <message> [params 2,359,808 →
        279,296 (−88%), FLOPs 231,211,008 → 27,371,520 (−88%); 12% of the model's FLOPs,
        2.0% of its params] [≈6.8× faster on cpu-generic (predicted)] [recommended: the
        fastest of 3 alternatives: ...; others: CNK102 asymmetric-factorization ≈1.4×
        faster, CNK104 depthwise-separable-candidate ≈1.3× slower: saves parameters, not
        time]

    then a table with one row per model (layers, params, MACs, FLOPs, opaque layers, the
    share of FLOPs/params the recommended fixes save, each site once, and findings), the
    device profile of the predictions, a one-line total that counts the findings below
    ``--min-impact``, each model's notes (what the reader assumed, such as a default
    input size) and, where some node's cost is unknown, a line naming those nodes (the
    MAC and FLOP totals are then lower bounds).  With ``--benchmark`` a measured
    finding's line also has ``[measured 3.59 → 0.623 ms (5.76×, b32)]`` (forward pass
    before → after, speed-up, batch) beside the predicted speed-up, and each model's
    benchmark table (device, every run, the whole-model A/B, what was skipped and why)
    follows the findings.
``json``
    ``{"schema_version": ..., "tool": ..., "models": [{"file", "summary", "findings",
    "suppressed", "baselined", "below_min_impact", "min_impact", "savings",
    "device_profile"}], "errors": [{"file", "problem"}], "totals": ...}``.
    A model's ``summary`` has ``costs_complete``: ``false`` when some node's cost is
    unknown (listed in ``unknown``), so that ``macs``/``flops`` are lower bounds, and
    ``notes``.  A finding carries every :class:`~keras_cnnkit.lint.findings.Finding`
    field (those of its recommended, else first, alternative), ``flops_share``,
    ``params_share``, ``recommended`` (index), ``why``, ``predicted_speedup`` and
    ``profile``, and ``alternatives`` (:func:`~keras_cnnkit.lint.report.alternative_dict`).
    A contract, not a dump: the JSON Schema shipped as
    ``keras_cnnkit/schemas/lint-report.schema.json`` (:func:`json_schema`) names and
    describes every key, the README's description of the format is generated from it, and
    the tests validate real reports against it.  ``schema_version`` (the schema's
    ``schema_version`` const) changes whenever the shape does.  A finding's replacement
    graph, the linter's internal IR, is added only by ``--verbose-json``.  With
    ``--benchmark`` a measured finding also has ``latency_before_ms``,
    ``latency_after_ms``, ``speedup`` and ``device`` at its top level (every run under
    ``measurements``), its alternatives their ``measured_speedup``, and each model a
    ``"benchmark"`` entry (:meth:`~keras_cnnkit.bench.harness.BenchResult.to_dict`).
``sarif``
    SARIF 2.1.0 that GitHub code scanning displays: one run; the driver lists the rules
    that ran (id, name, short and full description, ``help`` text and markdown — the
    ``--explain`` page —, ``helpUri`` — the rule's first reference with a URL —, default
    level); each result has a ``physicalLocation`` (the model file, relative to the
    working directory, and a ``region.startLine``: the line of a JSON config, or of a
    ``.keras`` archive's ``config.json``, that names the layer, else 1), the layer as a
    ``logicalLocation`` and in the message, and a ``partialFingerprints`` entry hashed
    from (rule symbol, model file, layer), so that code scanning tracks a finding across
    runs however the model changes elsewhere.  A model's notes are tool-execution
    notifications of level ``note``.
``github``
    ``::warning file=model.h5,line=1,title=CNK103 missing-bottleneck::block5_conv1: ...``
    workflow commands (severity info → ``notice``; the line as in SARIF), annotating
    the file in a pull request; a model's notes are ``::notice`` commands.
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

from keras_cnnkit.lint.findings import Alternative, Finding, Severity
from keras_cnnkit.lint.report import (finding_dict, finding_message, measured_fields,
                                      measurement_text, merged_measurements, profile_dict)
from keras_cnnkit.lint.sites import speed_words

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
        suppressed: rule findings (alternatives) dropped by per-layer ignores.
        baselined: findings (sites) dropped because the baseline holds them.
        benchmark: the :class:`~keras_cnnkit.bench.harness.BenchResult` of
            ``--benchmark``, else ``None``: the formatters attach its figures to the
            findings they print (see :class:`~keras_cnnkit.lint.report.Measurements`).
        below_impact: sites not reported because they are under ``min_impact``.
        min_impact: the reporting threshold (``None``: not given).
        savings: what the recommended fixes save, each site once
            (:class:`~keras_cnnkit.lint.sites.Savings`), or ``None``.
        profile / profile_note: the device profile of the predictions, and why it was
            chosen.
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
    below_impact: int = 0
    min_impact: Optional[float] = None
    savings: object = None
    profile: object = None
    profile_note: str = ""
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


def _pct_share(share: float) -> str:
    """``0.4499`` → ``"45%"``, ``0.0123`` → ``"1.2%"``, ``0.00004`` → ``"<0.01%"``."""
    pct = 100 * share
    if pct >= 10:
        return f"{pct:.0f}%"
    return f"{pct:.2g}%" if pct >= 0.01 else "<0.01%"


def share_text(finding: Finding) -> str:
    """``"45% of the model's FLOPs, 52% of its params"`` (what the site saves), or, for
    a site without a saving, the share of the model's MACs its layers carry."""
    if finding.flops_share is None and finding.params_share is None:
        return ""
    saves = any((b or 0) > (a or 0) for b, a in ((finding.params_before, finding.params_after),
                                                 (finding.flops_before, finding.flops_after)))
    if not saves:
        share = "unknown" if finding.flops_share is None else _pct_share(finding.flops_share)
        return f"layers with {share} of the model's MACs"
    parts = []
    if finding.flops_share is not None:
        parts.append(f"{_pct_share(finding.flops_share)} of the model's FLOPs")
    if finding.params_share is not None:
        parts.append(f"{_pct_share(finding.params_share)} of its params")
    return ", ".join(parts)


def predicted_text(alt: Alternative) -> str:
    """``"≈6.8× faster on cpu-generic (predicted)"``; empty without a prediction."""
    if not alt.predicted:
        return ""
    return f"{speed_words(alt.predicted)} on {alt.profile} (predicted)"


def _other_text(alt: Alternative) -> str:
    """How the text output names an alternative that is not recommended: its speed
    (measured if it was, else predicted) and, if slower, what it saves instead."""
    text = f"{alt.finding.code} {alt.finding.symbol}"
    if alt.finding.replacement is None:
        return text + " (advice)"
    if alt.companion:
        return text + " (exact; merged into the recommended fix)"
    if alt.measured:
        text += f" {speed_words(alt.measured)} (measured)"
    elif alt.predicted:
        text += f" {speed_words(alt.predicted)}"
    return text + (": saves parameters, not time" if alt.slower else "")


def _choice_text(finding: Finding) -> str:
    """``"recommended: <why>; others: ..."`` for a site with several alternatives or
    none recommended; empty otherwise."""
    alts = finding.alternatives
    if not alts or (len(alts) == 1 and finding.recommended is not None):
        return ""
    head = ("recommended: " + finding.why) if finding.recommended is not None else \
        ("not recommended: " + finding.why)
    others = [_other_text(a) for i, a in enumerate(alts) if i != finding.recommended
              and not (finding.recommended is None and i == 0)]
    return head + (f"; others: {', '.join(others)}" if others else "")


def _finding_text(finding: Finding, bench=None) -> str:
    """``"<message> [<savings>; <share>] [<predicted>] [measured <times>] [<choice>]"``;
    ``bench``: the file's benchmark."""
    savings = "; ".join(p for p in (savings_text(finding), share_text(finding)) if p)
    speed = predicted_text(finding.alternatives[0]) if finding.alternatives else ""
    measured = measurement_text(merged_measurements(finding, bench)) if bench else ""
    choice = _choice_text(finding)
    if speed and speed.removesuffix(" (predicted)") in choice:
        speed = ""  # the reason for the recommendation states it already
    return (finding_message(finding, bench) + (f" [{savings}]" if savings else "")
            + (f" [{speed}]" if speed else "")
            + (f" [measured {measured}]" if measured else "")
            + (f" [{choice}]" if choice else ""))


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
    table = [("model", "layers", "params", "MACs", "FLOPs", "opaque",
              "fixes save FLOPs/params", "findings")]
    for result in results:
        if result.error is not None:
            table.append((result.path, "-", "-", "-", "-", "-", "-", "error"))
            continue
        s = result.summary
        counts = _counts(result.findings)
        detail = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
        table.append((result.path, _int(s.layer_count), _int(s.params), _int(s.macs),
                      _int(s.flops), str(len(_opaque(s))), _savings_cell(result.savings),
                      str(len(result.findings)) + (f" ({detail})" if detail else "")))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for k, row in enumerate(table):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    profile = _profile_line(results)
    if profile:
        lines.append(profile)
    lines.append(_totals_line(results))
    for result in results:
        if result.error is None:
            lines += [f"{result.path}: note: {note}" for note in _notes(result.summary)]
    unknown = [(r.path, r.summary.unknown) for r in results
               if r.error is None and r.summary.unknown]
    for path, names in unknown:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        lines.append(f"{path}: cost unknown for {_plural(len(names), 'node')} "
                     f"(not counted: its MACs/FLOPs are lower bounds): {shown}")
    return "\n".join(lines) + "\n"


def _notes(summary) -> list:
    """What the frontend assumed in reading the model (see ``Graph.notes``)."""
    return list(getattr(summary, "notes", None) or ())


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
    below = sum(r.below_impact for r in results)
    if below:
        threshold = next(r.min_impact for r in results if r.min_impact is not None)
        extras.append(f"{below} below --min-impact {_pct_share(threshold)}")
    if suppressed:
        extras.append(f"{suppressed} suppressed")
    if baselined:
        extras.append(f"{baselined} in baseline")
    if errors:
        extras.append(f"{_plural(errors, 'file')} not linted")
    return text + (f"; {', '.join(extras)}" if extras else "") + "."


def _savings_cell(savings) -> str:
    """The table's "fixes save FLOPs/params" cell: ``"84%/84%"``, the FLOPs and the parameters the
    recommended fixes of the reported findings save, each site once (``"-"``: none)."""
    if savings is None or not savings.sites:
        return "-"
    return "/".join("?" if share is None else _pct_share(share)
                    for share in (savings.flops_share, savings.params_share))


def _profile_line(results: list) -> str:
    """The device profile of the predictions and its error figures (once per run)."""
    done = [r for r in results if r.error is None and r.profile is not None]
    if not done:
        return ""
    return f"speed-ups predicted on {done[0].profile_note}; {done[0].profile.error_summary()}"


# --- json ----------------------------------------------------------------------------

def _json_finding(finding: Finding, bench, verbose: bool) -> dict:
    """A finding as the schema describes it; the replacement graph only if ``verbose``."""
    out = finding_dict(finding, bench)
    if not verbose:
        out.pop("replacement", None)
        for alternative in out.get("alternatives", ()):
            alternative.pop("replacement", None)
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
                 "suppressed": result.suppressed, "baselined": result.baselined,
                 "below_min_impact": result.below_impact, "min_impact": result.min_impact,
                 "savings": result.savings.to_dict() if result.savings else None,
                 "device_profile": profile_dict(result.profile, result.profile_note)}
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
                   "by_severity": _counts(findings),
                   "below_min_impact": sum(r.below_impact for r in results)},
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


def _sarif_alternatives(finding: Finding) -> dict:
    """A site's alternatives as SARIF result properties (one result per site)."""
    if not finding.alternatives:
        return {}
    return {"recommended": (finding.alternatives[finding.recommended].finding.symbol
                            if finding.recommended is not None else None),
            "alternatives": [{"ruleId": a.finding.code, "symbol": a.finding.symbol,
                              "predicted_speedup": {str(b): v for b, v in a.predicted.items()},
                              "measured_speedup": {str(b): v for b, v in a.measured.items()},
                              "slower": a.slower}
                             for a in finding.alternatives]}


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
        notifications += [{"level": "note", "message": {"text": note},
                           "locations": [_physical(uri, 1)]} for note in _notes(result.summary)]
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
                    "flops_before", "flops_after", "flops_share", "params_share", "why")
                    if getattr(f, k) not in (None, "")},
                    **measured_fields(f, result.benchmark), **_sarif_alternatives(f)},
            }
            if f.suggestion:
                entry["properties"]["suggestion"] = f.suggestion
            if f.code in index:
                entry["ruleIndex"] = index[f.code]
            sarif_results.append(entry)
    run = {
        "tool": {"driver": {"name": TOOL_NAME, "version": __version__,
                            "rules": [_rule_descriptor(r) for r in rules]}},
        "invocations": [{"executionSuccessful": not any(
                             n["level"] == "error" for n in notifications),
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
        lines += [f"::notice file={path},title=cnnkit-lint::{_gh_data(note)}"
                  for note in _notes(result.summary)]
        for f in result.findings:
            message = f"{f.layer}: {_finding_text(f, result.benchmark)}"
            level = _GITHUB_LEVELS[Severity(f.severity)]
            title = _gh_property(f"{f.code} {f.symbol}")
            lines.append(f"::{level} file={path},line={result.line_of(f.layer)},"
                         f"title={title}::{_gh_data(message)}")
    return "\n".join(lines) + ("\n" if lines else "")


FORMATTERS = {"text": format_text, "json": format_json, "sarif": format_sarif,
              "github": format_github}
