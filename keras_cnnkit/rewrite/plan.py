"""Which findings to apply together, and applying replacements to the graph IR itself.

Pure Python: importing this module never imports Keras.

Each site finding (:mod:`keras_cnnkit.lint.sites`) contributes the fixes
:func:`~keras_cnnkit.lint.sites.fix_choice` picks: by default its recommended
alternative and that alternative's exact companions, never an alternative measured or
predicted slower; with ``select`` (``--fix-select``) the selected alternatives, slower
ones included.  A rule's own finding is its own fix.

Two fixes conflict when their replacements remove a common node, or when one's
fragment reads a node that the other removes without replacing (an intermediate node
of its removed chain).  :func:`select_findings` keeps a conflict-free subset, the
biggest estimated FLOP saving first.

One overlap is resolved rather than skipped: a fix that only drops a bias (the batch
norm after the layer cancels it) on a node that a chosen architectural fix replaces is
merged into that fix, whose last layer is then built without the bias
(:func:`~keras_cnnkit.lint.sites.merges_into`).  Otherwise the fixed model would carry
the same wasted bias on its new layer, and a re-lint would report it again.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Iterable, Optional

from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.lint.findings import Finding, Replacement
from keras_cnnkit.lint.sites import fix_choice, merges_into


@dataclasses.dataclass
class Skipped:
    """A finding that was not applied on its own, and why.

    ``merged_into`` is set when the finding's fix was folded into another chosen fix
    (see the module docstring): its effect is in the fixed model all the same.
    """

    finding: Finding
    reason: str
    merged_into: Optional[Finding] = None


def _saving(finding: Finding) -> tuple:
    flops = (finding.flops_before or 0) - (finding.flops_after or 0)
    params = (finding.params_before or 0) - (finding.params_after or 0)
    return (flops, params)


def select_findings(findings: Iterable[Finding], select: Optional[Iterable[str]] = None,
                    graph: Optional[Graph] = None) -> tuple:
    """Split ``findings`` (sites or rule findings) into ``(chosen, skipped)``.

    ``chosen`` holds rule findings: the fixes to apply.  A site contributes what
    :func:`~keras_cnnkit.lint.sites.fix_choice` picks (``select``: codes, code prefixes,
    kebab-case symbols or ``ALL``, as :mod:`keras_cnnkit.lint.selectors` matches them);
    a site or finding with no fix, none selected, or none that may be applied is
    skipped with the reason, and so is a fix conflicting with one already chosen;
    candidates are taken in order of decreasing estimated FLOP (then parameter)
    saving.  With ``graph``, a replacement whose intermediate removed nodes feed nodes
    outside it (it would leave them dangling) is skipped too.
    """
    select = list(select) if select is not None else None
    chosen, skipped = [], []
    removed_all, intermediate_all, read_all = set(), set(), set()
    candidates = []
    for finding in findings:
        fixes, left = fix_choice(finding, select)
        skipped += [Skipped(f, reason) for f, reason in left]
        candidates.extend(fixes)
    candidates.sort(key=_saving, reverse=True)
    for finding in candidates:
        rep = finding.replacement
        removed = set(rep.removed)
        intermediate = removed - {rep.removed[-1]}
        reads = fragment_reads(rep)
        reason = None
        if removed & removed_all:
            index = _bias_merge_target(finding, chosen)
            if index is not None:
                chosen[index] = _merge_bias_drop(chosen[index], finding)
                skipped.append(Skipped(
                    finding, f"merged into the {chosen[index].code} {chosen[index].symbol} "
                    "fix, whose last layer is built without the bias", chosen[index]))
                continue
            reason = "overlaps a fix already chosen: " + ", ".join(sorted(removed & removed_all))
        elif reads & intermediate_all or intermediate & read_all:
            reason = "reads or removes a node another chosen fix needs"
        elif graph is not None:
            reason = dangling_reason(graph, rep)
        if reason:
            skipped.append(Skipped(finding, reason))
            continue
        chosen.append(finding)
        removed_all |= removed
        intermediate_all |= intermediate
        read_all |= reads
    return chosen, skipped


def _bias_merge_target(finding: Finding, chosen: list) -> Optional[int]:
    """Index of the chosen architectural fix that ``finding``'s bias drop can join."""
    return next((index for index, other in enumerate(chosen)
                 if merges_into(finding, other)), None)


