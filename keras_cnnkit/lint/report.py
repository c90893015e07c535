"""The result of linting one model: its cost summary and its findings.

The report holds one finding per *site* (:mod:`keras_cnnkit.lint.sites`): the rules'
own findings grouped so that no two share a layer, each with its alternatives, the
recommended one and why, and its impact (``flops_share``, ``params_share``).  Sites
below ``min_impact`` are kept apart (:attr:`Report.below_impact`).  Findings are sorted
by impact, largest first, then by code and layer, so that a report reads "biggest win
first" and is stable from run to run.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Protocol

from keras_cnnkit.analysis.cost import ModelSummary
from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.lint.findings import Alternative, Finding, Replacement, Severity
from keras_cnnkit.lint.sites import (DECISION_BATCHES, DEFAULT_MIN_IMPACT, Context, Savings,
                                     build_sites, check_savings, rule_findings,
                                     split_by_impact)


def _json(value):
    if isinstance(value, Severity):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def node_dict(node: Node) -> dict:
    """An IR node, JSON-ready."""
    return {"name": node.name, "op": node.op, "inputs": list(node.inputs),
            "input_shapes": _json(node.input_shapes), "output_shape": _json(node.output_shape),
            "attrs": _json(node.attrs), "layer": node.layer, "source_class": node.source_class}


def replacement_dict(replacement: Optional[Replacement]) -> Optional[dict]:
    """A replacement fragment, JSON-ready."""
    if replacement is None:
        return None
    return {"removed": list(replacement.removed),
            "nodes": [node_dict(n) for n in replacement.nodes],
            "output": replacement.output,
            "preserves_function": replacement.preserves_function}


#: The fields of a finding in :meth:`Report.to_dict`, in order.
FINDING_FIELDS = ("code", "symbol", "severity", "layer", "node", "message", "suggestion",
                  "params_before", "params_after", "macs_before", "macs_after",
                  "flops_before", "flops_after")

#: The site fields of a finding in :meth:`Report.to_dict` (see :mod:`.sites`).
SITE_FIELDS = ("flops_share", "params_share", "recommended", "why")

#: The fields of an alternative in :meth:`Report.to_dict`, besides its speed-ups.
ALTERNATIVE_FIELDS = ("code", "symbol", "severity", "layer", "node", "message", "suggestion",
                      "params_before", "params_after", "macs_before", "macs_after",
                      "flops_before", "flops_after")


#: The measured figures of a benchmarked finding (``cnnkit-lint --benchmark``) that
#: :func:`finding_dict` lifts out of ``measurements`` to the finding's top level: the
#: median forward-pass times at the largest batch measured, their ratio, the device.
MEASUREMENT_FIELDS = ("latency_before_ms", "latency_after_ms", "speedup", "device")


class Measurements(Protocol):
    """A benchmark's figures per finding, as the report layer attaches them.

    :class:`keras_cnnkit.bench.BenchResult` is one.  A benchmark never edits a
    :class:`Finding`: the report layer merges these figures into the finding's
    ``measurements`` and appends the note to its message when it renders the finding,
    and the grouping stage (:mod:`.sites`) reads each alternative's measured runs
    (``fields_of(f)["runs"]``) to recommend the fastest.  A ``batches`` attribute, where
    present, names the batch sizes measured: the recommendation then decides at those.
    """

    def fields_of(self, finding: Finding) -> dict:
        """The measured figures of ``finding`` (empty when it was not measured)."""

    def note_of(self, finding: Finding) -> str:
        """A sentence to append to the finding's message (empty for none)."""


def finding_label(finding: Finding) -> str:
    """``"CODE symbol @ layer"``: how a finding is named in benchmark tables and results."""
    return f"{finding.code} {finding.symbol} @ {finding.layer}"


def merged_measurements(finding: Finding, bench: Optional[Measurements] = None) -> dict:
    """The finding's own ``measurements`` (the rule's), then the benchmark's figures."""
    if bench is None:
        return dict(finding.measurements)
    return {**finding.measurements, **bench.fields_of(finding)}


