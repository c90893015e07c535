"""Measurements the latency model is fitted and checked on, and their JSON form.

* :class:`Observation`: one fragment (IR nodes) timed as its own compiled call at one
  batch size: what a fit sees.
* :class:`Case`: a before/after pair timed side by side (a lint fix, as
  ``benchmarks/bench_rules.py`` measures it): what the error figures are computed on.

Nodes are stored as plain dicts (:func:`nodes_to_json`), so a measurement file made on a
machine without TensorFlow (a lent GPU) can be fitted anywhere.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from keras_cnnkit.analysis.ir import Node


def _tuples(value):
    """JSON lists back into tuples (shapes, kernels, pads), recursively."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def node_to_json(node: Node) -> dict:
    """A JSON-ready dict of ``node``."""
    return {"name": node.name, "op": node.op, "inputs": list(node.inputs),
            "input_shapes": [None if s is None else list(s) for s in node.input_shapes],
            "output_shape": None if node.output_shape is None else list(node.output_shape),
            "attrs": node.attrs, "params": node.params, "layer": node.layer,
            "source_class": node.source_class}


def node_from_json(data: dict) -> Node:
    """The :class:`Node` of :func:`node_to_json`'s dict."""
    return Node(name=data["name"], op=data["op"], inputs=list(data.get("inputs", [])),
                input_shapes=[_tuples(s) for s in data.get("input_shapes", [])],
                output_shape=_tuples(data.get("output_shape")),
                attrs=_tuples(data.get("attrs", {})), params=data.get("params"),
                layer=data.get("layer", ""), source_class=data.get("source_class", ""))


def nodes_to_json(nodes) -> list:
    """:func:`node_to_json` of each node."""
    return [node_to_json(n) for n in nodes]


def nodes_from_json(data) -> list:
    """:func:`node_from_json` of each dict."""
    return [node_from_json(d) for d in data]


@dataclasses.dataclass
class Observation:
    """One fragment timed on its own.

    Attributes:
        nodes: the fragment's IR nodes (topological order).
        batch: the batch size.
        ms: the measured median time of one call.
        label: what was measured (for reports).
        group: the hold-out unit (a shape key: all batch sizes and both sides of a case
            share it, so a held-out shape is never seen by the fit).
    """

    nodes: list
    batch: int
    ms: float
    label: str = ""
    group: str = ""

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"nodes": nodes_to_json(self.nodes), "batch": self.batch, "ms": self.ms,
                "label": self.label, "group": self.group}

    @classmethod
    def from_dict(cls, data: dict) -> "Observation":
        """The observation of :meth:`to_dict`'s dict."""
        return cls(nodes_from_json(data["nodes"]), int(data["batch"]), float(data["ms"]),
                   data.get("label", ""), data.get("group", ""))


@dataclasses.dataclass
class Case:
    """A before/after pair timed side by side at one batch size.

    Attributes:
        label: the case (rule and shape).
        group: the hold-out unit (see :class:`Observation`).
        batch: the batch size.
        before / after: the two fragments' nodes.
        before_ms / after_ms: their measured medians.
        rule: the lint rule whose fix this is, if any.
    """

    label: str
    group: str
    batch: int
    before: list
    after: list
    before_ms: float
    after_ms: float
    rule: Optional[str] = None

    @property
    def ratio(self) -> float:
        """Measured ``after / before``."""
        return self.after_ms / self.before_ms

    def observations(self) -> list:
        """The two sides as :class:`Observation` s."""
        return [Observation(self.before, self.batch, self.before_ms, f"{self.label} before",
                            self.group),
                Observation(self.after, self.batch, self.after_ms, f"{self.label} after",
                            self.group)]

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"label": self.label, "group": self.group, "batch": self.batch,
                "rule": self.rule, "before": nodes_to_json(self.before),
                "after": nodes_to_json(self.after), "before_ms": self.before_ms,
                "after_ms": self.after_ms}

    @classmethod
    def from_dict(cls, data: dict) -> "Case":
        """The case of :meth:`to_dict`'s dict."""
        return cls(data["label"], data.get("group", ""), int(data["batch"]),
                   nodes_from_json(data["before"]), nodes_from_json(data["after"]),
                   float(data["before_ms"]), float(data["after_ms"]), data.get("rule"))


def write_measurements(path: str, meta: dict, observations=(), cases=()) -> str:
    """Write a measurement file: ``meta`` (device, backend, dtype, date...) with the
    observations and cases as JSON (atomically); returns the path."""
    out = {**meta, "observations": [o.to_dict() for o in observations],
           "cases": [c.to_dict() for c in cases]}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(out, fh)
    os.replace(tmp, path)
    return path


def read_measurements(path: str) -> tuple:
    """``(meta, observations, cases)`` of a file :func:`write_measurements` wrote."""
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    observations = [Observation.from_dict(d) for d in data.pop("observations", [])]
    cases = [Case.from_dict(d) for d in data.pop("cases", [])]
    return data, observations, cases