def _merge_bias_drop(chosen: Finding, bias: Finding) -> Finding:
    """A copy of ``chosen`` whose output layer has no bias, with ``bias``'s saving added."""
    rep = copy.deepcopy(chosen.replacement)
    for node in rep.nodes:
        if node.name == rep.output:
            node.attrs["use_bias"] = False
    flops, params = _saving(bias)
    return dataclasses.replace(
        chosen, replacement=rep,
        params_after=None if chosen.params_after is None else chosen.params_after - params,
        flops_after=None if chosen.flops_after is None else chosen.flops_after - flops)


def fragment_reads(rep: Replacement) -> set:
    """Names of nodes outside the fragment that the fragment reads."""
    inside = {node.name for node in rep.nodes}
    reads = {src for node in rep.nodes for src in node.inputs if src not in inside}
    if rep.output not in inside:
        reads.add(rep.output)
    return reads


def dangling_reason(graph: Graph, rep: Replacement) -> Optional[str]:
    """Why ``rep`` cannot be applied to ``graph`` (unknown or still-read nodes), or None."""
    missing = [name for name in rep.removed if name not in graph.nodes]
    if missing:
        return "removes nodes not in the graph: " + ", ".join(missing)
    removed = set(rep.removed)
    shared = {n.attrs["shares_weights_with"] for n in graph if "shares_weights_with" in n.attrs}
    for name in rep.removed:
        if name in shared or "shares_weights_with" in graph[name].attrs:
            return f"{name!r} is a shared layer (called more than once)"
    for name in rep.removed[:-1]:
        outside = [c.name for c in graph.consumers(graph[name]) if c.name not in removed]
        if outside or name in graph.outputs:
            return f"{name!r} is also read by {', '.join(outside) or 'the model output'}"
    return None


def apply_to_graph(graph: Graph, findings: Iterable[Finding]) -> Graph:
    """A copy of ``graph`` with the findings' replacements applied, in the IR.

    The fragment's nodes take the place of the last removed node; its consumers read
    the fragment's output instead.  A fragment node whose name is already used by a
    node that stays gets a ``_fix`` suffix.  ``findings`` must be conflict-free (see
    :func:`select_findings`).
    """
    replacements = {f.replacement.removed[-1]: f.replacement for f in findings
                    if f.replacement is not None}
    removed = {name for rep in replacements.values() for name in rep.removed}
    kept = {name for name in graph.nodes if name not in removed}
    out = Graph(name=graph.name, inputs=list(graph.inputs), source=graph.source,
                frontend=graph.frontend, notes=list(graph.notes))
    renamed: dict = {}
    for node in graph:
        if node.name in replacements:
            rep = replacements[node.name]
            local = {}
            for frag in rep.nodes:
                new = copy.deepcopy(frag)
                new.name = _unique(frag.name, kept | set(out.nodes))
                local[frag.name] = new.name
                new.inputs = [local.get(src, renamed.get(src, src)) for src in frag.inputs]
                out.add(new)
            renamed[node.name] = local.get(rep.output, renamed.get(rep.output, rep.output))
        elif node.name not in removed:
            new = copy.copy(node)
            new.inputs = [renamed.get(src, src) for src in node.inputs]
            out.add(new)
    out.outputs = [renamed.get(name, name) for name in graph.outputs]
    return out


def _unique(name: str, taken: set) -> str:
    if name not in taken:
        return name
    i = 1
    while f"{name}_fix{i if i > 1 else ''}" in taken:
        i += 1
    return f"{name}_fix{i if i > 1 else ''}"
