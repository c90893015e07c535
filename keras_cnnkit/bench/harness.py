"""Measured savings: time each finding's original subgraph against its replacement.

For each finding with a replacement, the removed nodes and the fragment are built as two
small Keras models at the model's real shapes, from the graph IR only (random weights,
stock layers: no code from a model file runs), and timed side by side on the best device
present (see :mod:`keras_cnnkit.bench.device` and :mod:`keras_cnnkit.bench.timing`).  The
whole model with all compatible fixes applied is timed against the original as well.

The results are this module's own objects (:class:`BenchResult`): per finding label,
the measured figures and, for a fix that saves parameters or FLOPs but measures slower,
a note.  Findings are never edited; the report layer attaches the figures
(:class:`keras_cnnkit.lint.report.Measurements`, which a :class:`BenchResult` is).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Optional, Sequence

import keras

from keras_cnnkit.analysis.ir import Graph, OpKind
from keras_cnnkit.bench.device import DeviceInfo, detect
from keras_cnnkit.progress import Progress
from keras_cnnkit.bench.timing import Timing, time_models
from keras_cnnkit.lint.findings import Finding
from keras_cnnkit.lint.report import finding_label
from keras_cnnkit.lint.sites import SLOWER_THAN, conclusive, rule_findings, saves_something
from keras_cnnkit.rewrite.build import model_from_graph, replacement_models
from keras_cnnkit.rewrite.codegen import UnsupportedNodeError
from keras_cnnkit.rewrite.plan import apply_to_graph, select_findings

#: The dtype policies the harness accepts.
DTYPES = ("float32", "mixed_float16", "bfloat16")
#: Default batch sizes.
DEFAULT_BATCHES = (1, 32)

INFERENCE, TRAIN = "inference", "train"


@dataclasses.dataclass
class Comparison:
    """One before/after measurement.

    Attributes:
        label: what was measured (``"CNK105 flatten-dense-head @ fc1"``, ``"whole model"``).
        batch: the batch size.
        mode: ``"inference"`` (forward pass) or ``"train"`` (one training step).
        before / after: the timings of the original and the replacement.
    """

    label: str
    batch: int
    mode: str
    before: Timing
    after: Timing

    @property
    def speedup(self) -> float:
        """``before / after`` median time (> 1: the fix is faster)."""
        return self.before.median_ms / self.after.median_ms if self.after.median_ms else 0.0

    @property
    def saving_ms(self) -> float:
        """Median time saved per call (negative: slower)."""
        return self.before.median_ms - self.after.median_ms

    def to_dict(self) -> dict:
        """Plain-dict form for JSON reports."""
        return {"label": self.label, "batch": self.batch, "mode": self.mode,
                "latency_before_ms": self.before.median_ms,
                "latency_after_ms": self.after.median_ms,
                "iqr_before_ms": self.before.iqr_ms, "iqr_after_ms": self.after.iqr_ms,
                "speedup": self.speedup}


@dataclasses.dataclass
class BenchResult:
    """Everything one benchmark run measured.

    Attributes:
        device: where it ran.
        dtype: the dtype policy.
        compile_mode: how functions were compiled (``"xla"``, ``"jit"``, ``"eager"``).
        batches: the batch sizes.
        train: whether training steps were timed too.
        findings: the findings, ordered by measured saving (unmeasured ones last, by
            estimated FLOP saving).
        comparisons: per finding label, its :class:`Comparison` list.
        whole_model: the whole-model A/B comparisons (empty when not run).
        whole_model_fixes: labels of the findings applied for the A/B.
        skipped: ``(what, why)`` for everything that could not be measured.
        measurements: per finding label, the figures of its fix at the largest batch
            (``latency_before_ms``, ``latency_after_ms``, ``speedup``, ``saving_ms``...)
            and every run; see :meth:`fields_of`.
        notes: per finding label, the "measured slower" note of a fix that saves
            parameters or FLOPs but not time; see :meth:`note_of`.
    """

    device: DeviceInfo
    dtype: str
    compile_mode: str
    batches: tuple
    train: bool
    findings: list = dataclasses.field(default_factory=list)
    comparisons: dict = dataclasses.field(default_factory=dict)
    whole_model: list = dataclasses.field(default_factory=list)
    whole_model_fixes: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    measurements: dict = dataclasses.field(default_factory=dict)
    notes: dict = dataclasses.field(default_factory=dict)

    def fields_of(self, finding: Finding) -> dict:
        """The measured figures of ``finding``'s fix (empty when it was not measured)."""
        return dict(self.measurements.get(finding_label(finding), {}))

    def note_of(self, finding: Finding) -> str:
        """The sentence the report appends to a fix that measures slower, else ``""``."""
        return self.notes.get(finding_label(finding), "")

    def to_dict(self) -> dict:
        """Plain-dict form for JSON reports."""
        return {
            "device": self.device.to_dict(), "backend": self.device.backend,
            "dtype": self.dtype, "compile": self.compile_mode, "batches": list(self.batches),
            "train": self.train,
            "findings": {label: [c.to_dict() for c in comps]
                         for label, comps in self.comparisons.items()},
            "whole_model": {"fixes": list(self.whole_model_fixes),
                            "runs": [c.to_dict() for c in self.whole_model]},
            "skipped": [{"what": what, "why": why} for what, why in self.skipped],
        }

    def format_text(self) -> str:
        """A fixed-width table of every comparison, then the skipped items."""
        lines = [f"benchmark on {self.device} ({self.device.backend}, {self.compile_mode}, "
                 f"{self.dtype}); median ± IQR over repeats, warm-up and compilation excluded"]
        header = f"{'what':<44} {'batch':>5} {'mode':<9} {'before ms':>16} " \
                 f"{'after ms':>16} {'speedup':>8}"
        lines += [header, "-" * len(header)]
        rows = [c for comps in self.comparisons.values() for c in comps] + self.whole_model
        for c in rows:
            label = c.label if c.label != "whole model" else \
                f"whole model ({len(self.whole_model_fixes)} fixes)"
            lines.append(f"{label[:44]:<44} {c.batch:>5} {c.mode:<9} "
                         f"{_pm(c.before):>16} {_pm(c.after):>16} {c.speedup:>7.2f}x")
        for what, why in self.skipped:
            lines.append(f"skipped: {what}: {why}")
        return "\n".join(lines)


