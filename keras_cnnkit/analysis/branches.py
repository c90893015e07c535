"""Parallel linear branches of one tensor, summed: what structural re-parameterisation
merges into one convolution (RepVGG, ACNet, MobileOne, DBB).

A *branch* of a tensor ``x`` is one of

* ``conv``: a convolution of ``x`` without an activation, optionally followed by a batch
  norm (``BN(W * x + b)``);
* ``bn``: a batch norm of ``x`` itself (RepVGG's identity branch);
* ``identity``: ``x`` itself,

each optionally followed by a scalar rescaling (``x·a + b``: Keras' ``Rescaling``; the
``0 + conv(x)`` a PyTorch export writes as an ``Add`` of a constant).  Each is affine in
``x``, so a sum of them is one convolution: every kernel, scaled by its batch norm, is
placed at its offset in the largest one, the identity becomes a kernel with one tap per
channel, and the biases and shifts add up (Ding et al., "RepVGG: Making
VGG-style ConvNets Great Again", CVPR 2021, §3.3).  :func:`branch_sums` finds the sums
whose branches line up (same stride, groups and output channels, kernels whose windows
sit inside one window) and gives the merged conv's geometry; the weights themselves are
computed by :mod:`keras_cnnkit.rewrite.reparam`.

The sum may be one ``Add`` of n inputs (Keras) or a tree of two-input ``Add`` nodes that
feed only each other (an ONNX export).  Pure Python: the IR only.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.fragments import FragmentBuilder
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.ops.geometry import axis_padding, split

#: Convolution kinds a branch may hold.
_CONVS = (OpKind.CONV, OpKind.DEPTHWISE_CONV)


#: Rescalings a branch may end with (a scalar scale and shift).
_SCALAR_MODES = ("rescaling", "scalar")


@dataclasses.dataclass
class Branch:
    """One summand: ``kind`` is ``"conv"``, ``"bn"`` or ``"identity"``; ``conv``, ``bn``
    and ``rescale`` are its nodes (``None`` where absent)."""

    kind: str
    conv: Optional[Node] = None
    bn: Optional[Node] = None
    rescale: Optional[Node] = None

    @property
    def nodes(self) -> list:
        """The branch's own nodes, in order (none for the bare identity)."""
        return [n for n in (self.conv, self.bn, self.rescale) if n is not None]


