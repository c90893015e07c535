"""How each fix carries what a trained model learned into its replacement.

Every fix declares how its new layers get their weights (:attr:`WeightPlan.carried`):

* ``exact``: the fixed model computes the same function (the bias and dropout moves;
  Flatten+Dense as a conv over the whole map).
* ``approximate``: the new layers are initialised from the old ones by a named method
  (:mod:`~keras_cnnkit.rewrite.decompose`), exact at full rank, with an error that
  :mod:`~keras_cnnkit.rewrite.fidelity` measures.
* ``reinitialised``: the new layers start from their initialisers.

To carry weights, an architectural fix's new layers are linear between them: the
intermediate convs of a bottleneck, a stack, a spatial pair or a separable pair get no
activation and no bias (the last one keeps the original's bias and activation).  The
rule's own fragment, with an activation between the new layers, is the
``reinitialised`` alternative (:func:`alternatives`).  Widths follow the chosen rank
(:class:`~keras_cnnkit.rewrite.decompose.RankRule`: the rule's width by default), and the
finding's after-costs are recomputed for them by the same cost model.

Pure IR and numpy: the original weights come from a ``weights_of(ir_name)`` callable
(:func:`keras_cnnkit.rewrite.carry.layer_weights` reads them from a live model).
Carriers are registered per rule symbol in :data:`CARRIERS`; a rule without one (or a
fragment a carrier does not recognise) is ``reinitialised``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

from keras_cnnkit.analysis.cost import replacement_costs
from keras_cnnkit.analysis.fragments import FragmentBuilder
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.lint.findings import (CARRYING_METHODS, Finding, Replacement, Severity,
                                        approximate_weights)
from keras_cnnkit.rewrite import decompose
from keras_cnnkit.rewrite.decompose import RankRule

EXACT = "exact"
APPROXIMATE = "approximate"
REINITIALISED = "reinitialised"

#: ``weights_of(ir_name)``: the layer's weights as numpy arrays, in Keras' order.
WeightsOf = Callable[[str], list]

#: Symbol of the findings made by :func:`low_rank_dense_finding` (no lint rule).
SVD_DENSE = "truncated-svd-dense"


@dataclasses.dataclass
class WeightPlan:
    """One fix and how its new layers get their weights.

    Attributes:
        finding: the fix as it will be applied: its fragment (widths at the chosen rank,
            linear between the new layers) and its after-costs recomputed for it.
        carried: :data:`EXACT`, :data:`APPROXIMATE` or :data:`REINITIALISED`.
        method: the carrying method (``"tucker2-hosvd"``, ``"gap-sum"``...).
        note: what the method's accuracy depends on, in words.
        weights: fragment node name → its weights (numpy, Keras' order).
        ranks: fragment node name → the width chosen for it.
        rank_rule: how the ranks were chosen.
        bias_to_batchnorm: ``(batch norm IR name, bias)`` when the fixed output layer
            has no bias but the original had one: it moves into the batch norm after.
        refit_node: the fragment node a data-aware refit may solve for (its last
            weighted layer), or ``None``.
        original: the finding as the rule made it.
        delegate: the fix is applied as the rule made it, with the rewrite's own weight
            copying (function-preserving fixes; fixes that keep their layers).
    """

    finding: Finding
    carried: str
    method: str = ""
    note: str = ""
    weights: dict = dataclasses.field(default_factory=dict)
    ranks: dict = dataclasses.field(default_factory=dict)
    rank_rule: RankRule = dataclasses.field(default_factory=RankRule)
    bias_to_batchnorm: Optional[tuple] = None
    refit_node: Optional[str] = None
    original: Optional[Finding] = None
    delegate: bool = False

    @property
    def how(self) -> str:
        """``"exact"``, ``"approximate: <method in words> rank <r>"`` (as the lint
        report's :attr:`~keras_cnnkit.lint.findings.Alternative.weights`, at the chosen
        rank) or ``"reinitialised"``."""
        if self.carried != APPROXIMATE:
            return self.carried
        return approximate_weights(method_words(self.method, self.finding.symbol),
                                   list(self.ranks.values()))

    @property
    def label(self) -> str:
        """``"CNK103 missing-bottleneck at conv2"``."""
        f = self.finding
        return f"{f.code + ' ' if f.code else ''}{f.symbol} at {f.layer}"

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        f = self.finding
        return {"code": f.code, "symbol": f.symbol, "layer": f.layer, "weights": self.how,
                "note": self.note, "ranks": dict(self.ranks), "rank": str(self.rank_rule),
                "params_before": f.params_before, "params_after": f.params_after,
                "flops_before": f.flops_before, "flops_after": f.flops_after}


#: Method id → its name in words (reports); ``rank<m>-depthwise-svd`` as the rank-1 one.
METHOD_WORDS = {
    "tucker2-hosvd": CARRYING_METHODS["missing-bottleneck"],
    "tucker1-svd": "Tucker-1 SVD of the input mode",
    "rank1-depthwise-svd": CARRYING_METHODS["depthwise-separable-candidate"],
    "spatial-svd": CARRYING_METHODS["asymmetric-factorization"],
    "stacked-lstsq": CARRYING_METHODS["large-kernel"],
    "gap-sum": CARRYING_METHODS["flatten-dense-head"],
    "truncated-svd": CARRYING_METHODS[SVD_DENSE],
}


def method_words(method: str, symbol: str = "") -> str:
    """The method id ``method`` in words (the rule's method for ``weights-kept``)."""
    if method.endswith("-depthwise-svd"):
        method = "rank1-depthwise-svd"
    if method == "weights-kept":
        return CARRYING_METHODS.get(symbol, "weights kept")
    return METHOD_WORDS.get(method, method)


class _Unsupported(Exception):
    """The fragment is not one this carrier can carry weights into (why)."""


@dataclasses.dataclass
class _Context:
    finding: Finding
    graph: Graph
    weights_of: WeightsOf
    rank: RankRule
    dtype: Any = np.float32

    @property
    def rep(self) -> Replacement:
        """The finding's replacement."""
        return self.finding.replacement

    def node(self, index: int) -> Node:
        """A removed node of the graph."""
        return self.graph[self.rep.removed[index]]

    def output_node(self) -> Node:
        """The rule's fragment output node."""
        return next(n for n in self.rep.nodes if n.name == self.rep.output)

    def conv(self) -> Node:
        """The single standard conv the fix replaces."""
        if len(self.rep.removed) != 1:
            raise _Unsupported("the fix replaces more than one node")
        node = self.node(0)
        if node.op != OpKind.CONV or (node.attr("groups", 1) or 1) != 1:
            raise _Unsupported(f"{node.name!r} is not a standard convolution")
        return node

    def kernel_bias(self, name: str) -> tuple:
        """``(kernel, bias or None)`` of the original layer at ``name``."""
        try:
            weights = self.weights_of(name)
        except KeyError as exc:
            raise _Unsupported(f"the weights of {name!r} are not reachable ({exc})") from None
        self.dtype = np.asarray(weights[0]).dtype
        return np.asarray(weights[0]), (np.asarray(weights[1]) if len(weights) > 1 else None)

    def suffix(self, node: Node) -> str:
        """The suffix the rule gave a fragment node (its name after ``base_``)."""
        base = self.rep.removed[-1].replace("/", "_") + "_"
        return node.name[len(base):] if node.name.startswith(base) else node.name

    def output_layer(self, name: str, kernel: np.ndarray, bias) -> tuple:
        """``(weights, bias_to_batchnorm)`` of the fragment's output layer ``name``:
        the original's bias goes to the new layer if it has one, else to the batch norm
        after (a merged bias drop)."""
        out_bias = self.output_node().attrs.get("use_bias", True)
        if out_bias:
            return [kernel, bias if bias is not None else np.zeros(kernel.shape[-1])], None
        if bias is None:
            return [kernel], None
        consumer = self.graph.single_consumer(self.node(-1))
        if consumer is None or consumer.op != OpKind.BATCHNORM:
            raise _Unsupported(f"the bias of {name!r} has no batch norm to go to")
        return [kernel], (consumer.name, np.asarray(bias))

    def plan(self, nodes: list, carried: str, method: str, note: str, weights: dict,
             ranks: dict, refit_node: Optional[str], bias_to_batchnorm=None,
             output: Optional[str] = None) -> WeightPlan:
        """The plan with ``nodes`` as the fragment and its costs recomputed."""
        rep = Replacement(removed=list(self.rep.removed), nodes=list(nodes),
                          output=output or nodes[-1].name,
                          preserves_function=carried == EXACT)
        before, after = replacement_costs(self.graph, rep.removed, rep.nodes)
        finding = dataclasses.replace(
            self.finding, replacement=rep, params_before=before.params,
            params_after=after.params, macs_before=before.macs, macs_after=after.macs,
            flops_before=before.flops, flops_after=after.flops,
            measurements=dict(self.finding.measurements, weights=(
                approximate_weights(method_words(method, self.finding.symbol),
                                    list(ranks.values()))
                if carried == APPROXIMATE else carried)))
        cast = {name: [np.asarray(w, dtype=self.dtype) for w in arrays]
                for name, arrays in weights.items()}
        return WeightPlan(finding=finding, carried=carried, method=method, note=note,
                          weights=cast, ranks=ranks, rank_rule=self.rank,
                          bias_to_batchnorm=bias_to_batchnorm, refit_node=refit_node,
                          original=self.finding)


def _linear(frag: FragmentBuilder, suffix: str, source: str, like: Node, filters: int,
            kernel: tuple, **kwargs) -> Node:
    """An intermediate conv of a weight-carrying fragment: no bias, no activation."""
    return frag.conv(suffix, source, like, filters, kernel, use_bias=False, activation=None,
                     **kwargs)


def _last(ctx: _Context, frag: FragmentBuilder, suffix: str, source: str, like: Node,
          filters: int, kernel: tuple, **kwargs) -> Node:
    """The fragment's output conv: the rule's bias and activation."""
    out = ctx.output_node()
    return frag.conv(suffix, source, like, filters, kernel,
                     use_bias=out.attrs.get("use_bias", True),
                     activation=out.attrs.get("activation"), **kwargs)


# -- carriers, one per rule ------------------------------------------------------------


def _bottleneck(ctx: _Context) -> WeightPlan:
    """missing-bottleneck: Tucker-2 (1×1 → k×k → 1×1) or the input-mode form."""
    conv = ctx.conv()
    kernel, bias = ctx.kernel_bias(conv.name)
    nodes = ctx.rep.nodes
    if len(nodes) not in (2, 3) or any(n.op != OpKind.CONV for n in nodes):
        raise _Unsupported("not a 1×1 reduce + k×k (+ 1×1 expand) fragment")
    ones = (1,) * conv.attrs["rank"]
    s_in = np.linalg.svd(decompose.unfold(kernel, -2), compute_uv=False)
    r_in = ctx.rank.choose(s_in, nodes[0].attrs["filters"])
    frag = FragmentBuilder(ctx.graph, ctx.rep.removed[-1])
    reduce = _linear(frag, ctx.suffix(nodes[0]), conv.inputs[0], conv, r_in, ones,
                     padding="valid")
    spatial = {"strides": conv.attrs["strides"], "dilation": conv.attrs["dilation"]}
    if len(nodes) == 3:
        s_out = np.linalg.svd(decompose.unfold(kernel, -1), compute_uv=False)
        r_out = ctx.rank.choose(s_out, nodes[1].attrs["filters"])
        first, core, last = decompose.tucker2(kernel, r_in, r_out)
        mid = _linear(frag, ctx.suffix(nodes[1]), reduce.name, conv, r_out,
                      conv.attrs["kernel"], **spatial)
        out = _last(ctx, frag, ctx.suffix(nodes[2]), mid.name, conv, kernel.shape[-1], ones,
                    padding="valid")
        weights, to_bn = ctx.output_layer(out.name, last, bias)
        return ctx.plan(frag.nodes, APPROXIMATE, "tucker2-hosvd",
                        "HOSVD of the kernel's input and output modes (Kim et al. 2016); "
                        "exact at full rank, no activation between the three convs",
                        {reduce.name: [first], mid.name: [core], out.name: weights},
                        {reduce.name: r_in, mid.name: r_out}, out.name, to_bn)
    first, core = decompose.tucker_in(kernel, r_in)
    out = _last(ctx, frag, ctx.suffix(nodes[1]), reduce.name, conv, kernel.shape[-1],
                conv.attrs["kernel"], **spatial)
    weights, to_bn = ctx.output_layer(out.name, core, bias)
    return ctx.plan(frag.nodes, APPROXIMATE, "tucker1-svd",
                    "SVD of the kernel's input mode (a 1×1 reduce, then the k×k); exact at "
                    "full rank, no activation between the two convs",
                    {reduce.name: [first], out.name: weights}, {reduce.name: r_in},
                    out.name, to_bn)


def _separable(ctx: _Context) -> WeightPlan:
    """depthwise-separable-candidate: rank-m per input channel (depthwise × pointwise)."""
    conv = ctx.conv()
    kernel, bias = ctx.kernel_bias(conv.name)
    nodes = ctx.rep.nodes
    if [n.op for n in nodes] != [OpKind.DEPTHWISE_CONV, OpKind.CONV]:
        raise _Unsupported("not a depthwise + pointwise fragment")
    if conv.attrs["rank"] not in (1, 2):
        raise _Unsupported("no depthwise conv of that rank")
    # The energy kept by multiplier m, over all input channels, column by column.
    s = decompose.depthwise_singular_values(kernel)
    multiplier = ctx.rank.choose(np.sqrt((s ** 2).sum(axis=0)),
                                 nodes[0].attrs.get("depth_multiplier", 1) or 1)
    c_in = kernel.shape[-2]
    frag = FragmentBuilder(ctx.graph, ctx.rep.removed[-1])
    attrs = dict(nodes[0].attrs, depth_multiplier=multiplier, filters=c_in * multiplier,
                 groups=c_in, use_bias=False, activation=None)
    depthwise = frag.add(ctx.suffix(nodes[0]), OpKind.DEPTHWISE_CONV, [conv.inputs[0]], attrs,
                         nodes[0].source_class)
    out = _last(ctx, frag, ctx.suffix(nodes[1]), depthwise.name, conv, kernel.shape[-1],
                (1,) * conv.attrs["rank"], padding="valid")
    dw, pw = decompose.depthwise_pointwise(kernel, multiplier)
    weights, to_bn = ctx.output_layer(out.name, pw, bias)
    return ctx.plan(frag.nodes, APPROXIMATE, "rank1-depthwise-svd" if multiplier == 1
                    else f"rank{multiplier}-depthwise-svd",
                    f"per input channel, the best rank-{multiplier} approximation of its "
                    "(k·k × out) slice; exact when every slice has that rank",
                    {depthwise.name: [dw], out.name: weights}, {depthwise.name: multiplier},
                    out.name, to_bn)


def _asymmetric(ctx: _Context) -> WeightPlan:
    """asymmetric-factorization: spatial SVD into 1×n then n×1 (Jaderberg et al.)."""
    conv = ctx.conv()
    kernel, bias = ctx.kernel_bias(conv.name)
    nodes = ctx.rep.nodes
    if len(nodes) != 2 or conv.attrs["rank"] != 2 or any(n.op != OpKind.CONV for n in nodes):
        raise _Unsupported("not a 1×n + n×1 fragment")
    k_first = tuple(nodes[0].attrs["kernel"])
    if k_first[0] == 1 and k_first[1] > 1:
        first_axis = 1
    elif k_first[1] == 1 and k_first[0] > 1:
        first_axis = 0
    else:
        raise _Unsupported("the first conv is not 1×n or n×1")
    if set(conv.attrs["strides"]) != {1} or set(conv.attrs["dilation"]) != {1}:
        raise _Unsupported("strided or dilated")
    s = np.linalg.svd(decompose.spatial_matrix(kernel, first_axis), compute_uv=False)
    width = ctx.rank.choose(s, nodes[0].attrs["filters"])
    first, second = decompose.spatial_svd(kernel, width, first_axis)
    frag = FragmentBuilder(ctx.graph, ctx.rep.removed[-1])
    a = _linear(frag, ctx.suffix(nodes[0]), conv.inputs[0], conv, width, first.shape[:2])
    out = _last(ctx, frag, ctx.suffix(nodes[1]), a.name, conv, kernel.shape[-1],
                second.shape[:2])
    weights, to_bn = ctx.output_layer(out.name, second, bias)
    return ctx.plan(frag.nodes, APPROXIMATE, "spatial-svd",
                    "SVD of the kernel as a (k·in × k·out) matrix (Jaderberg et al. 2014); "
                    f"exact at rank {s.size}, no activation between the two convs",
                    {a.name: [first], out.name: weights}, {a.name: width}, out.name, to_bn)


def _stacked(ctx: _Context) -> WeightPlan:
    """large-kernel: ``depth`` stacked 3×3 kernels fitted to the k×k one."""
    conv = ctx.conv()
    kernel, bias = ctx.kernel_bias(conv.name)
    nodes = ctx.rep.nodes
    depth = len(nodes)
    window = tuple(conv.attrs["kernel"])
    if any(k != 2 * depth + 1 for k in window) or any(
            set(n.attrs["kernel"]) != {3} for n in nodes):
        raise _Unsupported(f"a {window} kernel is not {depth} stacked 3-tap kernels")
    if set(conv.attrs["strides"]) != {1} or set(conv.attrs["dilation"]) != {1}:
        raise _Unsupported("strided or dilated: the stack's composition is another window")
    padding = conv.attrs.get("padding")
    if padding not in ("same", "valid"):
        raise _Unsupported(f"padding {padding!r}")
    s = decompose.stacked_singular_values(kernel)
    width = ctx.rank.choose(s, nodes[0].attrs["filters"])
    kernels = decompose.stacked(kernel, depth, width)
    frag = FragmentBuilder(ctx.graph, ctx.rep.removed[-1])
    src, weights, ranks = conv.inputs[0], {}, {}
    for node, k in zip(nodes[:-1], kernels[:-1]):
        src = _linear(frag, ctx.suffix(node), src, conv, width, (3,) * len(window)).name
        weights[src], ranks[src] = [k], width
    out = _last(ctx, frag, ctx.suffix(nodes[-1]), src, conv, kernel.shape[-1],
                (3,) * len(window))
    weights[out.name], to_bn = ctx.output_layer(out.name, kernels[-1], bias)
    composed = kernels[0]
    for k in kernels[1:]:
        composed = decompose.compose(composed, k)
    residual = float(np.linalg.norm(composed - kernel) / max(np.linalg.norm(kernel), 1e-30))
    if padding == "valid" and residual < 1e-6:
        return ctx.plan(frag.nodes, EXACT, "stacked-composition",
                        "the stacked 'valid' convs compose to the kernel exactly",
                        weights, ranks, None, to_bn)
    border = (f"; with 'same' padding the outer {depth - 1} row(s)/column(s) differ "
              "(the stack zero-pads in between)" if padding == "same" else "")
    return ctx.plan(frag.nodes, APPROXIMATE, "stacked-lstsq",
                    f"least-squares fit of {depth} stacked 3×3 kernels with no activation "
                    f"between them (kernel residual {residual:.2g}){border}",
                    weights, ranks, out.name, to_bn)


def _flattened(ctx: _Context) -> tuple:
    """``(sources, position_of_row, channel_of_row, channels)`` of a flattened head."""
    sources, positions, channels, offset = [], [], [], 0
    for name in ctx.rep.removed[:-1]:
        flat = ctx.graph[name]
        if flat.op not in (OpKind.FLATTEN, OpKind.RESHAPE):
            continue
        src = ctx.graph[flat.inputs[0]]
        if src.output_shape is None or None in src.output_shape:
            raise _Unsupported(f"the shape of {src.name!r} is unknown")
        pos, chan = decompose.flatten_positions(
            src.output_shape, src.data_format == "channels_first",
            flat.op == OpKind.FLATTEN and flat.attr("data_format") == "channels_first")
        sources.append(src)
        positions.append(pos)
        channels.append(chan + offset)
        offset += src.channels()
    if not sources:
        raise _Unsupported("no flatten in the replaced nodes")
    return sources, np.concatenate(positions), np.concatenate(channels), offset


def _gap_head(ctx: _Context) -> WeightPlan:
    """flatten-dense-head: the Dense kernel summed over positions."""
    dense = ctx.node(-1)
    if dense.op != OpKind.DENSE or ctx.output_node().op != OpKind.DENSE:
        raise _Unsupported("the head does not end in a Dense")
    kernel, bias = ctx.kernel_bias(dense.name)
    _, _, channel_of_row, channels = _flattened(ctx)
    if channel_of_row.size != kernel.shape[0]:
        raise _Unsupported("the flattened width does not match the Dense kernel")
    out = ctx.output_node()
    weights, to_bn = ctx.output_layer(out.name, decompose.gap_dense(kernel, channel_of_row,
                                                                      channels), bias)
    return ctx.plan(list(ctx.rep.nodes), APPROXIMATE, "gap-sum",
                    "Dense kernel summed over positions: exact when every position of the "
                    "map holds the same features, approximate otherwise",
                    {out.name: weights}, {}, out.name, to_bn, output=ctx.rep.output)


def _svd_dense(ctx: _Context) -> WeightPlan:
    """truncated-svd-dense: Dense → Dense(rank, linear, no bias) → Dense."""
    dense = ctx.node(0)
    nodes = ctx.rep.nodes
    if len(ctx.rep.removed) != 1 or dense.op != OpKind.DENSE or [
            n.op for n in nodes] != [OpKind.DENSE, OpKind.DENSE]:
        raise _Unsupported("not a Dense → Dense, Dense fragment")
    kernel, bias = ctx.kernel_bias(dense.name)
    s = np.linalg.svd(kernel, compute_uv=False)
    rank = ctx.rank.choose(s, nodes[0].attrs["units"])
    first, second = decompose.svd_dense(kernel, rank)
    frag = FragmentBuilder(ctx.graph, ctx.rep.removed[-1])
    low = frag.copy(dense, [dense.inputs[0]], suffix=ctx.suffix(nodes[0]), units=rank,
                    use_bias=False, activation=None)
    out = ctx.output_node()
    high = frag.copy(dense, [low.name], suffix=ctx.suffix(nodes[1]),
                     use_bias=out.attrs.get("use_bias", True),
                     activation=out.attrs.get("activation"), in_features=rank)
    weights, to_bn = ctx.output_layer(high.name, second, bias)
    return ctx.plan(frag.nodes, APPROXIMATE, "truncated-svd",
                    "truncated SVD of the Dense kernel (Fast R-CNN §3.1); exact at rank "
                    f"{min(kernel.shape)}", {low.name: [first], high.name: weights},
                    {low.name: rank}, high.name, to_bn)


def _kept(note: str) -> Callable[[_Context], WeightPlan]:
    def carrier(ctx: _Context) -> WeightPlan:
        return WeightPlan(ctx.finding, APPROXIMATE, "weights-kept", note, original=ctx.finding,
                          rank_rule=ctx.rank, delegate=True)
    return carrier


#: Rule symbol → carrier ``(context) -> WeightPlan``; raise ``_Unsupported`` to decline.
CARRIERS: dict = {
    "missing-bottleneck": _bottleneck,
    "depthwise-separable-candidate": _separable,
    "asymmetric-factorization": _asymmetric,
    "large-kernel": _stacked,
    "flatten-dense-head": _gap_head,
    SVD_DENSE: _svd_dense,
    "relu-after-projection": _kept(
        "the projection keeps its weights; its output loses the activation"),
    "group-conv-without-shuffle": _kept(
        "the group conv keeps its weights; it now reads shuffled channels"),
}


def plan_weights(finding: Finding, graph: Graph, weights_of: WeightsOf,
                 rank=None) -> WeightPlan:
    """How ``finding``'s fix carries the weights of the model ``graph`` was made from.

    Args:
        finding: a finding with a replacement, made on ``graph``.
        graph: the model's IR.
        weights_of: IR name → that layer's weights (numpy, Keras' order).
        rank: a :class:`RankRule` or its text (``None``: the rule's width; ``16``;
            ``"energy:0.95"``; ``"ratio:0.25"``).

    Raises:
        ValueError: ``finding`` has no replacement, or ``rank`` is malformed.
    """
    if finding.replacement is None:
        raise ValueError(f"{finding.code} at {finding.layer!r} has no replacement")
    rule = RankRule.parse(rank)
    if finding.replacement.preserves_function:
        return WeightPlan(finding, EXACT, "function-preserving",
                          "the rewrite keeps the model's function", original=finding,
                          rank_rule=rule, delegate=True)
    carrier = CARRIERS.get(finding.symbol)
    reason = f"no weight carrier for {finding.symbol}"
    if carrier is not None:
        try:
            return carrier(_Context(finding, graph, weights_of, rule))
        except _Unsupported as exc:
            reason = str(exc)
    return WeightPlan(finding, REINITIALISED, note=f"new layers start from their "
                      f"initialisers ({reason})", original=finding, rank_rule=rule,
                      delegate=True)


def conv_head_plan(finding: Finding, graph: Graph, weights_of: WeightsOf) -> WeightPlan:
    """The exact alternative of a ``flatten-dense-head`` finding on one map: the Dense
    as a "valid" conv whose window is the whole map, then a Flatten (Network in
    Network's fully convolutional head).  Same parameters and FLOPs; no saving, but
    the model then accepts larger inputs.  ``reinitialised`` where it does not apply."""
    ctx = _Context(finding, graph, weights_of, RankRule())
    try:
        dense = ctx.node(-1)
        kernel, bias = ctx.kernel_bias(dense.name)
        sources, positions, channels, _ = _flattened(ctx)
        if len(sources) != 1 or dense.op != OpKind.DENSE:
            raise _Unsupported("the head does not flatten exactly one map into a Dense")
        src = sources[0]
        spatial = src.spatial()
        frag = FragmentBuilder(graph, dense.name)
        last = src.name
        for name in ctx.rep.removed[1:-1]:
            last = frag.copy(graph[name], [last], suffix=name.replace("/", "_")).name
        act = dense.attr("activation")
        fused = src.data_format == "channels_last"
        conv = frag.add("conv", OpKind.CONV, [last], {
            "rank": len(spatial), "kernel": tuple(spatial), "strides": (1,) * len(spatial),
            "dilation": (1,) * len(spatial), "padding": "valid",
            "in_channels": src.channels(), "filters": kernel.shape[1], "groups": 1,
            "use_bias": dense.attr("use_bias", True), "activation": act if fused else None,
            "data_format": src.data_format}, f"Conv{len(spatial)}D")
        out = frag.add("flat", OpKind.FLATTEN, [conv.name], {"data_format": "channels_last"},
                       "Flatten")
        if act not in (None, "linear") and not fused:
            out = frag.add("act", OpKind.ACTIVATION, [out.name], {"activation": act},
                           "Activation")
        conv_kernel = decompose.dense_as_conv(kernel, spatial, positions, channels)
        weights = [conv_kernel] + ([bias] if bias is not None else [])
    except _Unsupported as exc:
        return WeightPlan(finding, REINITIALISED, note=str(exc), original=finding,
                          delegate=True)
    return ctx.plan(frag.nodes, EXACT, "dense-as-conv",
                    "the Dense as a 'valid' conv over the whole map: the same function",
                    {conv.name: weights}, {}, None, output=out.name)


def alternatives(finding: Finding, graph: Graph, weights_of: WeightsOf,
                 rank=None) -> list:
    """Every form of ``finding``'s fix with how it carries weights: the weight-carrying
    plan first, then the rule's own fragment when it differs (``reinitialised``: an
    activation between the new layers), then exact variants (the conv head)."""
    plans = [plan_weights(finding, graph, weights_of, rank)]
    if not plans[0].delegate and _structure(plans[0].finding) != _structure(finding):
        plans.append(WeightPlan(finding, REINITIALISED,
                                note="the rule's fragment, with its activations between the "
                                     "new layers: no linear map carries the weights",
                                original=finding, rank_rule=plans[0].rank_rule,
                                delegate=True))
    if finding.symbol == "flatten-dense-head":
        head = conv_head_plan(finding, graph, weights_of)
        if head.carried == EXACT:
            plans.append(head)
    return plans


def _structure(finding: Finding) -> list:
    return [(n.op, n.attrs.get("activation"), n.attrs.get("filters"), n.attrs.get("units"),
             n.attrs.get("use_bias")) for n in finding.replacement.nodes]


def low_rank_dense_finding(graph: Graph, name: str, rank: int) -> Finding:
    """A finding (no lint rule; symbol :data:`SVD_DENSE`) replacing Dense ``name`` by
    Dense(``rank``, linear, no bias) → Dense, costed by the cost model; its weights
    come from :func:`plan_weights` (truncated SVD)."""
    dense = graph[name]
    if dense.op != OpKind.DENSE:
        raise ValueError(f"{name!r} is not a Dense layer")
    frag = FragmentBuilder(graph, name)
    low = frag.copy(dense, [dense.inputs[0]], suffix="svd", units=int(rank), use_bias=False,
                    activation=None)
    frag.copy(dense, [low.name], suffix="fixed", in_features=int(rank))
    before, after = replacement_costs(graph, [name], frag.nodes)
    return Finding(code="", symbol=SVD_DENSE, severity=Severity.INFO,
                   layer=dense.layer or name, node=name,
                   message=f"Dense {dense.attrs.get('in_features')}→{dense.attrs.get('units')} "
                           f"as a rank-{rank} product",
                   params_before=before.params, params_after=after.params,
                   macs_before=before.macs, macs_after=after.macs, flops_before=before.flops,
                   flops_after=after.flops,
                   replacement=Replacement([name], frag.nodes, frag.nodes[-1].name))
