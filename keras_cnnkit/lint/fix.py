"""``cnnkit-lint --fix``: rebuild a model file with its findings' replacements.

:func:`fix_file` first reads the file statically within the budgets
(:mod:`keras_cnnkit.analysis.frontends.keras_gate`: a file over budget never reaches
Keras), then loads the model safely (``safe_mode=True``: a ``Lambda`` or an unknown
class is refused, never executed), lints it, applies the chosen findings' replacements
(:mod:`keras_cnnkit.rewrite`), optionally folds batch norms for inference, and writes the
result atomically.  Loading and writing go through :mod:`keras_cnnkit.io_guard`: the
output is never an input (not even with ``force``), an existing output is replaced only
with ``force``, and the file gets the umask's permissions.

Weights (issue 19).  By default the fixes carry the trained weights into their new
layers where a method exists (:func:`keras_cnnkit.rewrite.rewrite_with_weights`): exact
fixes copy them, approximate ones decompose them (truncated SVD, Tucker-2, spatial SVD,
depthwise × pointwise SVD, stacked-kernel least squares, GAP head) at the rule's width or
``rank``, and the rest are re-initialised.  Every applied fix's fidelity is measured: the
relative output error of the replaced subgraph, the whole model's output error and, for a
classifier, the top-1 agreement with the original, on ``calibration`` data (which also
refits the approximate fixes by least squares) or else on random inputs, a weak proxy
that the summary says it is.  ``max_error`` refuses the fixes whose subgraph error
exceeds it; ``finetune`` distils the fixed model from the original
(:func:`keras_cnnkit.rewrite.distill`) before it is written.

``FixResult.to_dict()`` (``cnnkit-lint --fix --format json``) is its own document, not
the lint report: no JSON Schema covers it.  Its keys: ``input``, ``output``,
``params_before/after``, ``flops_before/after``, ``expected_params_after``,
``folded_batchnorms``; ``applied`` (each fix: ``code``, ``symbol``, ``layer``,
``needs_retraining``, ``params_before/after``, ``flops_before/after`` at the chosen rank,
``weights`` (``exact``, ``approximate: <method> rank <r>`` or ``reinitialised``),
``weights_note``, ``ranks``, ``fidelity`` (``subgraph_error``, ``in_model_error``,
``reason``) and ``fidelity_before_refit`` (or ``null``)); ``skipped`` (refused fixes among
them, with their ``subgraph_error``), ``merged``, ``remaining``; ``fidelity`` (``data``,
``random_inputs``, ``note``, ``output_error``, ``top1_agreement``, ``fixes``),
``fidelity_before_refit``, ``rank``, ``max_error``, ``finetune`` (``data``, ``epochs``,
``loss``, ``fidelity``, or ``null``), ``weights_carried`` and ``needs_retraining``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from typing import Any, Callable, Iterable, Optional

from keras_cnnkit.errors import PathLike
from keras_cnnkit.io_guard import (OutputFileError, check_output_path, load_keras_model,
                                   write_atomic)

__all__ = ["SAVE_SUFFIXES", "FixResult", "OutputFileError", "fix_file", "fix_steps",
           "still_reported"]

#: Output suffixes Keras can save to.
SAVE_SUFFIXES = (".keras", ".h5")
#: The stages :func:`fix_file` reports to its progress bar, in order (the folding stage
#: only with ``fold_bn``).
STAGES = ("loading the model", "linting", "applying the fixes and measuring them",
          "fine-tuning (distillation)", "folding batch norms", "writing",
          "re-linting the fixed model")


def fix_steps(fold_bn: bool = False, finetune: bool = False) -> int:
    """How many stages :func:`fix_file` reports to its ``progress``."""
    return len(STAGES) - (0 if fold_bn else 1) - (0 if finetune else 1)


@dataclasses.dataclass
class FixResult:
    """What :func:`fix_file` did.

    Attributes:
        input_path / output_path: the files.
        params_before / params_after: the whole model's parameter counts
            (``count_params()``).
        flops_before / flops_after: the whole model's FLOPs (the linter's cost model).
        expected_params_after: ``params_before − Σ params_before + Σ params_after`` over
            the applied findings, as the lint report estimated them (BN folding aside).
        applied: the findings whose replacements were applied.
        skipped: the findings not applied, with the reason (:class:`~keras_cnnkit.rewrite.Skipped`).
        remaining: findings of the re-lint of the fixed model that repeat an applied one
            (see :func:`still_reported`; empty when every fix took).
        folded_batchnorms: batch norms folded into their convs (``fold_bn``).
        carried: the :class:`~keras_cnnkit.rewrite.carry.CarriedRewrite` when the
            weights were carried (how each fix carried them, its fidelity), else ``None``.
        refused: ``(finding, subgraph error)`` of the fixes refused by ``max_error``.
        max_error: the ``max_error`` threshold, or ``None``.
        finetune: ``{"data", "epochs", "loss", "fidelity"}`` after a distillation, or
            ``None``.
    """

    input_path: str
    output_path: str
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    expected_params_after: int
    applied: list
    skipped: list
    remaining: list
    folded_batchnorms: int = 0
    carried: Any = None
    refused: list = dataclasses.field(default_factory=list)
    max_error: Optional[float] = None
    finetune: Optional[dict] = None

    @property
    def needs_retraining(self) -> list:
        """The applied findings that change what the model computes."""
        return [f for f in self.applied if f.needs_retraining]

    def _fixes(self) -> dict:
        """``id(applied finding)`` → its :class:`~keras_cnnkit.rewrite.carry.AppliedFix`."""
        if self.carried is None:
            return {}
        return {id(fix.finding): fix for fix in self.carried.fixes}

    def to_dict(self) -> dict:
        """JSON-ready fields (see the module docstring)."""
        def brief(finding) -> dict:
            return {"code": finding.code, "symbol": finding.symbol, "layer": finding.layer,
                    "needs_retraining": finding.needs_retraining,
                    "params_before": finding.params_before,
                    "params_after": finding.params_after}
        fixes = self._fixes()

        def applied(finding) -> dict:
            out = dict(brief(finding), flops_before=finding.flops_before,
                       flops_after=finding.flops_after)
            fix = fixes.get(id(finding))
            if fix is None:      # not carried: exact fixes copy, the others start afresh
                return dict(out, weights="reinitialised" if finding.needs_retraining
                            else "exact", weights_note="", ranks={}, fidelity=None,
                            fidelity_before_refit=None)
            part = fix.to_dict()
            return dict(out, weights=fix.plan.how, weights_note=fix.plan.note,
                        ranks=dict(fix.plan.ranks), fidelity=part["fidelity"],
                        fidelity_before_refit=part["fidelity_before_refit"])
        carried = self.carried
        refused = {id(f): e for f, e in self.refused}
        return {
            "input": self.input_path, "output": self.output_path,
            "params_before": self.params_before, "params_after": self.params_after,
            "flops_before": self.flops_before, "flops_after": self.flops_after,
            "expected_params_after": self.expected_params_after,
            "folded_batchnorms": self.folded_batchnorms,
            "applied": [applied(f) for f in self.applied],
            "skipped": [dict(brief(s.finding), reason=s.reason,
                             **({"subgraph_error": refused[id(s.finding)]}
                                if id(s.finding) in refused else {}))
                        for s in self.skipped
                        if s.finding.replacement is not None and s.merged_into is None],
            "merged": [dict(brief(s.finding), into=brief(s.merged_into), reason=s.reason)
                       for s in self.skipped if s.merged_into is not None],
            "remaining": [brief(f) for f in self.remaining],
            "weights_carried": carried is not None,
            "rank": str(carried.fixes[0].plan.rank_rule) if carried and carried.fixes else None,
            "max_error": self.max_error,
            "fidelity": (carried.fidelity.to_dict()
                         if carried is not None and carried.fidelity else None),
            "fidelity_before_refit": (carried.fidelity_before_refit.to_dict()
                                      if carried is not None and carried.fidelity_before_refit
                                      else None),
            "finetune": self.finetune,
            "needs_retraining": bool(self.needs_retraining),
        }

    def format_text(self) -> str:
        """Human-readable summary: each fix with how it carried weights, its saving and
        its fidelity; the whole model's fidelity; then before → after params and FLOPs."""
        lines = []
        fixes = self._fixes()
        for finding in self.applied:
            fix = fixes.get(id(finding))
            if fix is None:
                tag = "needs retraining" if finding.needs_retraining else "exact, weights kept"
                lines.append(f"fixed {finding.code} {finding.symbol} at {finding.layer} ({tag})")
                continue
            lines.append(f"fixed {finding.code} {finding.symbol} at {finding.layer} "
                         f"(weights {fix.plan.how}): FLOPs {_num(finding.flops_before)} → "
                         f"{_num(finding.flops_after)}"
                         + _fix_errors(fix.measured, fix.before_refit
                                       if fix.after_refit and fix.plan.refit_node else None))
        refused = {id(f): e for f, e in self.refused}
        for skip in self.skipped:
            if skip.merged_into is not None:
                lines.append(f"fixed {skip.finding.code} {skip.finding.symbol} at "
                             f"{skip.finding.layer} ({skip.reason})")
            elif id(skip.finding) in refused:
                lines.append(f"refused {skip.finding.code} {skip.finding.symbol} at "
                             f"{skip.finding.layer}: {skip.reason}")
            elif skip.finding.replacement is not None:
                lines.append(f"not fixed {skip.finding.code} {skip.finding.symbol} at "
                             f"{skip.finding.layer}: {skip.reason}")
        lines += self._fidelity_lines()
        if self.folded_batchnorms:
            lines.append(f"folded {self.folded_batchnorms} batch norm(s) into their convs "
                         "(inference only)")
        for finding in self.remaining:
            lines.append(f"still reported after fixing: {finding.code} {finding.symbol} at "
                         f"{finding.layer}")
        lines.append(f"wrote {self.output_path}: params {self.params_before:,} → "
                     f"{self.params_after:,} ({_pct(self.params_before, self.params_after)}), "
                     f"FLOPs {self.flops_before:,} → {self.flops_after:,} "
                     f"({_pct(self.flops_before, self.flops_after)})")
        if self.needs_retraining:
            if self.carried is not None:
                lines.append(f"{len(self.needs_retraining)} fix(es) change the model's "
                             "function by the errors above: fine-tune (--finetune) or "
                             "retrain it, or check its accuracy, before use")
            else:
                lines.append(f"{len(self.needs_retraining)} fix(es) change the model's "
                             "function: retrain (or fine-tune) it before use")
        return "\n".join(lines)

    def _fidelity_lines(self) -> list:
        carried, lines = self.carried, []
        if carried is None:
            return lines
        if carried.fidelity_before_refit is not None:
            lines.append("before the refit: " + carried.fidelity_before_refit.summary())
        if carried.fidelity is not None:
            lines.append(carried.fidelity.summary())
            if carried.fidelity.random:
                lines.append(_weak_proxy())
        if self.finetune is not None:
            after = self.finetune["fidelity"]
            top1 = after.get("top1_agreement")
            lines.append(f"after fine-tuning {self.finetune['epochs']} epoch(s) on "
                         f"{self.finetune['data']}: output error {after['output_error']:.2%}"
                         + ("" if top1 is None else f", top-1 agreement {top1:.1%}")
                         + f" (on {after['data']})")
        return lines