@dataclasses.dataclass
class BranchSum:
    """A sum of linear branches of ``source`` that one convolution computes exactly.

    Attributes:
        source: the tensor every branch reads.
        adds: the ``Add`` nodes of the sum, in topological order (the last is its output).
        branches: the summands.
        removed: every node the merge replaces (branches and adds), topological order.
        kernel: the merged kernel size per spatial axis.
        pads: ``(begin, end)`` zero padding of the merged conv per spatial axis.
        offsets: per branch, where its kernel sits in the merged one (per axis; the
            identity's single tap included).
        strides, groups, filters, data_format: the merged conv's (the branches').
        in_spatial: the source's spatial dims.
    """

    source: Node
    adds: list
    branches: list
    removed: list
    kernel: tuple
    pads: tuple
    offsets: list
    strides: tuple
    groups: int
    filters: int
    data_format: str
    in_spatial: tuple

    @property
    def output(self) -> Node:
        """The node whose value the merged conv replaces."""
        return self.adds[-1]

    @property
    def padding(self):
        """The merged conv's ``padding`` attribute: ``"valid"`` when there is none,
        ``"same"`` when the pads are TensorFlow's for that kernel, else the explicit pads
        (``((begin, end), ...)``)."""
        if all(p == (0, 0) for p in self.pads):
            return "valid"
        same = []
        for n, k, s in zip(self.in_spatial, self.kernel, self.strides):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            same.append((total // 2, total - total // 2))
        return "same" if tuple(same) == tuple(self.pads) else tuple(self.pads)

    @property
    def depthwise(self) -> bool:
        """True when the merged conv is depthwise (one group per channel, multiplier 1)."""
        channels = self.source.channels()
        return self.groups > 1 and self.groups == channels == self.filters


def merged_conv(graph: Graph, merge: BranchSum) -> Node:
    """The IR node of the one convolution that computes ``merge``'s sum (with a bias)."""
    frag = FragmentBuilder(graph, merge.output.name)
    like = next(b.conv for b in merge.branches if b.conv is not None)
    return frag.conv("merged", merge.source.name, like, merge.filters, merge.kernel,
                     strides=merge.strides, padding=merge.padding, groups=merge.groups,
                     depthwise=merge.depthwise, use_bias=True, activation=None)


def branch_sums(graph: Graph) -> list:
    """Every sum of two or more linear branches of one tensor (at least one a conv) in
    ``graph`` that merges exactly into one convolution."""
    order = {name: i for i, name in enumerate(graph.nodes)}
    out = []
    for node in graph:
        if node.op != OpKind.ADD or _inner_add(graph, node):
            continue
        adds, terms = _add_tree(graph, node, order)
        merged = _merge(graph, adds, terms, order)
        if merged is not None:
            out.append(merged)
    return out


def _inner_add(graph: Graph, node: Node) -> bool:
    """An ``Add`` that only feeds another ``Add`` (part of a bigger sum's tree)."""
    consumer = graph.single_consumer(node)
    return consumer is not None and consumer.op == OpKind.ADD and node.name not in graph.outputs


def _add_tree(graph: Graph, root: Node, order: dict) -> tuple:
    """``(adds, terms)``: the ``Add`` nodes of the tree ending at ``root`` (topological
    order) and its summands."""
    adds, terms, stack = [], [], [root]
    while stack:
        add = stack.pop()
        adds.append(add)
        for producer in graph.producers(add):
            if producer.op == OpKind.ADD and graph.single_consumer(producer) is add:
                stack.append(producer)
            else:
                terms.append(producer)
    return sorted(adds, key=lambda n: order[n.name]), terms


def _branch(graph: Graph, term: Node) -> tuple:
    """``(source, Branch)`` of one summand."""
    rescale = None
    if (term.op == OpKind.RESCALE and term.attrs.get("mode") in _SCALAR_MODES
            and len(graph.consumers(term)) == 1):
        rescale, term = term, graph[term.inputs[0]]
    if term.op == OpKind.BATCHNORM and len(graph.consumers(term)) == 1:
        producer = graph[term.inputs[0]]
        if _linear_conv(graph, producer):
            return graph[producer.inputs[0]], Branch("conv", producer, term, rescale)
        return producer, Branch("bn", bn=term, rescale=rescale)
    if _linear_conv(graph, term):
        return graph[term.inputs[0]], Branch("conv", conv=term, rescale=rescale)
    return term, Branch("identity", rescale=rescale)


def _linear_conv(graph: Graph, node: Node) -> bool:
    """A single-consumer, undilated conv with no activation and no shared weights."""
    return (node.op in _CONVS and (node.attrs.get("activation") or "linear") == "linear"
            and len(graph.consumers(node)) == 1 and "shares_weights_with" not in node.attrs
            and set(node.attrs.get("dilation", (1,))) == {1} and node.output_shape is not None)


def _merge(graph: Graph, adds: list, terms: list, order: dict) -> Optional[BranchSum]:
    """The merged conv of the sum, if its branches line up."""
    if len(terms) < 2 or len({t.name for t in terms}) != len(terms):
        return None
    pairs = [_branch(graph, t) for t in terms]
    sources = {source.name for source, _ in pairs}
    branches = [b for _, b in pairs]
    convs = [b.conv for b in branches if b.conv is not None]
    if len(sources) != 1 or not convs:
        return None
    source = pairs[0][0]
    first = convs[0].attrs
    same = ("strides", "groups", "filters", "in_channels", "data_format")
    if any(c.attrs.get(k) != first.get(k) for c in convs for k in same):
        return None
    shape, fmt = source.output_shape, convs[0].data_format
    out_shape = adds[-1].output_shape
    if not shape or not out_shape or None in shape or None in out_shape:
        return None
    spatial, channels = split(shape, fmt)
    out_spatial, _ = split(out_shape, fmt)
    strides = tuple(first["strides"])
    has_identity = any(b.conv is None for b in branches)
    if has_identity and (first["filters"] != channels or set(strides) != {1}):
        return None
    if first["groups"] > 1 and first["groups"] == channels != first["filters"]:
        return None  # a depthwise multiplier > 1
    if any(tuple(c.output_shape) != tuple(out_shape) for c in convs):
        return None
    rank = len(spatial)
    begins = []  # per branch, per axis: (begin pad, kernel)
    for b in branches:
        if b.conv is None:
            begins.append(tuple((0, 1) for _ in range(rank)))
            continue
        kernel = tuple(b.conv.attrs["kernel"])
        per_axis = tuple((_begin_pad(b.conv.attrs["padding"], axis, n, k, s), k)
                         for axis, (n, k, s) in enumerate(zip(spatial, kernel, strides)))
        if any(begin is None for begin, _ in per_axis):
            return None
        begins.append(per_axis)
    pads, kernel, offsets = [], [], [[] for _ in branches]
    for axis in range(rank):
        begin = max(per[axis][0] for per in begins)
        size = max(begin - per[axis][0] + per[axis][1] for per in begins)
        end = (out_spatial[axis] - 1) * strides[axis] + size - begin - spatial[axis]
        if end < 0:
            return None
        pads.append((begin, end))
        kernel.append(size)
        for i, per in enumerate(begins):
            offsets[i].append(begin - per[axis][0])
    removed = sorted([n for b in branches for n in b.nodes] + adds,
                     key=lambda n: order[n.name])
    return BranchSum(source=source, adds=adds, branches=branches, removed=removed,
                     kernel=tuple(kernel),
                     pads=tuple(pads), offsets=[tuple(o) for o in offsets], strides=strides,
                     groups=first["groups"], filters=first["filters"], data_format=fmt,
                     in_spatial=tuple(spatial))


def _begin_pad(padding, axis: int, n: int, kernel: int, stride: int) -> Optional[int]:
    """Zero padding before the input along ``axis`` (TensorFlow's ``"same"``: half the
    total, the smaller half first); ``None`` for a padding that is not a window's
    (``"causal"``)."""
    pad = axis_padding(padding, axis)
    if pad == "valid":
        return 0
    if pad == "same":
        total = max((-(-n // stride) - 1) * stride + kernel - n, 0)
        return total // 2
    return int(pad[0]) if isinstance(pad, tuple) else None
