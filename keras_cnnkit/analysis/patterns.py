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


# --- designs the rules recognise ---------------------------------------------------------
# Layer shapes that papers chose on purpose, so that a rule can stay silent on them.  Each
# query looks only at the graph's structure (kernels, strides, channels, edges), never at
# layer names.

#: Ops a network's stem may pass through between its convolutions.
_STEM_PASS = TRANSPARENT | {OpKind.PAD, OpKind.RESCALE}


def input_spatial(node: Node) -> tuple:
    """Spatial dims of ``node``'s first input (``()`` if unknown)."""
    if not node.input_shapes or not node.input_shapes[0]:
        return ()
    return node.spatial(node.input_shapes[0])


def on_single_position(node: Node) -> bool:
    """True when ``node`` reads a map of one position (a squeeze-and-excitation conv, a
    classifier written as a 1×1 conv), or a flat vector."""
    shape = node.input_shapes[0] if node.input_shapes else None
    if not shape:
        return False
    if node.op == OpKind.DENSE and len(shape) == 1:
        return True
    return input_spatial(node) != () and prod(input_spatial(node)) == 1


def is_factorised_kernel(node: Node) -> bool:
    """A 2D kernel of shape 1×n or n×1 (n > 1): one half of an asymmetric factorisation
    (Inception-V3's 1×7 / 7×1, 1×3 / 3×1)."""
    kernel = tuple(node.attrs.get("kernel", ()))
    return len(kernel) == 2 and min(kernel) == 1 and max(kernel) > 1


def is_patchify(node: Node) -> bool:
    """A conv whose stride equals its kernel (> 1): non-overlapping patches, a linear
    space-to-depth (ViT's patch embedding, ConvNeXt's 4×4 stem and 2×2 downsampling,
    Swin's patch merging)."""
    kernel = tuple(node.attrs.get("kernel", ()))
    return (bool(kernel) and kernel == tuple(node.attrs.get("strides", ()))
            and prod(kernel) > 1)


def spans_input(node: Node) -> bool:
    """A conv whose kernel covers its whole input map (more than one position) and
    yields one position: a dense layer over the flattened map, written as a conv (VGG's
    fc6 as timm's ``ConvMlp`` writes it: 7×7 over a 7×7 map)."""
    spatial = input_spatial(node)
    kernel = tuple(node.attrs.get("kernel", ()))
    return (node.op == OpKind.CONV and bool(spatial) and None not in spatial
            and kernel == spatial and prod(spatial) > 1 and node.output_shape is not None
            and prod(node.spatial()) == 1)


def stem_convs(graph: Graph, max_convs: int = 4, image_channels: int = 4) -> set:
    """Names of the network's stem convolutions: from each graph input of at most
    ``image_channels`` channels (an image), the chain of standard convs (at most
    ``max_convs``) joined only by batch norm, activations, padding and rescaling, up to
    the first pooling, merge, depthwise conv or fork (Inception-V3's three 3×3s,
    Xception's two, ResNet-D's three, ResNet-RS's four, VGG's first pair)."""
    names = set()
    for current in [n for n in graph if n.op == OpKind.INPUT]:
        channels = current.channels()
        if channels is None or channels > image_channels:
            continue
        convs = 0
        while convs < max_convs:
            nxt = graph.single_consumer(current)
            if nxt is None or len(nxt.inputs) != 1:
                break
            if is_standard_conv(nxt):
                names.add(nxt.name)
                convs += 1
            elif nxt.op not in _STEM_PASS:
                break
            current = nxt
    return names


def residual_branch(graph: Graph, node: Node, max_convs: int = 2) -> Optional[list]:
    """The standard convs of the residual branch holding ``node``, when that branch is
    a plain chain of at most ``max_convs`` standard convs (with batch norm, activations,
    dropout between) from a block input to an ``Add`` with that input's shortcut (an
    identity, or a 1×1 conv / pooling of it; explicit padding allowed on both paths):
    ResNet's basic block (two 3×3s), the ratio-1 Fused-MBConv (one 3×3).  ``None``
    otherwise."""
    passing = TRANSPARENT | {OpKind.PAD}
    convs, current = [node], node
    while True:  # back to the block input
        producer = graph[current.inputs[0]]
        passes = (len(producer.inputs) == 1 and len(graph.consumers(producer)) == 1
                  and (producer.op in passing or is_standard_conv(producer)))
        if not passes:
            break
        if is_standard_conv(producer):
            convs.append(producer)
        current = producer
    source, current = producer, node
    while True:  # forward to the Add
        consumer = graph.single_consumer(current)
        if consumer is None:
            return None
        if consumer.op == OpKind.ADD:
            break
        if len(consumer.inputs) != 1 or not (consumer.op in passing
                                              or is_standard_conv(consumer)):
            return None
        if is_standard_conv(consumer):
            convs.append(consumer)
        current = consumer
    if len(convs) > max_convs or len(consumer.inputs) != 2:
        return None
    others = [n for n in consumer.inputs if n != current.name]
    shortcut = graph[others[0]] if len(others) == 1 else None
    while shortcut is not None and shortcut.name != source.name:
        if len(shortcut.inputs) != 1 or not (shortcut.op in passing or is_pointwise(shortcut)
                                             or shortcut.op == OpKind.POOL):
            return None
        shortcut = graph[shortcut.inputs[0]]
    return convs if shortcut is not None else None


def is_fused_expansion(graph: Graph, node: Node) -> bool:
    """A standard k×k conv that widens its input and feeds (through batch norm and
    activations) only 1×1 convs that project back to fewer channels: the expansion of
    a Fused-MBConv block (EfficientNetV2), an inverted residual whose depthwise k×k
    and 1×1 expansion are fused into one full conv."""
    if not is_spatial_conv(node) or node.attrs["filters"] <= node.attrs["in_channels"]:
        return False
    consumers = list(reach_forward(graph, node))
    return bool(consumers) and all(
        is_pointwise(c) and c.attrs["filters"] < node.attrs["filters"] for c in consumers)