class _DropLegacyH5Advice(logging.Filter):  # pylint: disable=too-few-public-methods
    """Drops Keras' advice, logged through absl when a model is saved as ``.h5``, to save
    as ``.keras`` instead: ``-o out.h5`` asked for that format."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "considered legacy" not in record.getMessage()


@contextlib.contextmanager
def _quiet_legacy_h5_advice():
    """While a fixed model is written: no ``WARNING:absl:`` line about ``.h5`` on stderr
    (the user chose the suffix; every other warning still shows)."""
    drop = _DropLegacyH5Advice()
    logger = logging.getLogger("absl")
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _num(value) -> str:
    return "?" if value is None else f"{value:,}"


def _weak_proxy() -> str:
    from keras_cnnkit.rewrite.fidelity import WEAK_PROXY
    return WEAK_PROXY


def _fix_errors(final, before) -> str:
    """``"; subgraph error 1.2%, in the fixed model 1.5%"`` (and before the refit)."""
    if final is None:
        return ""
    if final.error is None and final.in_model is None:
        return f"; error not measured ({final.reason})"

    def pct(value):
        return "n/a" if value is None else f"{value:.2%}"
    text = f"; subgraph error {pct(final.error)}, in the fixed model {pct(final.in_model)}"
    if before is not None:
        text += (f" (with the carried weights, before the refit: {pct(before.error)}, "
                 f"{pct(before.in_model)})")
    return text


def _pct(before: int, after: int) -> str:
    if not before:
        return "n/a"
    return f"{100.0 * (after - before) / before:+.1f}%"


def _default_lint(model):
    from keras_cnnkit.lint.api import lint
    return lint(model, min_impact=0)


def _graph_of(report, model):
    graph = getattr(report, "graph", None)
    if graph is None:
        from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
        graph = graph_from_keras(model)
    return graph


def _flops(model) -> int:
    from keras_cnnkit.analysis.cost import summarize
    from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
    return summarize(graph_from_keras(model)).flops


def still_reported(applied: Iterable, findings: Iterable) -> list:
    """The rule findings (of a re-lint's sites) that repeat an applied fix: the same rule
    at the fixed layer or at a layer its replacement created."""
    from keras_cnnkit.lint.sites import rule_findings
    from keras_cnnkit.rewrite.codegen import layer_name
    places = set()
    for finding in applied:
        places.add((finding.symbol, finding.layer))
        for node in finding.replacement.nodes:
            places.add((finding.symbol, layer_name(node.name)))
            places.add((finding.symbol, node.name))
    return [f for f in rule_findings(findings) if (f.symbol, f.layer) in places]


def fix_file(in_path: PathLike, out_path: PathLike, select: Optional[Iterable[str]] = None,
             force: bool = False, fold_bn: bool = False,
             lint: Optional[Callable] = None, inputs: Iterable[PathLike] = (),
             progress=None, carry_weights: bool = True, rank=None,
             calibration=None, max_error: Optional[float] = None,
             finetune=None, epochs: int = 1, seed: int = 0) -> FixResult:
    """Apply the lint fixes of model file ``in_path`` and write the result to ``out_path``.

    Args:
        in_path: a ``.keras`` or ``.h5`` model file (never modified).
        out_path: where the fixed model goes (``.keras`` or ``.h5``).
        select: codes, code prefixes or symbols of the alternatives to apply
            (``--fix-select``), slower ones included; ``None`` applies each finding's
            recommended alternative (:func:`keras_cnnkit.lint.sites.fix_choice`).
        force: replace ``out_path`` if it exists.
        fold_bn: also fold batch norms into the preceding convs (inference only).
        lint: ``lint(model) -> Report`` (default :func:`keras_cnnkit.lint.api.lint` with
            ``min_impact=0``: every finding; ``cnnkit-lint --fix`` passes the findings it
            would report).
        inputs: the run's other input files (configuration, baseline): ``out_path`` may
            be none of them, nor ``in_path`` (see :mod:`keras_cnnkit.io_guard`).
        progress: a :class:`keras_cnnkit.progress.Progress` told of each of the
            :func:`fix_steps` stages (:data:`STAGES`), or ``None``.
        carry_weights: carry the trained weights into the new layers where a method
            exists and measure every fix's fidelity (default); ``False`` re-initialises
            the new layers of every fix that changes the function.
        rank: the approximate fixes' rank rule (``None``: the rule's width; an integer;
            ``"energy:0.95"``; ``"ratio:0.25"``); the savings follow it.
        calibration: inputs to measure fidelity on and refit with (an ``.npz`` path, a
            directory of images, an array); ``None``: random inputs, a weak proxy.
        max_error: refuse the fixes whose subgraph relative output error (with the
            carried weights) exceeds it.
        finetune: ``.npz`` path (inputs, optional labels) or ``(x, labels)`` to distil
            the fixed model from the original on, for ``epochs`` epochs, before writing.
        seed: seed of the random inputs, the refit's sampling and the fine-tuning.

    Raises:
        ModelFileError: the input cannot be loaded safely, or is over a budget
            (``BudgetError``: checked by the static reader before Keras loads anything).
        OutputFileError: the output cannot be written (exists, unwritable, bad suffix).
        ValueError: ``rank``, ``calibration`` or ``finetune`` cannot be used.
    """
    from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras

    step = progress.step if progress is not None else (lambda label: None)
    inputs = [in_path, *inputs]
    out = check_output_path(out_path, inputs, force=force, suffixes=SAVE_SUFFIXES)
    check_before_keras(in_path, "--fix")   # within the budgets, before Keras is imported
    from keras_cnnkit.rewrite.apply import fold_batchnorm, rewrite_model

    loading, linting, applying, tuning, folding_bn, writing, relinting = STAGES
    step(loading)
    model = load_keras_model(in_path)
    lint = lint or _default_lint
    step(linting)
    report = lint(model)
    graph = _graph_of(report, model)
    step(applying)
    carried, refused = None, []
    if carry_weights:
        from keras_cnnkit.rewrite.carry import rewrite_with_weights
        from keras_cnnkit.rewrite.plan import Skipped
        carried = rewrite_with_weights(model, report.findings, select=select, rank=rank,
                                       graph=graph, calibration=calibration,
                                       max_error=max_error, seed=seed)
        fixed = carried.model
        applied = [fix.finding for fix in carried.fixes]
        refused = [(plan.finding, error) for plan, error in carried.refused]
        skipped = list(carried.skipped) + [
            Skipped(finding, f"relative output error {error:.2%} of the replaced subgraph "
                             f"exceeds --max-error {max_error:g}")
            for finding, error in refused]
    else:
        result = rewrite_model(model, report.findings, select=select, graph=graph)
        fixed, applied, skipped = result.model, result.applied_findings, result.skipped
    tuned = None
    if finetune is not None:
        step(tuning)
        fixed, tuned = _finetune(model, fixed, finetune, epochs, seed, carried)
    folded = 0
    if fold_bn:
        step(folding_bn)
        folding = fold_batchnorm(fixed)
        fixed, folded = folding.model, len(folding.applied)
    step(writing)
    with _quiet_legacy_h5_advice():
        write_atomic(out, fixed.save, inputs, force=force, suffixes=SAVE_SUFFIXES)
    params_before = int(model.count_params())
    expected = params_before + sum((f.params_after or 0) - (f.params_before or 0)
                                   for f in applied)
    step(relinting)
    remaining = still_reported(applied, lint(fixed).findings)
    return FixResult(
        input_path=os.fspath(in_path), output_path=out, params_before=params_before,
        params_after=int(fixed.count_params()), flops_before=_flops(model),
        flops_after=_flops(fixed), expected_params_after=expected, applied=applied,
        skipped=skipped, remaining=remaining, folded_batchnorms=folded, carried=carried,
        refused=refused, max_error=max_error, finetune=tuned)


def _finetune(original, fixed, source, epochs: int, seed: int, carried) -> tuple:
    """``(model, summary)``: ``fixed`` distilled from ``original`` on ``source`` (see
    :func:`fix_file`), as an uncompiled model sharing its layers, and what the run did."""
    import keras

    from keras_cnnkit.rewrite.distillation import distill, load_npz
    if isinstance(source, (str, os.PathLike)):
        x, labels = load_npz(source)
        what = f"{os.fspath(source)} ({len(x)} samples)"
    else:
        x, labels = source
        what = f"the given data ({len(x)} samples)"
    probe = None
    if carried is not None and carried.fidelity is not None and not carried.fidelity.random:
        probe = carried_inputs(carried)
    result = distill(original, fixed, (x, labels), epochs=epochs, seed=seed,
                     fidelity_data=probe)
    losses = result.history.history.get("loss") or [None]
    # A plain model sharing the trained layers: no compile state (the distillation loss)
    # goes into the file.
    clean = keras.Model(fixed.inputs, fixed.outputs, name=fixed.name)
    return clean, {"data": what, "epochs": int(epochs), "labels": labels is not None,
                   "loss": None if losses[-1] is None else float(losses[-1]),
                   "fidelity": result.fidelity.to_dict()}


def carried_inputs(carried):
    """The calibration inputs a :class:`~keras_cnnkit.rewrite.carry.CarriedRewrite` was
    measured on (``None`` when not kept)."""
    data = getattr(carried, "data", None)
    return None if data is None else data.x
