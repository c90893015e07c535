"""Fitting a profile to measurements, and the error figures of a profile.

The fit (:func:`fit_profile`) adjusts, by non-linear least squares on log time
(``scipy.optimize.least_squares``, robust ``soft_l1`` loss), the per-call overhead, the
figures of every latency class that the measurements cover (compute and memory
efficiency, launch time, depth rate, channel tile), the conv class's compute and depth
factors of every kernel size measured other than 3×3 (whose factors are 1: the class's
own figures), and the two fusion factors where fused nodes were measured.  The conv
class's power laws in taps (what an unmeasured kernel size is predicted with) are then
fitted to the kernel factors (:func:`taps_exponent_of`).
Each parameter is also pulled, weakly, towards its value in the starting profile (the
prior), so a parameter the measurements say nothing about keeps its prior value instead
of drifting; a class no measurement covers keeps ``fitted: false``.

The error figures (:func:`evaluate`) compare predicted with measured before/after cases:
the share of cases whose predicted speed-up is within ±25% of the measured one, and the
share, among cases whose measured time ratio lies outside 0.9–1.1, whose predicted
direction (faster or slower) is right.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import statistics
from typing import Iterable, Optional, Sequence

import numpy as np

from keras_cnnkit.latency.classes import LATENCY_CLASSES
from keras_cnnkit.latency.data import Case, Observation
from keras_cnnkit.latency.model import (AFTER_COMPUTE, AFTER_ELEMENTWISE, copy_work,
                                        fusion_roles, kernel_ms, kernel_scales, node_work,
                                        passthrough_output, predict_nodes, tile_scale)
from keras_cnnkit.latency.profile import Profile

#: Bounds of the fitted parameters (natural units; all but the taps exponent are fitted
#: on their logarithms).
EFFICIENCY_BOUNDS = (1e-4, 4.0)  # above 1: e.g. Winograd convs beat the direct FLOP count
LAUNCH_BOUNDS_MS = (1e-5, 10.0)
DEPTH_RATE_BOUNDS = (1e5, 1e15)
TAPS_EXPONENT_BOUNDS = (-1.0, 3.0)
OVERHEAD_BOUNDS_MS = (1e-4, 100.0)
FUSION_BOUNDS = (0.01, 1.0)
KERNEL_FACTOR_BOUNDS = (1e-3, 10.0)
#: The kernel size whose factors are 1 by definition (the conv class's figures are its).
REFERENCE_KERNEL = "3x3"
_ROLES = (AFTER_COMPUTE, AFTER_ELEMENTWISE)
CHANNEL_TILE_BOUNDS = (1.0, 4096.0)
_LOG_FIGURES = {"compute_efficiency": EFFICIENCY_BOUNDS,
                "memory_efficiency": EFFICIENCY_BOUNDS, "launch_ms": LAUNCH_BOUNDS_MS,
                "depth_rate": DEPTH_RATE_BOUNDS, "channel_tile": CHANNEL_TILE_BOUNDS}


class _Design:
    """Every measured node's work, laid out as arrays once, for fast evaluation."""

    def __init__(self, observations: Sequence[Observation], dtype_bytes: int):
        obs_idx, works, roles = [], [], []
        for i, obs in enumerate(observations):
            fused = fusion_roles(obs.nodes)
            items = [(node_work(n, obs.batch, dtype_bytes), fused.get(n.name), n.name)
                     for n in obs.nodes]
            copied = passthrough_output(obs.nodes)
            if copied is not None:
                items.append((copy_work(copied, obs.batch, dtype_bytes), None, "copy"))
            for work, role, name in items:
                if not work.known:
                    raise ValueError(f"{obs.label or 'an observation'}: node {name!r} has "
                                     "unknown cost and cannot be fitted on")
                if work.op_class == "none":
                    continue
                obs_idx.append(i)
                works.append(work)
                roles.append(role)
        self.n_obs = len(observations)
        self.obs_idx = np.array(obs_idx, dtype=int)
        self.classes = sorted({w.op_class for w in works}, key=LATENCY_CLASSES.index)
        self.cls_idx = np.array([self.classes.index(w.op_class) for w in works], dtype=int)
        self.flops = np.array([w.flops for w in works], dtype=float)
        self.bytes = np.array([w.bytes for w in works], dtype=float)
        self.depth = np.array([w.depth for w in works], dtype=float)
        self.taps = np.array([w.taps for w in works], dtype=float)
        self.lanes = np.array([w.lanes for w in works], dtype=float)
        self.kernels = np.array([w.kernel for w in works], dtype=object)
        self.conv_kernels = sorted({w.kernel for w in works if w.op_class == "conv"
                                    and w.kernel and w.kernel != REFERENCE_KERNEL},
                                   key=lambda k: (taps_of(k), k))
        self.roles = [r for r in _ROLES if r in roles]
        self.role_idx = np.array([-1 if r is None else self.roles.index(r) for r in roles],
                                 dtype=int)
        self.log_ms = np.log(np.array([o.ms for o in observations], dtype=float))


