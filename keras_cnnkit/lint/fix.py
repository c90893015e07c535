"""``cnnkit-lint --fix``: rebuild a model file with its findings' replacements.

:func:`fix_file` first reads the file statically within the budgets
(:mod:`keras_cnnkit.analysis.frontends.keras_gate`: a file over budget never reaches
Keras), then loads the model safely (``safe_mode=True``: a ``Lambda`` or an unknown
class is refused, never executed), lints it, applies the chosen findings' replacements
(:mod:`keras_cnnkit.rewrite`), optionally folds batch norms for inference, and writes the
result atomically.  Loading and writing go through :mod:`keras_cnnkit.io_guard`: the
output is never an input (not even with ``force``), an existing output is replaced only
with ``force``, and the file gets the umask's permissions.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Iterable, Optional

from keras_cnnkit.errors import PathLike
from keras_cnnkit.io_guard import (OutputFileError, check_output_path, load_keras_model,
                                   write_atomic)

__all__ = ["SAVE_SUFFIXES", "FixResult", "OutputFileError", "fix_file", "fix_steps",
           "still_reported"]

#: Output suffixes Keras can save to.
SAVE_SUFFIXES = (".keras", ".h5")
#: The stages :func:`fix_file` reports to its progress bar, in order (the folding stage
#: only with ``fold_bn``).
STAGES = ("loading the model", "linting", "applying the fixes", "folding batch norms",
          "writing", "re-linting the fixed model")


def fix_steps(fold_bn: bool = False) -> int:
    """How many stages :func:`fix_file` reports to its ``progress``."""
    return len(STAGES) - (0 if fold_bn else 1)


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

    @property
    def needs_retraining(self) -> list:
        """The applied findings that change what the model computes."""
        return [f for f in self.applied if f.needs_retraining]

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        def brief(finding) -> dict:
            return {"code": finding.code, "symbol": finding.symbol, "layer": finding.layer,
                    "needs_retraining": finding.needs_retraining,
                    "params_before": finding.params_before,
                    "params_after": finding.params_after}
        return {
            "input": self.input_path, "output": self.output_path,
            "params_before": self.params_before, "params_after": self.params_after,
            "flops_before": self.flops_before, "flops_after": self.flops_after,
            "expected_params_after": self.expected_params_after,
            "folded_batchnorms": self.folded_batchnorms,
            "applied": [brief(f) for f in self.applied],
            "skipped": [dict(brief(s.finding), reason=s.reason) for s in self.skipped
                        if s.finding.replacement is not None and s.merged_into is None],
            "merged": [dict(brief(s.finding), into=brief(s.merged_into), reason=s.reason)
                       for s in self.skipped if s.merged_into is not None],
            "remaining": [brief(f) for f in self.remaining],
            "needs_retraining": bool(self.needs_retraining),
        }

    def format_text(self) -> str:
        """Human-readable summary: each fix, then before → after params and FLOPs."""
        lines = []
        for finding in self.applied:
            tag = "needs retraining" if finding.needs_retraining else "exact, weights kept"
            lines.append(f"fixed {finding.code} {finding.symbol} at {finding.layer} ({tag})")
        for skip in self.skipped:
            if skip.merged_into is not None:
                lines.append(f"fixed {skip.finding.code} {skip.finding.symbol} at "
                             f"{skip.finding.layer} ({skip.reason})")
            elif skip.finding.replacement is not None:
                lines.append(f"not fixed {skip.finding.code} {skip.finding.symbol} at "
                             f"{skip.finding.layer}: {skip.reason}")
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
            lines.append(f"{len(self.needs_retraining)} fix(es) change the model's function: "
                         "retrain (or fine-tune) it before use")
        return "\n".join(lines)


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
             progress=None) -> FixResult:
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

    Raises:
        ModelFileError: the input cannot be loaded safely, or is over a budget
            (``BudgetError``: checked by the static reader before Keras loads anything).
        OutputFileError: the output cannot be written (exists, unwritable, bad suffix).
    """
    from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras

    step = progress.step if progress is not None else (lambda label: None)
    inputs = [in_path, *inputs]
    out = check_output_path(out_path, inputs, force=force, suffixes=SAVE_SUFFIXES)
    check_before_keras(in_path, "--fix")   # within the budgets, before Keras is imported
    from keras_cnnkit.rewrite.apply import fold_batchnorm, rewrite_model

    loading, linting, applying, folding_bn, writing, relinting = STAGES
    step(loading)
    model = load_keras_model(in_path)
    lint = lint or _default_lint
    step(linting)
    report = lint(model)
    graph = _graph_of(report, model)
    step(applying)
    result = rewrite_model(model, report.findings, select=select, graph=graph)
    fixed = result.model
    folded = 0
    if fold_bn:
        step(folding_bn)
        folding = fold_batchnorm(fixed)
        fixed, folded = folding.model, len(folding.applied)
    step(writing)
    write_atomic(out, fixed.save, inputs, force=force, suffixes=SAVE_SUFFIXES)
    applied = result.applied_findings
    params_before = int(model.count_params())
    expected = params_before + sum((f.params_after or 0) - (f.params_before or 0)
                                   for f in applied)
    step(relinting)
    remaining = still_reported(applied, lint(fixed).findings)
    return FixResult(
        input_path=os.fspath(in_path), output_path=out, params_before=params_before,
        params_after=int(fixed.count_params()), flops_before=_flops(model),
        flops_after=_flops(fixed), expected_params_after=expected, applied=applied,
        skipped=result.skipped, remaining=remaining, folded_batchnorms=folded)
