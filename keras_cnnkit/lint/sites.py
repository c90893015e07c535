"""One finding per site, ranked by impact, recommended by time (issue 15).

The stage between the rules and the report.  Rules yield simple per-rule findings
(third-party rules too); this module turns them into *site* findings:

Grouping
    A site is the set of layers that fixes would replace.  Two findings belong to the
    same site when they are anchored at the same layer, or when the layers their
    replacements remove (``replacement.removed``) overlap, transitively (union-find).
    Sites are therefore disjoint: no layer is in two of them, and no two reported
    findings share a layer.  Each of a site's findings becomes an
    :class:`~keras_cnnkit.lint.findings.Alternative`.

Speed
    Each alternative with a fix gets its predicted speed-up (time before / after) on a
    device profile (:mod:`keras_cnnkit.latency`, predicted as part of the model: no
    per-call overhead), at batch 1 and 32, and, after ``--benchmark``, its measured
    speed-up per batch (forward pass), where the measurement is :func:`conclusive`.

Recommendation (:func:`recommend`)
    An alternative is *slower* when, at any of the decision batches (1 and 32; after a
    benchmark, the batches it measured), its speed-up is below :data:`SLOWER_THAN` —
    the measured one at a batch that was measured, else the predicted one.  A slower
    alternative is never recommended, and never applied by a bare ``--fix``
    (``--fix-select`` can force it).  Nor is a fix that needs retraining and is not
    *faster* (at least :data:`FASTER_THAN` at one decision batch): retraining for no time
    gained is not a recommendation; an exact fix only has to be not slower.  Among the
    others that have a fix, the recommended one is the best by, in turn: measured over
    predicted over no time estimate; the larger speed-up (geometric mean over the
    decision batches); the larger FLOP saving.  When no alternative may be recommended,
    the site has none: "saves parameters, not time".

Companions
    An exact fix that only drops a bias the batch norm after the layer cancels
    (``bias-before-batchnorm``) is compatible with an architectural alternative on the
    same layer: :mod:`keras_cnnkit.rewrite.plan` builds the architectural fix's last layer
    without the bias.  Such a fix stays in the site's alternatives; when the recommended
    alternative is architectural and the bias drop merges into it, the bias drop is
    marked ``companion`` and a bare ``--fix`` applies both.  It is recommended on its
    own only when no other fix may be.

Impact
    A site's saving is that of its recommended alternative, with its companions (or,
    with none recommended, that of its first alternative).  ``flops_share`` and
    ``params_share`` are that saving as a fraction of the model's FLOPs and parameters.
    A site without a saving (advice such as ``tensor-core-alignment``, a fix that saves
    nothing) uses the share of the model's MACs and parameters that the layers involved
    carry: its node, the nodes its fix removes, and, for a finding about a run of layers
    that names the run's first node in ``measurements["first"]`` (``plain-deep-stack``),
    the run.  Where the cost of those layers is unknown (opaque layers) the share is
    ``None``, and the site is always reported.  Sites whose shares are all below
    ``min_impact`` (default :data:`DEFAULT_MIN_IMPACT`) are not reported; the summary
    counts them.

Savings add up
    Each alternative's saving is at most the cost of the nodes it removes (its
    ``*_after`` is a cost, so at least 0), a companion only removes a bias from that
    same fix's output, and sites are disjoint: so the savings of all sites add up to at
    most the model's cost.  :func:`check_savings` raises where they would not; every
    code path that prints a total calls it.

Pure Python: importing this module imports neither Keras nor TensorFlow.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Optional, Sequence

from keras_cnnkit.analysis.cost import node_cost
from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.latency import Profile, predict_replacement
from keras_cnnkit.lint.findings import Alternative, Finding
from keras_cnnkit.lint.selectors import finding_selected

#: Default ``--min-impact``: sites saving less than 1% of both the model's FLOPs and its
#: parameters are not reported.
DEFAULT_MIN_IMPACT = 0.01
#: The batch sizes the recommendation looks at when no benchmark says otherwise.
DECISION_BATCHES = (1, 32)
#: Below this speed-up an alternative is slower (the benchmark's own threshold: 3%
#: guards against timer noise).
SLOWER_THAN = 0.97
#: Above this speed-up an alternative is called faster in words.
FASTER_THAN = 1.03

_MEASURED, _PREDICTED, _NO_ESTIMATE = 2, 1, 0


# --- the rule findings behind a site ----------------------------------------------------

def alternatives_of(finding: Finding) -> list:
    """The rule findings ``finding`` stands for: its alternatives' findings, or itself
    (a rule's own finding)."""
    if finding.alternatives:
        return [alt.finding for alt in finding.alternatives]
    return [finding]


def rule_findings(findings: Iterable[Finding]) -> list:
    """Every rule finding of ``findings`` (sites or rule findings), flattened."""
    return [rule for finding in findings for rule in alternatives_of(finding)]


def saving(finding: Finding) -> tuple:
    """``(params, flops)`` that ``finding``'s own fix saves (``None`` where unknown)."""
    def diff(before, after):
        return None if before is None or after is None else before - after
    return (diff(finding.params_before, finding.params_after),
            diff(finding.flops_before, finding.flops_after))


def saves_something(finding: Finding) -> bool:
    """True when the finding's fix saves parameters or FLOPs."""
    return any((value or 0) > 0 for value in saving(finding))


# --- grouping ---------------------------------------------------------------------------

def _layer(graph: Optional[Graph], name: str) -> str:
    if graph is not None and name in graph.nodes:
        node = graph[name]
        return node.layer or node.name
    return name


def site_layers(finding: Finding, graph: Optional[Graph] = None) -> set:
    """The layers a finding occupies: its own, and those its replacement removes."""
    layers = {finding.layer}
    if finding.replacement is not None:
        layers.update(_layer(graph, name) for name in finding.replacement.removed)
    return layers


def group(findings: Sequence[Finding], graph: Optional[Graph] = None) -> list:
    """Rule findings → lists of findings, one per site (see the module docstring), in
    the order of each site's first finding."""
    parent = list(range(len(findings)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict = {}
    for i, finding in enumerate(findings):
        for layer in site_layers(finding, graph):
            if layer in owner:
                parent[root(i)] = root(owner[layer])
            else:
                owner[layer] = i
    groups: dict = {}
    for i, finding in enumerate(findings):
        groups.setdefault(root(i), []).append(finding)
    return list(groups.values())


# --- companions: exact bias drops that merge into an architectural fix ------------------

def drops_only_bias(finding: Finding) -> bool:
    """True for an exact fix that replaces one node by its copy without the bias."""
    rep = finding.replacement
    if rep is None or not rep.preserves_function or len(rep.removed) != 1 \
            or len(rep.nodes) != 1:
        return False
    node = rep.nodes[0]
    return node.name == rep.output and node.attrs.get("use_bias") is False


def merges_into(bias: Finding, target: Finding) -> bool:
    """Whether the bias drop ``bias`` can be merged into the architectural fix
    ``target``: ``target`` replaces the same node last, and its output layer has a bias,
    no fused activation and the same output shape (so dropping its bias is exact)."""
    rep = target.replacement
    if not drops_only_bias(bias) or rep is None or rep.preserves_function \
            or rep.removed[-1] != bias.replacement.removed[0]:
        return False
    out = next((n for n in rep.nodes if n.name == rep.output), None)
    return (out is not None and bool(out.attrs.get("use_bias"))
            and out.attrs.get("activation") is None
            and out.output_shape == bias.replacement.nodes[0].output_shape)


# --- speed ------------------------------------------------------------------------------

def predicted_speedups(finding: Finding, graph: Optional[Graph], profile: Optional[Profile],
                       batches: Sequence[int]) -> dict:
    """Batch → predicted speed-up of ``finding``'s fix inside the model (``None`` where
    the time is unknown); empty without a fix, a graph or a profile."""
    if finding.replacement is None or graph is None or profile is None \
            or any(name not in graph.nodes for name in finding.replacement.removed):
        return {}
    by_batch = predict_replacement(graph, finding.replacement, profile, batches=batches,
                                   standalone=False)
    return {batch: s.speedup for batch, s in by_batch.items()}


def conclusive(run: dict) -> bool:
    """Whether a measured run (``Comparison.to_dict()``) tells the two sides apart: their
    medians differ by more than half their summed interquartile ranges."""
    before, after = run.get("latency_before_ms"), run.get("latency_after_ms")
    if before is None or after is None:
        return True
    spread = (run.get("iqr_before_ms") or 0.0) + (run.get("iqr_after_ms") or 0.0)
    return abs(before - after) > spread / 2


def measured_speedups(finding: Finding, bench=None) -> dict:
    """Batch → measured forward-pass speed-up of ``finding``'s fix, from a benchmark
    (a :class:`~keras_cnnkit.lint.report.Measurements`); empty when not measured.  A run
    that is not :func:`conclusive` is left out (the prediction stands at that batch)."""
    if bench is None:
        return {}
    runs = bench.fields_of(finding).get("runs", ())
    return {run["batch"]: run["speedup"] for run in runs
            if run.get("mode", "inference") == "inference" and run.get("speedup")
            and conclusive(run)}


def evidence(alt: Alternative, batches: Sequence[int]) -> tuple:
    """``(tier, speed-ups)``: the speed-ups the decision uses at ``batches`` (measured
    where measured, else predicted; unknown ones left out) and the best source among
    them (measured 2, predicted 1, none 0)."""
    speeds, tier = {}, _NO_ESTIMATE
    for batch in batches:
        if alt.measured.get(batch) is not None:
            speeds[batch], tier = alt.measured[batch], _MEASURED
        elif alt.predicted.get(batch) is not None:
            speeds[batch], tier = alt.predicted[batch], max(tier, _PREDICTED)
    return tier, speeds


def is_slower(alt: Alternative, batches: Sequence[int] = DECISION_BATCHES) -> bool:
    """Measured, or else predicted, below :data:`SLOWER_THAN` at one of ``batches``."""
    return any(s < SLOWER_THAN for s in evidence(alt, batches)[1].values())


def _mean(speeds: dict) -> float:
    return math.exp(sum(math.log(s) for s in speeds.values()) / len(speeds)) if speeds else 1.0


def ratio_text(speeds: dict) -> str:
    """``{1: 6.7, 32: 6.8}`` → ``"6.7×"``; ``{1: 0.55, 32: 1.7}`` → ``"0.55×/1.7× (b1/b32)"``
    (one figure when they are within 25% of each other)."""
    known = {b: s for b, s in sorted(speeds.items()) if s is not None}
    if not known:
        return "?"
    values = list(known.values())
    if max(values) <= 1.25 * min(values):
        return f"{_mean(known):.2g}×"
    return ("/".join(f"{s:.2g}×" for s in values)
            + " (" + "/".join(f"b{b}" for b in known) + ")")


def speed_words(speeds: dict) -> str:
    """``"≈6.7× faster"``, ``"≈1.3× slower"`` or ``"about as fast"`` (mixed: both ratios)."""
    known = {b: s for b, s in speeds.items() if s is not None}
    if not known:
        return "time unknown"
    if all(s >= FASTER_THAN for s in known.values()):
        return f"≈{ratio_text(known)} faster"
    if all(s < SLOWER_THAN for s in known.values()):
        return f"≈{ratio_text({b: 1 / s for b, s in known.items()})} slower"
    if all(SLOWER_THAN <= s < FASTER_THAN for s in known.values()):
        return "about as fast"
    return f"speed-up {ratio_text(known)}"


def gains_time(alt: Alternative, batches: Sequence[int] = DECISION_BATCHES) -> bool:
    """Whether a fix may be recommended for its speed: exact, or faster (at least
    :data:`FASTER_THAN`) at one of ``batches``, or without any time estimate."""
    tier, speeds = evidence(alt, batches)
    return (alt.finding.replacement.preserves_function or tier == _NO_ESTIMATE
            or any(s >= FASTER_THAN for s in speeds.values()))


def recommend(alternatives: Sequence[Alternative],
              batches: Sequence[int] = DECISION_BATCHES) -> Optional[Alternative]:
    """The recommended alternative (see the module docstring), or ``None``."""
    fixes = [a for a in alternatives if a.finding.replacement is not None and not a.slower
             and gains_time(a, batches)]
    architectural = [a for a in fixes if not drops_only_bias(a.finding)]

    def key(alt: Alternative) -> tuple:
        tier, speeds = evidence(alt, batches)
        flops = saving(alt.finding)[1] or 0
        return (tier, _mean(speeds) if tier else 0.0, flops)
    pool = architectural or fixes
    return max(pool, key=key) if pool else None


def _why(chosen: Optional[Alternative], alts: Sequence[Alternative], batches: Sequence[int],
         profile: str) -> str:
    """The one-line reason for the recommendation (or for there being none)."""
    fixes = [a for a in alts if a.finding.replacement is not None]
    if chosen is None:
        if not fixes:
            return "advice only: no automatic fix"
        measured = any(evidence(a, batches)[0] == _MEASURED for a in fixes)
        where = "measured here" if measured else f"predicted on {profile}"
        subject = "it saves" if len(fixes) == 1 else "they save"
        return f"no alternative is faster ({where}): {subject} parameters, not time"
    tier, speeds = evidence(chosen, batches)
    rivals = [a for a in fixes if a is not chosen and not a.companion]
    if tier == _MEASURED:
        why = "measured " + ", ".join(
            f"{s:.2f}× (b{b}{'' if b in chosen.measured else f', predicted on {profile}'})"
            for b, s in sorted(speeds.items()))
    elif tier == _PREDICTED:
        why = f"predicted {speed_words(speeds)} on {profile}"
    else:
        why = "no time estimate"
    if rivals:
        slower = sum(a.slower for a in rivals)
        if tier == _NO_ESTIMATE:
            why = "largest FLOP saving; " + why
        elif slower == len(rivals):
            why = f"the only alternative not slower: {why}"
        elif chosen.finding.replacement.preserves_function \
                and not any(gains_time(a, batches) for a in rivals):
            why = f"the only alternative that is exact or faster: {why}"
        else:
            why = f"the fastest of {len(rivals) + 1} alternatives: {why}"
    companions = [a for a in alts if a.companion]
    for alt in companions:
        why += (f"; with the exact {alt.finding.code} {alt.finding.symbol} fix merged "
                "into it")
    return why


# --- sites ------------------------------------------------------------------------------

@dataclasses.dataclass
class Context:
    """What building sites needs besides the findings.

    Attributes:
        graph: the IR the rules saw (layers of removed nodes, predictions).
        summary: the model's :class:`~keras_cnnkit.analysis.cost.ModelSummary` (shares).
        profile: the device profile of the predictions (``None``: no predictions).
        bench: a benchmark's :class:`~keras_cnnkit.lint.report.Measurements`, or ``None``.
        batches: the decision batches (default :data:`DECISION_BATCHES`).
    """

    graph: Optional[Graph] = None
    summary: object = None
    profile: Optional[Profile] = None
    bench: object = None
    batches: tuple = DECISION_BATCHES


def _order_key(alt: Alternative) -> tuple:
    params, flops = saving(alt.finding)
    return (alt.finding.replacement is None, alt.slower, -(flops or 0), -(params or 0),
            alt.finding.code, alt.finding.layer)


def make_site(findings: Sequence[Finding], ctx: Context) -> Finding:
    """One site finding from the rule findings of one site."""
    batches = tuple(ctx.batches)
    name = ctx.profile.name if ctx.profile is not None else ""
    alts = []
    for finding in findings:
        predicted = predicted_speedups(finding, ctx.graph, ctx.profile, batches)
        alt = Alternative(finding, predicted=predicted,
                          profile=name if predicted else "",
                          measured=measured_speedups(finding, ctx.bench))
        alt.slower = is_slower(alt, batches)
        alts.append(alt)
    chosen = recommend(alts, batches)
    if chosen is not None:
        for alt in alts:
            alt.companion = alt is not chosen and merges_into(alt.finding, chosen.finding)
    ordered = sorted((a for a in alts if a is not chosen), key=_order_key)
    if chosen is not None:
        ordered.insert(0, chosen)
    # The site is as severe as its most severe rule: a warning stays a warning whichever
    # alternative is recommended (--fail-on and the exit status see the problem, not the fix).
    site = dataclasses.replace(ordered[0].finding, alternatives=ordered,
                               severity=max(a.finding.severity for a in ordered),
                               recommended=0 if chosen is not None else None,
                               why=_why(chosen, ordered, batches, name or "no profile"))
    site.flops_share, site.params_share = shares(site, ctx.graph, ctx.summary)
    return site


def build_sites(findings: Iterable[Finding], ctx: Optional[Context] = None) -> list:
    """The site findings of ``findings`` (rule findings, or sites to rebuild), sorted by
    impact (:func:`sort_by_impact`)."""
    ctx = ctx or Context()
    rules = rule_findings(findings)
    return sort_by_impact(make_site(g, ctx) for g in group(rules, ctx.graph))


# --- impact -----------------------------------------------------------------------------

def site_saving(site: Finding) -> tuple:
    """``(params, flops)`` the site saves: its recommended alternative with its
    companions, or, with none recommended, its first alternative (never below 0;
    ``None`` where unknown)."""
    alts = site.alternatives or [Alternative(site)]
    counted = [alts[site.recommended if site.recommended is not None else 0]]
    counted += [a for a in alts if a.companion]
    params = flops = 0
    known_params = known_flops = False
    for alt in counted:
        p, f = saving(alt.finding)
        if p is not None:
            params, known_params = params + p, True
        if f is not None:
            flops, known_flops = flops + f, True
    return (max(params, 0) if known_params else None, max(flops, 0) if known_flops else None)


def involved_nodes(finding: Finding, graph: Optional[Graph]) -> list:
    """The nodes a finding is about (see the module docstring, *Impact*)."""
    names = [finding.node or finding.layer]
    if finding.replacement is not None:
        names += finding.replacement.removed
    first = finding.measurements.get("first")
    if graph is not None and isinstance(first, str) and first in graph.nodes \
            and names[0] in graph.nodes:
        name = names[0]
        while name != first and graph[name].inputs:
            name = graph[name].inputs[0]
            names.append(name)
    if graph is None:
        return []
    return [graph[n] for n in dict.fromkeys(names) if n in graph.nodes]


def _share(part: Optional[int], whole) -> Optional[float]:
    if part is None or not whole:
        return None
    return part / whole


def shares(site: Finding, graph: Optional[Graph], summary) -> tuple:
    """``(flops_share, params_share)`` of a site (see the module docstring)."""
    if summary is None:
        return None, None
    params, flops = site_saving(site)
    if (params or 0) > 0 or (flops or 0) > 0:
        return _share(flops or 0, summary.flops), _share(params or 0, summary.params)
    primary = (site.alternatives[0].finding if site.alternatives else site)
    costs = [node_cost(n) for n in involved_nodes(primary, graph)]
    macs = [c.macs for c in costs if c.macs is not None]
    weights = [c.params for c in costs if c.params is not None]
    if not costs or any(not c.known for c in costs):
        # An opaque layer hides its cost: the impact is unknown.
        return None, _share(sum(weights), summary.params) if weights else None
    return _share(sum(macs), summary.macs), _share(sum(weights), summary.params)


def impact(finding: Finding) -> Optional[float]:
    """The larger of a site's shares; ``None`` when its FLOP (or MAC) share is unknown
    (an opaque layer hides what it costs, so a parameter share alone says too little)."""
    if finding.flops_share is None:
        return None
    return max(finding.flops_share, finding.params_share or 0.0)


def below(finding: Finding, min_impact: float) -> bool:
    """True when the site's impact is known and below ``min_impact``."""
    value = impact(finding)
    return value is not None and value < min_impact


def sort_by_impact(findings: Iterable[Finding]) -> list:
    """Largest impact first; unknown impact last; ties by code and layer."""
    def key(f: Finding):
        value = impact(f)
        return (value is None, -(value or 0.0), f.code, f.layer, f.node)
    return sorted(findings, key=key)


def split_by_impact(sites: Iterable[Finding], min_impact: float) -> tuple:
    """``(reported, below)``: the sites at or above ``min_impact``, and the others."""
    sites = list(sites)
    return ([s for s in sites if not below(s, min_impact)],
            [s for s in sites if below(s, min_impact)])


@dataclasses.dataclass(frozen=True)
class Savings:
    """What the recommended fixes of a model's reported sites save, each site once."""

    sites: int
    params: int
    flops: int
    params_share: Optional[float]
    flops_share: Optional[float]

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return dataclasses.asdict(self)


def check_savings(sites: Iterable[Finding], summary, graph: Optional[Graph] = None
                  ) -> Savings:
    """The summed savings of ``sites`` with a recommended fix, each site once.

    Raises:
        AssertionError: the savings exceed the model's parameters or FLOPs, or two sites
            share a layer (a bug of the grouping: see the module docstring).
    """
    sites = [s for s in sites if s.recommended is not None]
    seen: dict = {}
    for site in sites:
        for alt in site.alternatives or [Alternative(site)]:
            for layer in site_layers(alt.finding, graph):
                if seen.setdefault(layer, id(site)) != id(site):
                    raise AssertionError(f"layer {layer!r} is in two sites")
    params = sum(site_saving(s)[0] or 0 for s in sites)
    flops = sum(site_saving(s)[1] or 0 for s in sites)
    if summary is not None and (params > summary.params or flops > summary.flops):
        raise AssertionError(f"the sites' savings ({params:,} params, {flops:,} FLOPs) "
                             f"exceed the model's ({summary.params:,}, {summary.flops:,})")
    return Savings(len(sites), params, flops,
                   _share(params, summary.params) if summary is not None else None,
                   _share(flops, summary.flops) if summary is not None else None)


# --- fixing -----------------------------------------------------------------------------

def not_faster_reason(site: Finding) -> str:
    """Why a bare ``--fix`` leaves a site alone."""
    return (f"{site.why or 'no alternative may be recommended'} (--fix-select "
            f"{site.alternatives[0].finding.code if site.alternatives else site.code} "
            "forces it)")


def fix_choice(finding: Finding, select: Optional[Sequence[str]] = None) -> tuple:
    """``(fixes, skipped)``: the rule findings whose fixes to apply for ``finding`` (a
    site or a rule finding), and ``(finding, reason)`` pairs for what is left alone.

    A bare fix (``select`` is ``None``) applies the recommended alternative and its
    companions, and leaves a site without one alone.  With ``select``
    (``--fix-select``: codes, prefixes, symbols), the choice is among the selected
    alternatives, slower ones included: the recommended one if selected and
    architectural, else the first selected architectural one (the site's order:
    not slower first, then by FLOP saving), else the first selected one; the selected
    bias drops that merge into it come along, and each alternative not selected is
    skipped as such.  A rule finding without alternatives is its own fix.
    """
    if not finding.alternatives:
        if finding.replacement is None:
            return [], [(finding, "no automatic fix")]
        if not finding_selected(finding, select):
            return [], [(finding, "not selected")]
        return [finding], []
    alts = [a for a in finding.alternatives if a.finding.replacement is not None]
    if not alts:
        return [], [(finding, "no automatic fix")]
    rec = finding.alternatives[finding.recommended] if finding.recommended is not None else None
    if select is None:
        if rec is None:
            return [], [(finding, not_faster_reason(finding))]
        return [rec.finding] + [a.finding for a in alts if a.companion], []
    picked = [a for a in alts if finding_selected(a.finding, select)]
    skipped = [(a.finding, "not selected") for a in alts if a not in picked]
    if not picked:
        return [], skipped
    architectural = [a for a in picked if not drops_only_bias(a.finding)]
    if rec in architectural:
        chosen = rec
    else:
        chosen = (architectural or picked)[0]
    companions = [a.finding for a in picked
                  if a is not chosen and merges_into(a.finding, chosen.finding)]
    skipped += [(a.finding, f"the selected alternative {chosen.finding.code} "
                            f"{chosen.finding.symbol} is applied instead")
                for a in picked if a is not chosen and a.finding not in companions]
    return [chosen.finding] + companions, skipped