def taps_of(kernel: str) -> int:
    """The number of taps of a ``"KhxKw"`` kernel size."""
    return math.prod(int(k) for k in kernel.split("x"))


@dataclasses.dataclass(frozen=True)
class _Param:
    name: str          # "call_overhead_ms", "<class>.<figure>", "fusion.<role>" or
                       # "conv.kernel.<KhxKw>.<compute|depth>"
    log: bool          # fitted on its logarithm
    start: float
    lower: float
    upper: float


def _layout(design: _Design, profile: Profile, fit_overhead: bool,
            kernel_fit: str) -> list:
    """The fitted parameters, in vector order."""
    params = []

    def add(name, value, bounds, log=True):
        value = min(max(value, bounds[0]), bounds[1])
        if log:
            params.append(_Param(name, True, math.log(value), math.log(bounds[0]),
                                 math.log(bounds[1])))
        else:
            params.append(_Param(name, False, value, bounds[0], bounds[1]))

    if fit_overhead:
        add("call_overhead_ms", profile.call_overhead_ms, OVERHEAD_BOUNDS_MS)
    for cls in design.classes:
        figures = profile.params(cls)
        for figure, bounds in _LOG_FIGURES.items():
            value = getattr(figures, figure)
            if value is not None:
                add(f"{cls}.{figure}", value, bounds)
        if cls == "conv" and kernel_fit == "power" and design.conv_kernels:
            add("conv.taps_exponent", figures.taps_exponent, TAPS_EXPONENT_BOUNDS, log=False)
        if cls == "conv" and kernel_fit == "factors":
            for kernel in design.conv_kernels:
                compute, depth = kernel_scales(figures, taps_of(kernel), kernel)
                add(f"conv.kernel.{kernel}.compute", compute, KERNEL_FACTOR_BOUNDS)
                if figures.depth_rate is not None:
                    add(f"conv.kernel.{kernel}.depth", depth, KERNEL_FACTOR_BOUNDS)
    for role in design.roles:
        add(f"fusion.{role}", profile.fusion[role], FUSION_BOUNDS)
    return params


def _values(params: Sequence[_Param], theta: np.ndarray) -> dict:
    return {p.name: (math.exp(t) if p.log else float(t)) for p, t in zip(params, theta)}


def _apply(profile: Profile, values: dict) -> Profile:
    """A copy of ``profile`` with the named parameters set."""
    out = copy.deepcopy(profile)
    for name, value in values.items():
        head, _, figure = name.partition(".")
        if name == "call_overhead_ms":
            out.call_overhead_ms = value
        elif head == "fusion":
            out.fusion[figure] = value
        elif figure.startswith("kernel."):
            _, kernel, which = figure.split(".")
            params = out.classes[head]
            factors = dict(params.kernel_factors or {})
            factors[kernel] = {**factors.get(kernel, {}), which: value}
            params.kernel_factors = factors
            params.fitted = True
        else:
            setattr(out.classes[head], figure, value)
            out.classes[head].fitted = True
    return out


def _apply_kernel_values(params, values: dict):
    """``params`` (the conv class's figures) with the kernel factors and taps exponent
    in ``values``."""
    if "conv.taps_exponent" in values:
        params = dataclasses.replace(params, taps_exponent=values["conv.taps_exponent"])
    fitted = {k: v for k, v in values.items() if k.startswith("conv.kernel.")}
    if not fitted:
        return params
    factors = {k: dict(v) for k, v in (params.kernel_factors or {}).items()}
    for name, value in fitted.items():
        _, _, kernel, which = name.split(".")
        factors.setdefault(kernel, {})[which] = value
    return dataclasses.replace(params, kernel_factors=factors)


