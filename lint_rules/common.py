"""Shared helpers of the rules (not a rule itself).

:func:`costed_finding` is the one place where a finding's before/after figures are made:
the cost model (:mod:`keras_cnnkit.analysis.cost`) over the nodes a fix removes and over
the replacement fragment.  Rules never compute savings with formulas of their own.
Third-party rules can use it too.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Optional

from keras_cnnkit.analysis.cost import Cost, replacement_costs
from keras_cnnkit.analysis.fragments import FragmentBuilder, try_build
from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.lint.findings import Finding, Replacement, Rule

#: Input channels of an image stem (RGB, RGBA, grey): no rule proposes to thin it.
STEM_CHANNELS = 4


def costs_of(graph: Graph, removed: Iterable[str], nodes: Iterable[Node]) -> tuple:
    """``(before, after)`` costs of a candidate replacement."""
    return replacement_costs(graph, list(removed), list(nodes))


def saves(before: Cost, after: Cost, params: bool = True, flops: bool = False) -> bool:
    """True when ``after`` is cheaper than ``before`` in params (and/or FLOPs), both known."""
    ok = True
    if params:
        ok = ok and None not in (before.params, after.params) and after.params < before.params
    if flops:
        ok = ok and None not in (before.flops, after.flops) and after.flops < before.flops
    return ok


def costed_finding(rule: Rule, graph: Graph, node: Node, message: str, suggestion: str,
                   removed: Iterable[str], nodes: Iterable[Node], output: str,
                   preserves_function: bool = False,
                   measurements: Optional[dict] = None,
                   costs: Optional[tuple] = None) -> Finding:
    """A finding of ``rule`` at ``node`` carrying its replacement and before/after costs.

    Args:
        removed: names of the graph nodes the fix replaces, in topological order.
        nodes: the replacement fragment's nodes.
        output: the node (of the fragment, or of the graph when the fix only deletes
            nodes) whose output takes the place of the last removed node's output.
        costs: ``(before, after)`` when the rule already has them from :func:`costs_of`
            for the same ``removed`` and ``nodes``.
    """
    removed, nodes = list(removed), list(nodes)
    before, after = costs if costs is not None else replacement_costs(graph, removed, nodes)
    replacement = Replacement(removed=removed, nodes=nodes, output=output,
                              preserves_function=preserves_function)
    return rule.finding(
        node, message, suggestion=suggestion,
        params_before=before.params, params_after=after.params,
        macs_before=before.macs, macs_after=after.macs,
        flops_before=before.flops, flops_after=after.flops,
        replacement=replacement, measurements=dict(measurements or {}))


def findings_at(nodes: Iterable[Node], check: Callable[[Node], Optional[Finding]]
                ) -> Iterator[Finding]:
    """The findings ``check(node)`` makes over ``nodes`` (``None``: no finding there)."""
    for node in nodes:
        finding = check(node)
        if finding is not None:
            yield finding


def conv_replacement(rule: Rule, graph: Graph, node: Node,
                     build: Callable[[FragmentBuilder], None],
                     describe: Callable[[Cost, Cost], tuple],
                     accept: Callable[[Cost, Cost], bool] = saves,
                     measurements: Optional[dict] = None) -> Optional[Finding]:
    """The finding of ``rule`` that replaces one node by a fragment, if it is worth it.

    ``build(frag)`` adds the replacement's nodes to a :class:`FragmentBuilder` (the last
    one takes ``node``'s place); it is skipped when it cannot be built, does not produce
    ``node``'s output shape, or ``accept(before, after)`` says it saves nothing.
    ``describe(before, after)`` gives ``(message, suggestion)``.
    """
    def make():
        frag = FragmentBuilder(graph, node.name)
        build(frag)
        return frag

    frag = try_build(make)
    if frag is None or not frag.matches(node, frag.nodes[-1]):
        return None
    before, after = costs_of(graph, [node.name], frag.nodes)
    if not accept(before, after):
        return None
    message, suggestion = describe(before, after)
    return costed_finding(rule, graph, node, message, suggestion, [node.name], frag.nodes,
                          frag.nodes[-1].name, measurements=measurements,
                          costs=(before, after))


def num(value: Optional[int]) -> str:
    """``102400`` → ``"102,400"`` (``"?"`` when unknown)."""
    return "?" if value is None else f"{value:,}"


def kernel_text(kernel) -> str:
    """``(5, 5)`` → ``"5×5"``."""
    return "×".join(str(k) for k in kernel)
