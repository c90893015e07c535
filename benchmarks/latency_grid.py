"""The rule grid as latency-model cases: each recorded before/after row with its IR.

``benchmarks/results/rules_*.json`` records, per rule, shape and batch, the measured
medians of a finding's removed nodes ('before') and its replacement fragment ('after'),
but not the fragments themselves.  They are rebuilt here exactly as
``bench_rules.py`` made them (the rule's pattern model at that shape, linted with the
one rule), and each rebuilt fragment's FLOPs are checked against the row's recorded
``flops_before`` / ``flops_after``: a rule whose fix has changed since the recording is
reported, not silently fitted on.

Hold-out unit: the shape (``"<channels>x<map>"``); both batch sizes and both sides of a
shape's cases share it.  :data:`HELD_OUT` names the shapes no shipped profile was fitted
on.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.dirname(HERE) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

#: Shapes of the full grid held out of every fit: at each FLOP level of a k×k conv
#: (C·S = 1792, 3584, 7168) one or two shapes, with small and large channel counts.
HELD_OUT_FULL = ("64x28", "32x112", "512x7", "128x56", "1024x7")
#: Shape of the quick (CPU) grid held out of the generic CPU profile's fit.
HELD_OUT_QUICK = ("64x14",)
#: Every held-out shape.
HELD_OUT = HELD_OUT_FULL + HELD_OUT_QUICK
#: The named VGG16 cases form one group, held out too.
NAMED_GROUP = "vgg16"


def shape_group(channels: int, size: int) -> str:
    """The hold-out group of a grid shape."""
    return f"{channels}x{size}"


class GridFragments:
    """Rebuilds (and caches) the before/after IR fragments of rule-grid cases."""

    def __init__(self):
        import bench_rules  # pylint: disable=import-error
        self._bench = bench_rules
        self._patterns = bench_rules._patterns()  # pylint: disable=protected-access
        self._cache: dict = {}
        self._vgg = None

    def finding(self, rule: str, channels: int, size: int) -> tuple:
        """``(graph, finding)`` of the rule's pattern model at one grid shape (the
        finding is ``None`` when the rule does not fire there)."""
        key = ("finding", rule, channels, size)
        if key not in self._cache:
            self._cache[key] = self._bench.finding_for(
                self._patterns[rule](channels, size), rule)
        return self._cache[key]

    def grid(self, rule: str, channels: int, size: int) -> Optional[tuple]:
        """``(before nodes, after nodes, flops_before, flops_after)`` of one grid case,
        or ``None`` when the rule does not fire there."""
        graph, finding = self.finding(rule, channels, size)
        return None if finding is None else _sides(graph, finding)

    def named(self, rule: str, layer: str) -> Optional[tuple]:
        """The same for a named VGG16 case."""
        key = ("named", rule, layer)
        if key not in self._cache:
            if self._vgg is None:
                self._vgg = self._bench.named_cases()[0][2]()
            graph, finding = self._bench._named_finding(  # pylint: disable=protected-access
                self._vgg, rule, layer)
            self._cache[key] = None if finding is None else _sides(graph, finding)
        return self._cache[key]


def _sides(graph, finding) -> tuple:
    from keras_cnnkit.latency.model import replacement_sides
    before, after = replacement_sides(graph, finding.replacement)
    return before, after, finding.flops_before, finding.flops_after


def record_cases(record: dict, fragments: Optional[GridFragments] = None,
                 named: bool = True) -> tuple:
    """``(cases, problems)``: a :class:`~keras_cnnkit.latency.data.Case` per row of a
    ``bench_rules`` device record (grid rows, and named rows with ``named``), and a
    line per row that could not be rebuilt or whose FLOPs no longer match."""
    from keras_cnnkit.latency.data import Case
    fragments = fragments or GridFragments()
    cases, problems = [], []
    rows = [("grid", r) for r in record.get("cases", [])]
    if named:
        rows += [("named", r) for r in record.get("named", [])]
    for kind, row in rows:
        if kind == "grid":
            sides = fragments.grid(row["rule"], row["channels"], row["map"])
            group = shape_group(row["channels"], row["map"])
            label = f"{row['rule']} C={row['channels']} {row['map']}x{row['map']}"
        else:
            sides = fragments.named(row["rule"], row["layer"])
            group, label = NAMED_GROUP, row["case"]
        if sides is None:
            problems.append(f"{label}: the rule no longer fires")
            continue
        before, after, flops_before, flops_after = sides
        if (flops_before, flops_after) != (row["flops_before"], row["flops_after"]):
            problems.append(f"{label}: FLOPs {flops_before}/{flops_after} now, "
                            f"{row['flops_before']}/{row['flops_after']} when measured")
            continue
        cases.append(Case(label, group, row["batch"], before, after, row["before_ms"],
                          row["after_ms"], row["rule"]))
    return cases, problems


def load_record(path: str) -> dict:
    """A ``bench_rules`` device record from its JSON file."""
    import json
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