def _pm(timing: Timing) -> str:
    return f"{timing.median_ms:.3f}±{timing.iqr_ms:.3f}"


def _modes(train: bool) -> tuple:
    return (INFERENCE, TRAIN) if train else (INFERENCE,)


def _check_args(dtype: str, batches: Sequence[int]) -> tuple:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    batches = tuple(int(b) for b in batches)
    if not batches or any(b < 1 for b in batches):
        raise ValueError(f"batch sizes must be positive ints, got {batches!r}")
    return batches


class _Session:
    """Shared settings of one benchmark run."""

    def __init__(self, result: BenchResult, progress: Progress, compile_mode: Optional[str],
                 measure_kwargs: dict):
        self.result = result
        self.progress = progress
        self.compile_mode = compile_mode
        self.measure_kwargs = measure_kwargs

    def compare(self, label: str, before: keras.Model, after: keras.Model) -> list:
        """Time ``before`` and ``after`` at every batch and mode; skip what fails."""
        out = []
        for batch in self.result.batches:
            for mode in _modes(self.result.train):
                self.progress.step(f"{label} b{batch} {mode}")
                try:
                    (t_before, t_after), cmode = time_models(
                        [before, after], batch, train=mode == TRAIN,
                        compile_mode=self.compile_mode, **self.measure_kwargs)
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    # A backend can refuse an op or run out of memory at some shape;
                    # that case is reported as skipped, the others still run.
                    self.result.skipped.append(
                        (f"{label} (batch {batch}, {mode})",
                         f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"))
                    continue
                self.result.compile_mode = cmode
                out.append(Comparison(label, batch, mode, t_before, t_after))
        return out


def benchmark_findings(graph: Graph, findings: Iterable[Finding],
                       model: Optional[keras.Model] = None,
                       batches: Sequence[int] = DEFAULT_BATCHES, dtype: str = "float32",
                       train: bool = False, whole_model: bool = True,
                       compile_mode: Optional[str] = None, progress: Optional[Progress] = None,
                       choose: Optional[Callable[[BenchResult], list]] = None,
                       **measure_kwargs: Any) -> BenchResult:
    """Benchmark every fix (every alternative of every site), and the whole model A/B.

    Args:
        graph: the IR the findings were computed on (shapes and nodes come from it).
        findings: the findings (sites or rule findings); every alternative that has a
            replacement is timed.
        model: the live model, if any: used for the whole-model A/B (in float32) when
            the graph has nodes codegen cannot build (opaque layers).
        batches: batch sizes (default 1 and 32).
        dtype: ``"float32"``, ``"mixed_float16"`` or ``"bfloat16"``.
        train: time a training step as well as the forward pass.
        whole_model: run the whole-model A/B.
        compile_mode: see :data:`keras_cnnkit.bench.timing.COMPILE_MODES`.
        progress: a :class:`Progress` (default: one on stderr, silent off a terminal).
        choose: given the result with every fix measured, the fixes to apply for the
            whole-model A/B (default: :func:`~keras_cnnkit.rewrite.plan.select_findings`
            of ``findings``: each site's recommended alternative, as before the
            measurements; :func:`~keras_cnnkit.bench.api.benchmark_report` passes the
            choice a bare ``--fix`` makes once the measurements are in).
        **measure_kwargs: ``warmup``, ``repeats``, ``min_sample_s``, ``budget_s``,
            ``max_rel_iqr`` and ``retries`` of
            :func:`keras_cnnkit.bench.timing.measure_interleaved`.  A measurement whose
            IQR exceeds 10% of its median is retaken (twice at most) unless
            ``max_rel_iqr`` says otherwise (``None``: never).
    """
    batches = _check_args(dtype, batches)
    measure_kwargs.setdefault("max_rel_iqr", 0.10)
    findings = list(findings)
    candidates = [f for f in rule_findings(findings) if f.replacement is not None]
    result = BenchResult(detect(), dtype, "", batches, train)
    choose = choose or (lambda _: select_findings(findings, graph=graph)[0])
    steps = (len(candidates) + (1 if whole_model and candidates else 0)) \
        * len(batches) * len(_modes(train))
    progress = progress or Progress(steps, "benchmark")
    session = _Session(result, progress, compile_mode, measure_kwargs)
    with progress:
        for finding in candidates:
            label = finding_label(finding)
            try:
                before, after = replacement_models(graph, finding.replacement, dtype=dtype,
                                                   name=finding.symbol)
            except (UnsupportedNodeError, ValueError, KeyError) as exc:
                result.skipped.append((label, _reason(exc)))
                for _ in range(len(batches) * len(_modes(train))):
                    progress.step(label)
                continue
            result.comparisons[label] = session.compare(label, before, after)
        for finding in candidates:
            _record(finding, result)
        if whole_model and candidates:
            _whole_model(session, graph, choose(result), model, dtype)
    result.findings = order_findings(findings, {label: m["saving_ms"] for label, m
                                                in result.measurements.items()
                                                if "saving_ms" in m})
    return result


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def _whole_model(session: _Session, graph: Graph, chosen: list,
                 model: Optional[keras.Model], dtype: str) -> None:
    """The whole model A/B with the ``chosen`` fixes (skipped, with the reason, when the
    model cannot be rebuilt or nothing is chosen)."""
    result = session.result
    opaque = [n.name for n in graph if n.op == OpKind.OPAQUE]

    def skip(why: str) -> None:
        result.skipped.append(("whole model", why))
        for _ in range(len(result.batches) * len(_modes(result.train))):
            session.progress.step("whole model")

    try:
        before = model_from_graph(graph, dtype=dtype)
        after = model_from_graph(apply_to_graph(graph, chosen), dtype=dtype) if chosen \
            else None
    except (UnsupportedNodeError, ValueError, KeyError) as exc:
        if model is None or dtype != "float32":
            what = f"opaque nodes {', '.join(opaque)}" if opaque else _reason(exc)
            skip(f"cannot be rebuilt from the IR: {what}")
            return
        from keras_cnnkit.rewrite.apply import apply_findings
        before = model
        after = apply_findings(model, chosen, graph=graph) if chosen else None
    if after is None:
        skip("no fix to apply: no finding has a recommended alternative (a bare --fix "
             "changes nothing)")
        return
    result.whole_model_fixes = [finding_label(f) for f in chosen]
    result.whole_model = session.compare("whole model", before, after)


def _primary(comps: list, batches: tuple, mode: str = INFERENCE) -> Optional[Comparison]:
    """The comparison at the largest batch measured in ``mode``."""
    for batch in sorted(batches, reverse=True):
        for c in comps:
            if c.batch == batch and c.mode == mode:
                return c
    return None


def _record(finding: Finding, result: BenchResult) -> None:
    """Put the figures of ``finding``'s comparisons (and any note) into ``result``."""
    label = finding_label(finding)
    comps = result.comparisons.get(label)
    if not comps:
        return
    meas = {"device": str(result.device), "backend": result.device.backend,
            "dtype": result.dtype, "compile": result.compile_mode,
            "runs": [c.to_dict() for c in comps]}
    main = _primary(comps, result.batches)
    if main is not None:
        meas.update(batch=main.batch, latency_before_ms=main.before.median_ms,
                    latency_after_ms=main.after.median_ms, speedup=main.speedup,
                    iqr_before_ms=main.before.iqr_ms, iqr_after_ms=main.after.iqr_ms,
                    saving_ms=main.saving_ms)
    train = _primary(comps, result.batches, TRAIN)
    if train is not None:
        meas.update(train_latency_before_ms=train.before.median_ms,
                    train_latency_after_ms=train.after.median_ms,
                    train_speedup=train.speedup)
    result.measurements[label] = meas
    if main is not None and main.speedup < SLOWER_THAN and saves_something(finding) \
            and conclusive(main.to_dict()):
        result.notes[label] = (
            f" Measured slower on {result.device} ({result.device.backend}, "
            f"{result.dtype}, batch {main.batch}): {main.before.median_ms:.3g} ms → "
            f"{main.after.median_ms:.3g} ms ({main.speedup:.2f}×); it saves "
            "parameters/FLOPs, not time, here.")


def order_findings(findings: Iterable[Finding], savings: Optional[dict] = None) -> list:
    """Findings ordered by measured saving, then estimated FLOPs.

    ``savings`` maps a finding label (:func:`~keras_cnnkit.lint.report.finding_label`)
    to the milliseconds its fix saves at the largest batch.  Measured findings come
    first, biggest time saving first; the others follow by estimated FLOP saving.  The
    sort is stable.
    """
    savings = savings or {}

    def key(finding: Finding) -> tuple:
        saving = savings.get(finding_label(finding))
        flops = (finding.flops_before or 0) - (finding.flops_after or 0)
        if saving is not None:
            return (0, -saving, -flops)
        return (1, 0.0, -flops)
    return sorted(findings, key=key)
