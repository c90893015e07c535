"""CNK105 ``flatten-dense-head``: Flatten + Dense over a spatial map → global pooling."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.fragments import FragmentBuilder, try_build
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.patterns import WEIGHTED, input_spatial, spans_input, spatial_size
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import (
    conv_replacement,
    costed_finding,
    costs_of,
    findings_at,
    kernel_text,
    num,
    saves,
)

_PASS = (OpKind.DROPOUT, OpKind.IDENTITY)
#: Ops that only re-view an output (looked through to find what computed it).
_VIEWS = frozenset({OpKind.RESHAPE, OpKind.FLATTEN, OpKind.IDENTITY, OpKind.DROPOUT})
#: Output activations that make a probability.
_PROBABILITIES = frozenset({"softmax", "sigmoid", "log_softmax"})


class FlattenDenseHead(Rule):
    """A Dense layer over a flattened spatial feature map, where global pooling would do.

    ## What it does
    Finds a ``Flatten`` (or a ``Reshape`` to one dimension) of a feature map with more
    than one position that feeds a ``Dense`` layer (dropout in between is allowed), and
    proposes global average pooling, then the same Dense on the C pooled channels.  A
    ``Concatenate`` of several flattened maps feeding one Dense (a multi-scale head, as
    in character-level text CNNs) is the same pattern: each map is pooled, then the
    pooled vectors concatenated.
    So is a conv whose kernel spans its whole input map with one output position (VGG's
    fc6 written as a 7×7 conv over the 7×7 map, timm's ``ConvMlp``): it is the same
    Dense on the flattened map, and becomes global average pooling then a 1×1 conv.

    ## Why is this bad?
    The Dense layer gets one weight per position, channel and unit: VGG16's fc1 has
    7·7·512·4096 = 102,760,448 weights (+4,096 biases), three quarters of the model.
    After global average pooling it has 512·4096: 102,764,544 → 2,101,248 parameters.
    The pooled head also accepts any input size and overfits less (Network In Network).

    ## Known problems
    Pooling throws away *where* a feature is.  A head that regresses positions needs
    it: MTCNN's box and landmark regressions (linear outputs next to the face/no-face
    softmax, all on one flattened 3×3 map).  The rule stays silent on a flattened Dense
    whose features reach both a probability output (softmax, sigmoid) and a linear one,
    the mark of such a multi-task localisation head.  A single linear output (logits)
    is still a classifier.

    ## Example
    ```python
    x = keras.layers.Flatten()(features)          # features: (7, 7, 512)
    x = keras.layers.Dense(4096, activation="relu")(x)
    ```

    ## Use instead
    ```python
    x = keras.layers.GlobalAveragePooling2D()(features)
    x = keras.layers.Dense(4096, activation="relu")(x)
    ```

    ## References
    - Lin et al., "Network In Network", ICLR 2014, §3.2 (global average pooling),
      https://arxiv.org/abs/1312.4400.
    - Szegedy et al., "Going Deeper with Convolutions" (GoogLeNet), CVPR 2015, §5,
      https://arxiv.org/abs/1409.4842.
    - Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
      Recognition" (VGG), ICLR 2015, Table 1 (fc6: 7·7·512·4096 = 102,760,448 weights).
    - Zhang et al., "Joint Face Detection and Alignment using Multi-task Cascaded
      Convolutional Networks" (MTCNN), IEEE SPL 2016, Fig. 2 (the regression heads).
    """

    code = "CNK105"
    symbol = "flatten-dense-head"
    severity = Severity.WARNING
    fixable = True

    def check(self, graph: Graph) -> Iterable[Finding]:
        for node in graph:
            flat = node.op == OpKind.FLATTEN or (
                node.op == OpKind.RESHAPE and node.output_shape is not None
                and len(node.output_shape) == 1)
            if not flat or node.input_shapes[0] is None or len(node.input_shapes[0]) < 2:
                continue
            source = graph[node.inputs[0]]
            positions = spatial_size(source)
            if positions is None or positions <= 1:
                continue
            chain = _chain_to_dense(graph, node)
            if chain is not None and not localises(graph, chain[-1]):
                finding = self._check_head(graph, [source], chain, positions)
                if finding is not None:
                    yield finding
        yield from self._check_concat_heads(graph)
        yield from findings_at((n for n in graph if spans_input(n)
                                and not localises(graph, n)),
                               lambda conv: self._check_conv_head(graph, conv))

    def _check_concat_heads(self, graph: Graph) -> Iterable[Finding]:
        """Dense over ``Concatenate([Flatten(map1), Flatten(map2), ...])``."""
        for concat in graph:
            if concat.op != OpKind.CONCAT or len(concat.inputs) < 2:
                continue
            flats = graph.producers(concat)
            if not all(_flattens_a_map(graph, flat) for flat in flats):
                continue
            if any(graph.single_consumer(flat) is not concat for flat in flats):
                continue
            rest = _chain_to_dense(graph, concat)
            if rest is None or localises(graph, rest[-1]):
                continue
            sources = [graph[flat.inputs[0]] for flat in flats]
            positions = sum(spatial_size(src) for src in sources)
            finding = self._check_head(graph, sources, flats + rest, positions)
            if finding is not None:
                yield finding

    def _check_head(self, graph: Graph, sources: list, chain: list, positions: int):
        """``chain``: the flatten(s), [concat], pass-through ops and the Dense."""
        dense = chain[-1]
        channels = sum(src.channels() for src in sources)

        def build():
            frag = FragmentBuilder(graph, dense.name)
            pooled = []
            for src in sources:
                rank = len(src.output_shape) - 1
                pooled.append(frag.add("gap", OpKind.GLOBAL_POOL, [src.name], {
                    "pool_type": "avg", "rank": rank, "keepdims": False,
                    "data_format": src.data_format}, f"GlobalAveragePooling{rank}D").name)
            last = pooled[0]
            for middle in chain[len(sources):-1]:
                ins = pooled if middle.op == OpKind.CONCAT else [last]
                last = frag.copy(middle, ins, suffix=middle.name.replace("/", "_")).name
            frag.copy(dense, [last], in_features=channels)
            return frag

        frag = try_build(build)
        if frag is None or not frag.matches(dense, frag.nodes[-1]):
            return None
        before, after = costs_of(graph, [n.name for n in chain], frag.nodes)
        if not saves(before, after):
            return None
        return costed_finding(
            self, graph, dense,
            f"Dense over a flattened {positions}-position map: {num(before.params)} "
            f"parameters, {num(after.params)} after global average pooling",
            "global-average-pool the feature map, then apply the Dense layer to its "
            f"{channels} channels", [n.name for n in chain], frag.nodes,
            frag.nodes[-1].name, measurements={"positions": positions},
            costs=(before, after))


    def _check_conv_head(self, graph: Graph, conv: Node):
        """A conv spanning its whole input map → global average pooling + 1×1 conv."""
        rank = conv.attrs["rank"]
        positions = prod(input_spatial(conv))
        window = "×".join(str(d) for d in input_spatial(conv))

        def build(frag):
            gap = frag.add("gap", OpKind.GLOBAL_POOL, [conv.inputs[0]], {
                "pool_type": "avg", "rank": rank, "keepdims": True,
                "data_format": conv.data_format}, f"GlobalAveragePooling{rank}D")
            frag.conv("pointwise", gap.name, conv, conv.attrs["filters"], (1,) * rank,
                      padding="valid")

        return conv_replacement(
            self, graph, conv, build, lambda before, after: (
                f"{kernel_text(conv.attrs['kernel'])} conv over the whole {window} map is a "
                f"Dense over the flattened map: {num(before.params)} parameters, "
                f"{num(after.params)} after global average pooling",
                "global-average-pool the feature map, then apply a 1×1 conv to "
                f"{conv.attrs['filters']} channels"),
            measurements={"positions": positions})


def localises(graph: Graph, node: Node) -> bool:
    """True when ``node``'s features reach both a probability output (softmax, sigmoid)
    and a linear output: a multi-task head regressing positions (MTCNN's boxes and
    landmarks beside its face score)."""
    kinds = {_output_kind(graph, out) for out in _outputs_reached(graph, node)}
    return {"probability", "linear"} <= kinds


def _outputs_reached(graph: Graph, node: Node) -> list:
    """The model outputs that depend on ``node`` (one pass in topological order)."""
    reached = {node.name}
    for current in graph:
        if any(name in reached for name in current.inputs):
            reached.add(current.name)
    return [graph[name] for name in reached
            if name in graph.outputs or not graph.consumers(graph[name])]


def _output_kind(graph: Graph, out: Node) -> str:
    """``"probability"`` when the output's last computing op ends in a softmax or a
    sigmoid, ``"linear"`` when it has no activation, else ``"other"``."""
    while out.op in _VIEWS and out.inputs:
        out = graph[out.inputs[0]]
    activation = out.attrs.get("activation")
    if activation in _PROBABILITIES:
        return "probability"
    if out.op in WEIGHTED and activation in (None, "linear"):
        return "linear"
    return "other"


def _flattens_a_map(graph: Graph, node: Node) -> bool:
    """True for a Flatten of a known feature map with more than one position."""
    if node.op != OpKind.FLATTEN or not node.input_shapes or node.input_shapes[0] is None:
        return False
    if len(node.input_shapes[0]) < 2:
        return False
    positions = spatial_size(graph[node.inputs[0]])
    return positions is not None and positions > 1


def _chain_to_dense(graph: Graph, flat: Node):
    """[flatten, (dropout/identity)*, dense] when that is a single-consumer chain."""
    chain, current = [flat], flat
    while True:
        nxt = graph.single_consumer(current)
        if nxt is None or len(nxt.inputs) != 1:
            return None
        chain.append(nxt)
        if nxt.op == OpKind.DENSE:
            return chain
        if nxt.op not in _PASS:
            return None
        current = nxt
