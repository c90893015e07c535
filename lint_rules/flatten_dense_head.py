"""CNK105 ``flatten-dense-head``: Flatten + Dense over a spatial map → global pooling."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.fragments import FragmentBuilder, try_build
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.patterns import spatial_size
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import costed_finding, costs_of, num, saves

_PASS = (OpKind.DROPOUT, OpKind.IDENTITY)


class FlattenDenseHead(Rule):
    """A Dense layer over a flattened spatial feature map, where global pooling would do.

    ## What it does
    Finds a ``Flatten`` (or a ``Reshape`` to one dimension) of a feature map with more
    than one position that feeds a ``Dense`` layer (dropout in between is allowed), and
    proposes global average pooling, then the same Dense on the C pooled channels.  A
    ``Concatenate`` of several flattened maps feeding one Dense (a multi-scale head, as in
    character-level text CNNs) is the same pattern: each map is pooled, then the pooled
    vectors concatenated.

    ## Why is this bad?
    The Dense layer gets one weight per position, channel and unit: VGG16's fc1 has
    7·7·512·4096 = 102,760,448 weights (+4,096 biases), three quarters of the model.
    After global average pooling it has 512·4096: 102,764,544 → 2,101,248 parameters.
    The pooled head also accepts any input size and overfits less (Network In Network).

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
            if chain is not None:
                finding = self._check_head(graph, [source], chain, positions)
                if finding is not None:
                    yield finding
        yield from self._check_concat_heads(graph)

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
            if rest is None:
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
