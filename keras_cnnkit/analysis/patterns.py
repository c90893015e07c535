"""Graph queries the rules share: what a node is, and walks through "transparent" ops.

Pure analyses over the IR (no rule logic): classifying convolutions (standard, pointwise,
group, depthwise), reading a node's channel and spatial sizes, and following producers or
consumers through ops that keep a tensor's channels and positions apart
(:data:`TRANSPARENT`: batch norm, activations, dropout, identity, layer scale).

The named groupings are the op registry's traits (:class:`~keras_cnnkit.analysis.ops.Trait`),
read live from :mod:`keras_cnnkit.analysis.ops`: one definition of each, and a kind a
plugin registers with a trait joins its set.
"""
from __future__ import annotations

from typing import Iterator, Optional

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.ops import Trait, kinds_with
from keras_cnnkit.analysis.ops.activation_table import rectifiers
from keras_cnnkit.analysis.ops.geometry import prod

#: Unary ops that act per element or per channel (they never mix channels or positions).
TRANSPARENT = kinds_with(Trait.TRANSPARENT)

#: Ops with weights that multiply-accumulate (the "layers" of a plain stack).
WEIGHTED = kinds_with(Trait.WEIGHTED)

#: Element-wise merges and concatenation: where skip connections and branches join.
MERGES = kinds_with(Trait.MERGE)

#: Activations that zero or clip part of their input (ReLU and relatives).
RECTIFIERS = rectifiers()


def kernel_size(node: Node) -> int:
    """Number of taps of a conv kernel (1 for a pointwise conv)."""
    return prod(node.attrs.get("kernel", ()))


def is_standard_conv(node: Node) -> bool:
    """A dense (``groups == 1``) convolution."""
    return node.op == OpKind.CONV and node.attrs.get("groups", 1) == 1


def is_pointwise(node: Node) -> bool:
    """A standard 1×1 (×1) convolution."""
    return is_standard_conv(node) and kernel_size(node) == 1


def is_spatial_conv(node: Node) -> bool:
    """A standard convolution whose kernel covers more than one position."""
    return is_standard_conv(node) and kernel_size(node) > 1


def is_depthwise(node: Node) -> bool:
    """A depthwise convolution (one group per input channel)."""
    if node.op == OpKind.DEPTHWISE_CONV:
        return True
    groups = node.attrs.get("groups", 1)
    return node.op == OpKind.CONV and groups > 1 and groups == node.attrs.get("in_channels")


def is_group_conv(node: Node) -> bool:
    """A grouped convolution with more than one channel per group (not depthwise)."""
    groups = node.attrs.get("groups", 1)
    return (node.op in (OpKind.CONV, OpKind.DEFORM_CONV)
            and 1 < groups < node.attrs.get("in_channels", 0))


def fused_activation(node: Node) -> Optional[str]:
    """The activation fused into a conv/dense node (``None`` when linear)."""
    return node.attrs.get("activation")


def spatial_size(node: Node, shape=None) -> Optional[int]:
    """Positions of ``shape`` (default: the output), ``None`` if unknown."""
    return prod(node.spatial(shape))


def walk_back(graph: Graph, node: Node, through=TRANSPARENT) -> Optional[Node]:
    """The first producer of ``node`` (first input, repeatedly) whose op is not in
    ``through``; ``None`` at a graph input.  Intermediate nodes must have one input."""
    current = node
    while current.inputs:
        producer = graph[current.inputs[0]]
        if producer.op not in through or len(producer.inputs) != 1:
            return producer
        current = producer
    return None


def chain_back(graph: Graph, node: Node, through=TRANSPARENT) -> list:
    """The transparent nodes between ``node`` and :func:`walk_back`'s result, nearest first."""
    out, current = [], node
    while current.inputs:
        producer = graph[current.inputs[0]]
        if producer.op not in through or len(producer.inputs) != 1:
            break
        out.append(producer)
        current = producer
    return out


def reach_forward(graph: Graph, node: Node, through=TRANSPARENT) -> Iterator[Node]:
    """The nodes fed by ``node`` once the ops in ``through`` are looked through.

    Yields every first non-``through`` consumer on each path (a node may be yielded more
    than once if several paths reach it).
    """
    stack = list(graph.consumers(node))
    while stack:
        consumer = stack.pop()
        if consumer.op in through:
            stack.extend(graph.consumers(consumer))
        else:
            yield consumer


def feeds_only(graph: Graph, node: Node, kinds, through=TRANSPARENT) -> bool:
    """True when every path from ``node`` ends, through ``through``, at a graph output or
    an op in ``kinds``."""
    outputs = set(graph.outputs)
    stack = [node]
    while stack:
        current = stack.pop()
        consumers = graph.consumers(current)
        if not consumers and current.name not in outputs:
            return False
        for consumer in consumers:
            if consumer.op in through:
                stack.append(consumer)
            elif consumer.op not in kinds:
                return False
    return True


def has_op(graph: Graph, predicate) -> bool:
    """True when some node of ``graph`` satisfies ``predicate``."""
    return any(predicate(n) for n in graph)