def _predict_log(design: _Design, profile: Profile, values: dict) -> np.ndarray:
    def figure(cls, name):
        value = values.get(f"{cls}.{name}", getattr(profile.params(cls), name))
        if value is None:
            return 0.0 if name == "channel_tile" else np.inf
        return value

    per_class = {name: np.array([figure(c, name) for c in design.classes], dtype=float)
                 for name in _LOG_FIGURES}
    idx = design.cls_idx
    scale = np.ones(len(idx))
    depth_scale = np.ones(len(idx))
    if "conv" in design.classes:
        conv = _apply_kernel_values(profile.params("conv"), values)
        rows = idx == design.classes.index("conv")
        scale[rows], depth_scale[rows] = kernel_scales(conv, design.taps[rows],
                                                       design.kernels[rows])
    tiles = tile_scale(design.lanes, per_class["channel_tile"][idx])
    times = kernel_ms(design.flops, design.bytes, design.depth, profile.peak_flops,
                      profile.bandwidth, per_class["compute_efficiency"][idx] * scale * tiles,
                      per_class["memory_efficiency"][idx],
                      per_class["depth_rate"][idx] * depth_scale, per_class["launch_ms"][idx],
                      profile.depth_norm)
    if design.roles:
        factors = np.array([values.get(f"fusion.{r}", profile.fusion[r])
                            for r in design.roles] + [1.0])
        times = times * factors[design.role_idx]
    overhead = values.get("call_overhead_ms", profile.call_overhead_ms)
    total = np.bincount(design.obs_idx, weights=times, minlength=design.n_obs) + overhead
    return np.log(total)


def taps_exponent_of(factors: dict, which: str, default: float) -> float:
    """The exponent ``e`` of the power law ``(taps / 9) ** -e`` closest (least squares
    on logs, through 3×3's factor 1) to the ``which`` (``"compute"`` or ``"depth"``)
    factors of ``factors`` (kernel size → factors): what predicts a kernel size no
    measurement covered.  ``default`` when no fitted size has other than 9 taps."""
    pairs = [(math.log(taps_of(k) / 9.0), math.log(f[which]))
             for k, f in factors.items() if which in f and taps_of(k) != 9]
    if not pairs:
        return default
    x, y = np.array(pairs, dtype=float).T
    exponent = -float(np.sum(x * y) / np.sum(x * x))
    return min(max(exponent, TAPS_EXPONENT_BOUNDS[0]), TAPS_EXPONENT_BOUNDS[1])


def fit_profile(observations: Sequence[Observation], start: Profile, name: str,
                prior_weight: float = 0.05, f_scale: float = 0.1,
                fit_overhead: bool = True, kernel_fit: str = "factors",
                provenance: Optional[dict] = None) -> Profile:
    """A profile fitted to ``observations``, starting from (and regularised towards)
    ``start``.

    Args:
        observations: fragments timed on their own on the device.
        start: the starting profile: its device figures (peak, bandwidth, dtype) are
            kept; its fitted parameters are the starting point and the prior.
        name: the new profile's name.
        prior_weight: the weight of each parameter's pull towards its prior value, in
            units of log time (0.05: a factor of e away from the prior costs as much as
            a 5% misprediction of one measurement).
        f_scale: the ``soft_l1`` loss scale in log time (0.1 ≈ 10%): residuals beyond
            it count linearly, so a few disturbed measurements do not dominate.
        fit_overhead: fit the per-call overhead too.
        kernel_fit: how the conv class's figures depend on its kernel size:
            ``"factors"`` (fit a compute and a depth factor for every kernel size
            measured other than 3×3, then the power laws in taps to them), ``"power"``
            (fit one power law in taps, ``taps_exponent``, for all sizes) or ``"none"``
            (keep the starting profile's).
        provenance: extra ``fit`` fields (source files, split) to record.
    """
    from scipy.optimize import least_squares  # pylint: disable=import-error

    design = _Design(observations, start.dtype_bytes)
    if kernel_fit not in ("factors", "power", "none"):
        raise ValueError(f"kernel_fit {kernel_fit!r} is not factors, power or none")
    params = _layout(design, start, fit_overhead, kernel_fit)
    theta0 = np.array([p.start for p in params])

    def residuals(theta):
        data = _predict_log(design, start, _values(params, theta)) - design.log_ms
        return np.concatenate([data, prior_weight * (theta - theta0)])

    result = least_squares(residuals, theta0,
                           bounds=([p.lower for p in params], [p.upper for p in params]),
                           loss="soft_l1", f_scale=f_scale, method="trf", max_nfev=3000)
    values = _values(params, result.x)
    fitted = _apply(start, values)
    conv = fitted.classes.get("conv")
    if conv is not None and conv.kernel_factors:
        conv.taps_exponent = taps_exponent_of(conv.kernel_factors, "compute",
                                              conv.taps_exponent)
        if conv.depth_rate is not None:
            conv.depth_taps_exponent = taps_exponent_of(conv.kernel_factors, "depth",
                                                        conv.taps_exponent)
    fitted.name = name
    errors = np.exp(np.abs(_predict_log(design, start, values) - design.log_ms)) - 1
    fitted.fit = {
        **(provenance or {}),
        "method": ("scipy.optimize.least_squares (trf, soft_l1 loss, f_scale "
                   f"{f_scale:g}) on log time; prior weight {prior_weight:g} towards the "
                   f"starting profile {start.name!r}"),
        "observations": len(observations),
        "fitted_parameters": [p.name for p in params],
        "converged": bool(result.success),
        "train_median_abs_error": float(np.median(errors)) if len(errors) else None,
    }
    return fitted


