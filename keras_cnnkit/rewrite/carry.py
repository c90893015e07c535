"""Fixes applied to a live model with its trained weights carried into the new layers.

:func:`rewrite_with_weights` chooses the findings to apply (:func:`select_findings`),
plans how each carries weights (:func:`~keras_cnnkit.rewrite.weights.plan_weights`,
at the chosen rank), rebuilds the model with those weights
(:func:`~keras_cnnkit.rewrite.apply.rewrite_model` with one
:class:`~keras_cnnkit.rewrite.apply.Substitution` per plan), measures the fidelity of
every fix and of the whole model (:mod:`~keras_cnnkit.rewrite.fidelity`), refuses the
fixes whose own error exceeds ``max_error``, and refits the approximate fixes on
calibration data when given (:mod:`~keras_cnnkit.rewrite.refit`), measuring again.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Optional

import keras

from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.lint.findings import Finding
from keras_cnnkit.rewrite import fidelity as fid
from keras_cnnkit.rewrite import fold
from keras_cnnkit.rewrite.apply import (RewriteError, Substitution, rewrite_model,
                                        substitution_for)
from keras_cnnkit.rewrite.codegen import node_layers
from keras_cnnkit.rewrite.plan import select_findings
from keras_cnnkit.rewrite.refit import refit_fixes
from keras_cnnkit.rewrite.weights import EXACT, WeightPlan, WeightsOf, plan_weights


def resolve_layer(model: keras.Model, ir_name: str) -> tuple:
    """``(layer, part)``: the Keras layer behind IR node ``ir_name`` of ``model``'s live
    graph, and which part of it the node is (``"all"``; ``"depthwise"`` or
    ``"pointwise"`` for the two nodes of a separable conv).

    Raises:
        KeyError: no such layer (or a nesting this function does not follow).
    """
    parts = [p.split("@")[0] for p in ir_name.split("/")]
    try:
        layer = model.get_layer(parts[0])
    except ValueError:
        raise KeyError(ir_name) from None
    for i, part in enumerate(parts[1:], start=1):
        if isinstance(layer, keras.Model):
            try:
                layer = layer.get_layer(part)
            except ValueError:
                raise KeyError(ir_name) from None
        elif part == "depthwise" and i == len(parts) - 1 and _separable(layer):
            return layer, "depthwise"
        elif hasattr(layer, "_op_layers") and part in layer._op_layers:  # pylint: disable=protected-access
            layer = layer._op_layers[part]  # pylint: disable=protected-access
        else:
            raise KeyError(ir_name)
    return layer, "pointwise" if _separable(layer) else "all"


def _separable(layer) -> bool:
    return type(layer).__name__ in ("SeparableConv1D", "SeparableConv2D")


def layer_weights(model: keras.Model) -> WeightsOf:
    """``weights_of(ir_name)`` for :func:`plan_weights`: the numpy weights of the layer
    behind an IR node of ``model`` (a separable conv's depthwise or pointwise part)."""
    def weights_of(ir_name: str) -> list:
        layer, part = resolve_layer(model, ir_name)
        weights = layer.get_weights()
        if part == "depthwise":
            return weights[:1]
        if part == "pointwise":
            return weights[1:]
        return weights
    return weights_of


@dataclasses.dataclass
class AppliedFix:
    """One fix in the rebuilt model.

    Attributes:
        plan: how it carried weights.
        layers: fragment node → its Keras layers in the rebuilt model, in call order.
        refit: what the data-aware refit did (``""`` when none ran).
        before_refit / after_refit: its
            :class:`~keras_cnnkit.rewrite.fidelity.FixFidelity` (subgraph error on the
            original's inputs, and in the fixed model) with the carried weights, and
            after the refit (``None`` when no refit ran).
    """

    plan: WeightPlan
    layers: dict = dataclasses.field(default_factory=dict)
    refit: str = ""
    before_refit: Optional[fid.FixFidelity] = None
    after_refit: Optional[fid.FixFidelity] = None

    @property
    def measured(self) -> Optional[fid.FixFidelity]:
        """The final measurement: after the refit if one ran."""
        return self.after_refit or self.before_refit

    @property
    def error(self) -> Optional[float]:
        """The final subgraph error on the original's inputs."""
        return self.measured.error if self.measured else None

    @property
    def finding(self) -> Finding:
        """The applied finding (fragment and costs at the chosen rank)."""
        return self.plan.finding

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        def part(m: Optional[fid.FixFidelity]) -> Optional[dict]:
            return None if m is None else {"subgraph_error": m.error,
                                           "in_model_error": m.in_model, "reason": m.reason}
        return dict(self.plan.to_dict(), fidelity=part(self.measured),
                    fidelity_before_refit=part(self.before_refit) if self.after_refit else None,
                    refit=self.refit)


@dataclasses.dataclass
class CarriedRewrite:
    """What :func:`rewrite_with_weights` did.

    Attributes:
        model: the fixed model.
        fixes: the applied fixes, in model order.
        skipped: findings not applied (:class:`~keras_cnnkit.rewrite.plan.Skipped`).
        refused: ``(plan, error)`` of the fixes left out because their subgraph error
            with the carried weights exceeded ``max_error``.
        fidelity / fidelity_before_refit: whole-model and per-fix fidelity at the end,
            and before the refit (``None`` when no refit ran or nothing was measured).
        data: the :class:`~keras_cnnkit.rewrite.fidelity.CalibrationData` measured on.
    """

    model: keras.Model
    fixes: list
    skipped: list
    refused: list = dataclasses.field(default_factory=list)
    fidelity: Optional[fid.Fidelity] = None
    fidelity_before_refit: Optional[fid.Fidelity] = None
    data: Optional[fid.CalibrationData] = None

    @property
    def needs_retraining(self) -> bool:
        """True when some applied fix is not exact."""
        return any(f.plan.carried != EXACT for f in self.fixes)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {
            "fixes": [f.to_dict() for f in self.fixes],
            "refused": [dict(p.to_dict(), subgraph_error=e) for p, e in self.refused],
            "fidelity": self.fidelity.to_dict() if self.fidelity else None,
            "fidelity_before_refit": (self.fidelity_before_refit.to_dict()
                                      if self.fidelity_before_refit else None),
        }

    def format_text(self) -> str:
        """One line per fix (how it carried weights, saving, subgraph error), then the
        whole model's fidelity."""
        lines = []
        for fix in self.fixes:
            f = fix.finding
            lines.append(f"fixed {fix.plan.label} (weights {fix.plan.how}): FLOPs "
                         f"{_num(f.flops_before)} → {_num(f.flops_after)}"
                         f"{_errors(fix.measured, fix.before_refit if fix.after_refit else None)}")
        for plan, error in self.refused:
            lines.append(f"refused {plan.label} (weights {plan.how}): subgraph error "
                         f"{error:.2%} exceeds --max-error")
        if self.fidelity_before_refit is not None:
            lines.append("before the refit: " + self.fidelity_before_refit.summary())
        if self.fidelity is not None:
            lines.append(self.fidelity.summary())
            if self.fidelity.random:
                lines.append(fid.WEAK_PROXY)
        return "\n".join(lines)


def _num(value) -> str:
    return "?" if value is None else f"{value:,}"


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def _errors(final: Optional[fid.FixFidelity], before: Optional[fid.FixFidelity]) -> str:
    if final is None:
        return ""
    if final.error is None and final.in_model is None:
        return f"; error not measured ({final.reason})"
    text = f"; subgraph error {_pct(final.error)}, in the fixed model {_pct(final.in_model)}"
    if before is not None:
        text += (f" (with the carried weights, before the refit: {_pct(before.error)}, "
                 f"{_pct(before.in_model)})")
    return text


def substitution(plan: WeightPlan, graph: Graph, dtype: Any = None,
                 record: Optional[dict] = None) -> Substitution:
    """The :class:`Substitution` applying ``plan``; the layers made for each fragment
    node are recorded in ``record`` (node → layers) when given."""
    if plan.delegate:
        sub = substitution_for(plan.finding, graph, dtype=dtype)
    else:
        rep = plan.finding.replacement
        sub = Substitution(list(rep.removed), rep.output,
                           [(n.name, _source(n, dtype), list(n.inputs)) for n in rep.nodes],
                           carry=_carry(plan), finding=plan.finding,
                           preserves_function=plan.carried == EXACT)
    if record is not None:
        sub.entries = [(name, _recording(name, source, record), inputs)
                       for name, source, inputs in sub.entries]
    return sub


def _source(node, dtype) -> Callable:
    def make(_originals: dict, name_for: Callable[[str], str]) -> list:
        return node_layers(node, name=name_for(node.name), dtype=dtype)
    return make


def _recording(name: str, source, record: dict) -> Callable:
    def make(originals: dict, name_for: Callable[[str], str]) -> list:
        layers = source(originals, name_for) if callable(source) else source
        record[name] = list(layers)
        return layers
    return make


def _carry(plan: WeightPlan) -> Callable[[dict, dict], None]:
    def carry(_originals: dict, new: dict) -> None:
        for name, arrays in plan.weights.items():
            layer = new[name]
            shapes = [tuple(w.shape) for w in layer.weights]
            if shapes != [a.shape for a in arrays]:
                raise RewriteError(f"{plan.label}: weights {[a.shape for a in arrays]} do "
                                   f"not fit layer {layer.name!r} {shapes}")
            layer.set_weights(arrays)
        if plan.bias_to_batchnorm is not None:
            bn, bias = plan.bias_to_batchnorm
            fold.fold_bias_into_bn(bias, new[bn])
    return carry


def plan_findings(model: keras.Model, findings: Iterable[Finding], select=None,
                  rank=None, graph: Optional[Graph] = None) -> tuple:
    """``(plans, skipped)``: the conflict-free findings chosen for ``model`` (see
    :func:`select_findings`), each with its :class:`WeightPlan`, in model order."""
    if graph is None:
        from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
        graph = graph_from_keras(model)
    chosen, skipped = select_findings(list(findings), select=select, graph=graph)
    order = {name: i for i, name in enumerate(graph.nodes)}
    weights_of = layer_weights(model)
    plans = [plan_weights(f, graph, weights_of, rank) for f in chosen]
    plans.sort(key=lambda p: order.get(p.finding.replacement.removed[-1], len(order)))
    return plans, skipped


def _unmerged(refused: list, skipped: list, model: keras.Model, graph: Graph, rank) -> list:
    """The plans of the bias drops that were merged into a refused fix: applied on their
    own instead (exact), their entries in ``skipped`` removed."""
    targets = [plan.original for plan, _ in refused]
    plans = []
    for skip in list(skipped):
        if skip.merged_into is not None and any(skip.merged_into is t for t in targets):
            skipped.remove(skip)
            plans.append(plan_weights(skip.finding, graph, layer_weights(model), rank))
    return plans


def apply_plans(model: keras.Model, plans: list, graph: Graph, dtype: Any = None) -> tuple:
    """``(fixed model, [AppliedFix])``: ``model`` rebuilt with ``plans``."""
    records = [{} for _ in plans]
    subs = [substitution(p, graph, dtype=dtype, record=r) for p, r in zip(plans, records)]
    result = rewrite_model(model, substitutions=subs, graph=graph, dtype=dtype)
    return result.model, [AppliedFix(p, r) for p, r in zip(plans, records)]


def rewrite_with_weights(model: keras.Model, findings: Iterable[Finding], select=None,
                         rank=None, graph: Optional[Graph] = None, calibration=None,
                         refit: bool = True, max_error: Optional[float] = None,
                         samples: int = 64, dtype: Any = None, seed: int = 0,
                         ridge: float = 1e-4) -> CarriedRewrite:
    """Apply the findings' fixes to ``model`` with its weights carried, and measure them.

    Args:
        model: a built Functional or Sequential model (not modified).
        findings: findings of a lint of ``model``.
        select: codes, code prefixes or symbols of the findings to apply (None: all).
        rank: the rank rule of the approximate fixes (``None``: the rule's width; an
            integer; ``"energy:0.95"``; ``"ratio:0.25"``).
        graph: the IR the findings were made on (default: ``model``'s).
        calibration: inputs to measure on and refit with: an array, an ``.npz`` file, a
            directory of images (:func:`~keras_cnnkit.rewrite.fidelity.calibration_inputs`);
            ``None`` measures on ``samples`` random inputs (a weak proxy) and refits
            nothing.
        refit: refit the approximate fixes by least squares on the calibration data.
        max_error: refuse the fixes whose subgraph relative error with the carried
            weights (on the original's inputs, before any refit: the fix's own error)
            exceeds it; the model is rebuilt without them.
        samples: random inputs to draw when there is no calibration data.
        dtype: dtype policy of the new layers.
        seed: seed of the random inputs and of the refit's row sampling.
        ridge: the refit's ridge, relative to the mean squared feature.
    """
    if graph is None:
        from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
        graph = graph_from_keras(model)
    plans, skipped = plan_findings(model, findings, select=select, rank=rank, graph=graph)
    data = fid.calibration_inputs(model, calibration, samples=samples, seed=seed)
    fixed, fixes = apply_plans(model, plans, graph, dtype=dtype)
    before = fid.measure(model, fixed, fixes, data, graph)
    refused = [(fix.plan, m.error) for fix, m in zip(fixes, before.fixes)
               if max_error is not None and m.error is not None and m.error > max_error]
    if refused:
        kept = [fix.plan for fix in fixes if all(fix.plan is not p for p, _ in refused)]
        kept += _unmerged(refused, skipped, model, graph, rank)
        order = {name: i for i, name in enumerate(graph.nodes)}
        kept.sort(key=lambda p: order.get(p.finding.replacement.removed[-1], len(order)))
        fixed, fixes = apply_plans(model, kept, graph, dtype=dtype)
        before = fid.measure(model, fixed, fixes, data, graph)
    after = None
    if refit and not data.random and any(f.plan.refit_node for f in fixes):
        refit_fixes(model, fixed, fixes, data.x, ridge=ridge, seed=seed)
        after = fid.measure(model, fixed, fixes, data, graph)
    for i, fix in enumerate(fixes):
        fix.before_refit = before.fixes[i]
        fix.after_refit = after.fixes[i] if after is not None else None
    return CarriedRewrite(model=fixed, fixes=fixes, skipped=skipped, refused=refused,
                          fidelity=after or before,
                          fidelity_before_refit=before if after is not None else None,
                          data=data)
