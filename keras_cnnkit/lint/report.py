"""The result of linting one model: its cost summary and its findings.

Findings are sorted by the FLOPs their fix would save (largest first; advisory findings,
which carry no figures, last), then by code and layer, so that a report reads
"biggest win first" and is stable from run to run.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Protocol

from keras_cnnkit.analysis.cost import ModelSummary
from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.lint.findings import Finding, Replacement, Severity


def flop_saving(finding: Finding) -> Optional[int]:
    """``flops_before − flops_after``, or ``None`` where the finding has no figures."""
    if finding.flops_before is None or finding.flops_after is None:
        return None
    return finding.flops_before - finding.flops_after


def sort_findings(findings) -> list:
    """Largest FLOP saving first; findings without figures after; ties by code, layer."""
    def key(f: Finding):
        saving = flop_saving(f)
        return (saving is None, -(saving or 0), f.code, f.layer, f.node)
    return sorted(findings, key=key)


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


#: The measured figures of a benchmarked finding (``cnnkit-lint --benchmark``) that
#: :func:`finding_dict` lifts out of ``measurements`` to the finding's top level: the
#: median forward-pass times at the largest batch measured, their ratio, the device.
MEASUREMENT_FIELDS = ("latency_before_ms", "latency_after_ms", "speedup", "device")


class Measurements(Protocol):
    """A benchmark's figures per finding, as the report layer attaches them.

    :class:`keras_cnnkit.bench.BenchResult` is one.  A benchmark never edits a
    :class:`Finding`: the report layer merges these figures into the finding's
    ``measurements`` and appends the note to its message when it renders the finding.
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


def finding_dict(finding: Finding, bench: Optional[Measurements] = None) -> dict:
    """Every field of a finding, JSON-ready; a measured finding also carries the
    :data:`MEASUREMENT_FIELDS` at top level (every run stays under ``measurements``)."""
    out = {name: _json(getattr(finding, name)) for name in FINDING_FIELDS}
    out["message"] = finding_message(finding, bench)
    out.update(measured_fields(finding, bench))
    out["needs_retraining"] = finding.needs_retraining
    out["measurements"] = _json(merged_measurements(finding, bench))
    out["replacement"] = replacement_dict(finding.replacement)
    return out


@dataclasses.dataclass
class Report:
    """What :func:`keras_cnnkit.lint` returns.

    Attributes:
        model: the model's name.
        source: where it came from (a path, or ``"<keras model>"``).
        summary: per-node and total params, MACs, FLOPs, memory, unknown-cost nodes.
        findings: the findings, largest FLOP saving first (see :func:`sort_findings`).
        rules: the codes of the rules that ran.
        graph: the IR the rules saw (what fixes rewrite).
        benchmark: the measured figures attached by :meth:`attach_benchmark`, or None.
    """

    model: str
    source: str
    summary: ModelSummary
    findings: list
    rules: list
    graph: Graph = dataclasses.field(repr=False, default=None)
    benchmark: Optional[Measurements] = dataclasses.field(repr=False, default=None)

    def __post_init__(self):
        self.findings = sort_findings(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def by_rule(self, selector: str) -> list:
        """The findings of the rule with this code or symbol."""
        return [f for f in self.findings if selector in (f.code, f.symbol)]

    def at(self, layer: str) -> list:
        """The findings reported at ``layer``."""
        return [f for f in self.findings if f.layer == layer]

    def attach_benchmark(self, bench: Measurements, order: Optional[list] = None) -> None:
        """Attach a benchmark's figures (``bench``); ``order``: the findings re-ordered
        by measured saving.  The findings themselves are not changed."""
        self.benchmark = bench
        if order is not None:
            self.findings = list(order)

    def measurements_of(self, finding: Finding) -> dict:
        """The finding's measurements: the rule's, then the attached benchmark's."""
        return merged_measurements(finding, self.benchmark)

    def to_dict(self, per_node: bool = False) -> dict:
        """JSON-ready report (``per_node`` adds the summary's per-node rows)."""
        return {"model": self.model, "source": self.source, "rules": list(self.rules),
                "summary": self.summary.to_dict(per_node=per_node),
                "findings": [finding_dict(f, self.benchmark) for f in self.findings]}