# --- error figures --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """One case, predicted against measured."""

    case: Case
    predicted_before_ms: Optional[float]
    predicted_after_ms: Optional[float]

    @property
    def predicted_ratio(self) -> Optional[float]:
        """Predicted ``after / before``."""
        if self.predicted_before_ms is None or self.predicted_after_ms is None:
            return None
        return self.predicted_after_ms / self.predicted_before_ms

    @property
    def ratio_error(self) -> Optional[float]:
        """``predicted speed-up / measured speed-up − 1``."""
        pred = self.predicted_ratio
        return None if pred is None else self.case.ratio / pred - 1

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        c = self.case
        return {"label": c.label, "rule": c.rule, "group": c.group, "batch": c.batch,
                "before_ms": c.before_ms, "after_ms": c.after_ms, "ratio": c.ratio,
                "predicted_before_ms": self.predicted_before_ms,
                "predicted_after_ms": self.predicted_after_ms,
                "predicted_ratio": self.predicted_ratio}


def predict_cases(cases: Iterable[Case], profile: Profile) -> list:
    """A :class:`CaseResult` per case (both sides predicted standalone)."""
    out = []
    for case in cases:
        before = predict_nodes(case.before, profile, case.batch).ms
        after = predict_nodes(case.after, profile, case.batch).ms
        out.append(CaseResult(case, before, after))
    return out


def error_figures(results: Sequence[CaseResult], tolerance: float = 0.25,
                  band: tuple = (0.9, 1.1)) -> dict:
    """The error figures of ``results``.

    ``within_25``: share of cases with ``|predicted speed-up / measured − 1| ≤
    tolerance``; ``direction``: among the ``direction_cases`` whose measured time ratio
    lies outside ``band``, the share predicted on the right side of 1;
    ``time_within_25``: share of single fragment times (both sides) within
    ``tolerance``; ``median_abs_error``: of the speed-up.
    """
    results = [r for r in results if r.predicted_ratio is not None]
    if not results:
        return {"cases": 0}
    within = [abs(r.ratio_error) <= tolerance for r in results]
    outside = [r for r in results if not band[0] <= r.case.ratio <= band[1]]
    right = [(r.predicted_ratio > 1) == (r.case.ratio > 1) for r in outside]
    times = []
    for r in results:
        times += [r.predicted_before_ms / r.case.before_ms - 1,
                  r.predicted_after_ms / r.case.after_ms - 1]
    return {"cases": len(results), "within_25": sum(within) / len(results),
            "direction_cases": len(outside),
            "direction": sum(right) / len(outside) if outside else None,
            "median_abs_error": statistics.median(abs(r.ratio_error) for r in results),
            "time_within_25": sum(abs(t) <= tolerance for t in times) / len(times),
            "time_median_abs_error": statistics.median(abs(t) for t in times)}


def evaluate(cases: Iterable[Case], profile: Profile, min_ms: float = 0.2,
             tolerance: float = 0.25, band: tuple = (0.9, 1.1)) -> dict:
    """Error figures of ``profile`` on ``cases``: over all cases (``all``), over the
    cases whose measured 'before' time is at least ``min_ms`` (``over_threshold``: the
    fragment being replaced is not launch-bound) and over those whose both sides are
    (``both_over_threshold``)."""
    results = predict_cases(cases, profile)
    over = [r for r in results if r.case.before_ms >= min_ms]
    both = [r for r in over if r.case.after_ms >= min_ms]
    return {"min_ms": min_ms, "tolerance": tolerance, "band": list(band),
            "all": error_figures(results, tolerance, band),
            "over_threshold": error_figures(over, tolerance, band),
            "both_over_threshold": error_figures(both, tolerance, band)}


def split_groups(cases: Iterable, held_out: Iterable[str]) -> tuple:
    """``(train, held_out)``: the cases (or observations) whose ``group`` is not / is in
    ``held_out``."""
    held = set(held_out)
    train, test = [], []
    for item in cases:
        (test if item.group in held else train).append(item)
    return train, test


def observations_of(cases: Iterable[Case]) -> list:
    """Both sides of every case, as observations."""
    out = []
    for case in cases:
        out += case.observations()
    return out