def finding_message(finding: Finding, bench: Optional[Measurements] = None) -> str:
    """The finding's message, with the benchmark's note (``Measured slower ...``) if any."""
    note = bench.note_of(finding) if bench is not None else ""
    if not note or note.strip() in finding.message:
        return finding.message
    return finding.message.rstrip() + note


def measured_fields(finding: Finding, bench: Optional[Measurements] = None) -> dict:
    """The :data:`MEASUREMENT_FIELDS` the finding's measurements hold (empty if unmeasured)."""
    merged = merged_measurements(finding, bench)
    return {name: _json(merged[name]) for name in MEASUREMENT_FIELDS if name in merged}


def measurement_text(measurements: Mapping) -> str:
    """The text-output cell of a measured finding: ``"3.59 → 0.623 ms (5.76×, b32)"``;
    empty when ``measurements`` hold no timing."""
    m = measurements
    if "latency_before_ms" not in m:
        return ""
    return (f"{m['latency_before_ms']:.3g} → {m['latency_after_ms']:.3g} ms "
            f"({m['speedup']:.2f}×, b{m['batch']})")


def _by_batch(speeds: Mapping) -> dict:
    return {str(batch): speed for batch, speed in sorted(speeds.items())}


def alternative_dict(alt: Alternative, recommended: bool,
                     bench: Optional[Measurements] = None) -> dict:
    """One alternative of a site, JSON-ready: its rule's finding's fields, whether its
    fix keeps the function, how its weights are obtained, its predicted speed-up per
    batch and the profile, its measured one (``--benchmark``), its standing, and its
    replacement fragment."""
    finding = alt.finding
    out = {name: _json(getattr(finding, name)) for name in ALTERNATIVE_FIELDS}
    out["message"] = finding_message(finding, bench)
    rep = finding.replacement
    out["preserves_function"] = None if rep is None else rep.preserves_function
    out["needs_retraining"] = finding.needs_retraining
    out["weights"] = alt.weights or None
    out["predicted_speedup"] = _by_batch(alt.predicted)
    out["profile"] = alt.profile or None
    out["measured_speedup"] = _by_batch(alt.measured)
    out["slower"] = alt.slower
    out["recommended"] = recommended
    out["companion"] = alt.companion
    out["replacement"] = replacement_dict(rep)
    return out


def finding_dict(finding: Finding, bench: Optional[Measurements] = None) -> dict:
    """Every field of a finding, JSON-ready; a measured finding also carries the
    :data:`MEASUREMENT_FIELDS` at top level (every run stays under ``measurements``).

    A site (:mod:`.sites`) also carries :data:`SITE_FIELDS`, the predicted speed-up and
    profile of its first alternative at top level, and ``alternatives``
    (:func:`alternative_dict`); its flat fields are those of its first alternative, the
    recommended one when there is one (``recommended``: its index, ``None`` for none).
    """
    out = {name: _json(getattr(finding, name)) for name in FINDING_FIELDS}
    out["message"] = finding_message(finding, bench)
    out.update(measured_fields(finding, bench))
    out["needs_retraining"] = finding.needs_retraining
    out["measurements"] = _json(merged_measurements(finding, bench))
    out["replacement"] = replacement_dict(finding.replacement)
    out.update({name: _json(getattr(finding, name)) for name in SITE_FIELDS})
    first = finding.alternatives[0] if finding.alternatives else None
    out["predicted_speedup"] = _by_batch(first.predicted) if first else {}
    out["profile"] = (first.profile or None) if first else None
    out["alternatives"] = [alternative_dict(alt, i == finding.recommended, bench)
                           for i, alt in enumerate(finding.alternatives)]
    return out


@dataclasses.dataclass
class Report:
    """What :func:`keras_cnnkit.lint` returns.

    Attributes:
        model: the model's name.
        source: where it came from (a path, or ``"<keras model>"``).
        summary: per-node and total params, MACs, FLOPs, memory, unknown-cost nodes.
        findings: the reported sites, largest impact first (built from the findings
            given, rule findings or sites, by :meth:`regroup`).
        rules: the codes of the rules that ran.
        graph: the IR the rules saw (what fixes rewrite).
        benchmark: the measured figures attached by :meth:`attach_benchmark`, or None.
        min_impact: sites below this share of the model's FLOPs and parameters go to
            ``below_impact`` instead of ``findings`` (0: report everything).
        profile: the device profile of the predicted speed-ups (``None``: none).
        profile_note: which profile, and why (``resolve_profile``'s line).
        below_impact: the sites under ``min_impact``.
        rule_findings: every rule's own finding, as the rules yielded them.
    """

    model: str
    source: str
    summary: ModelSummary
    findings: list
    rules: list
    graph: Graph = dataclasses.field(repr=False, default=None)
    benchmark: Optional[Measurements] = dataclasses.field(repr=False, default=None)
    min_impact: float = DEFAULT_MIN_IMPACT
    profile: object = dataclasses.field(repr=False, default=None)
    profile_note: str = ""
    below_impact: list = dataclasses.field(repr=False, default_factory=list)
    rule_findings: list = dataclasses.field(repr=False, default_factory=list)

    def __post_init__(self):
        self.regroup(rule_findings(self.findings))

    def __len__(self) -> int:
        return len(self.findings)

    def context(self) -> Context:
        """What the grouping stage needs: graph, summary, profile, benchmark, batches."""
        batches = tuple(getattr(self.benchmark, "batches", None) or DECISION_BATCHES)
        return Context(self.graph, self.summary, self.profile, self.benchmark, batches)

    def regroup(self, findings: Optional[list] = None) -> None:
        """Rebuild the sites from ``findings`` (rule findings; default: the current
        :attr:`rule_findings`), e.g. after dropping some by per-layer ignores or a
        baseline, or after a benchmark; then split them by ``min_impact``."""
        if findings is not None:
            self.rule_findings = rule_findings(findings)
        sites = build_sites(self.rule_findings, self.context())
        self.findings, self.below_impact = split_by_impact(sites, self.min_impact)

    def by_rule(self, selector: str) -> list:
        """The findings of the rule with this code or symbol among the reported sites'
        alternatives (the rule's own findings)."""
        return [f for f in rule_findings(self.findings) if selector in (f.code, f.symbol)]

    def at(self, layer: str) -> list:
        """The findings reported at ``layer``."""
        return [f for f in self.findings if f.layer == layer]

    def attach_benchmark(self, bench: Measurements) -> None:
        """Attach a benchmark's figures (``bench``) and rebuild the sites: the measured
        speed-ups now decide each site's recommendation.  The rules' findings are not
        changed."""
        self.benchmark = bench
        self.regroup()

    def measurements_of(self, finding: Finding) -> dict:
        """The finding's measurements: the rule's, then the attached benchmark's."""
        return merged_measurements(finding, self.benchmark)

    def savings(self) -> Savings:
        """What the recommended fixes of the reported sites save, each site once
        (checked against the model's totals: see :func:`~.sites.check_savings`)."""
        return check_savings(self.findings, self.summary, self.graph)

    def to_dict(self, per_node: bool = False) -> dict:
        """JSON-ready report (``per_node`` adds the summary's per-node rows)."""
        return {"model": self.model, "source": self.source, "rules": list(self.rules),
                "summary": self.summary.to_dict(per_node=per_node),
                "findings": [finding_dict(f, self.benchmark) for f in self.findings],
                "min_impact": self.min_impact, "below_min_impact": len(self.below_impact),
                "savings": self.savings().to_dict(),
                "device_profile": profile_dict(self.profile, self.profile_note)}


def profile_dict(profile, note: str = "") -> Optional[dict]:
    """The device profile of a report's predictions, JSON-ready (``None``: none)."""
    if profile is None:
        return None
    return {"name": profile.name, "why": note, "error": profile.error_summary()}
