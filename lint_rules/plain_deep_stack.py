"""CNK110 ``plain-deep-stack``: a long chain of weighted layers without skip connections."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.analysis.patterns import MERGES, WEIGHTED, is_depthwise
from keras_cnnkit.lint.findings import Finding, Rule, Severity


class PlainDeepStack(Rule):
    """A chain of 20 or more conv/dense layers with no skip connection along it.

    ## What it does
    Counts, along every path, the weighted layers (convolutions, dense) since the last
    merge (``Add``, ``Concatenate``, ... — where a skip connection or a branch joins)
    and reports each maximal chain of at least 20 of them, at its last layer.  A
    depthwise conv is not counted: with the 1×1 conv after it, it makes one
    depthwise-separable layer.  Advice only: there is no mechanical fix.

    ## Why is this bad?
    Plain stacks get harder to optimise with depth: He et al. found a 34-layer plain net
    with *higher* training error than an 18-layer one (degradation), which residual
    connections remove.  VGG19 (19 weighted layers) is about as deep as plain nets go;
    deeper designs add identity shortcuts (ResNet) or dense connections (DenseNet).

    ## Known problems
    Depth here counts channel-mixing layers, so MobileNetV1 (1 + 13 separable layers +
    the classifier: 15) and PP-LCNet are not reported: plain by design, and batch norm
    trains them well at that depth.  Counted per depthwise and pointwise conv, as
    MobileNet's paper does (28 layers), they would be.

    ## Example
    ```python
    for _ in range(24):
        x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    ```

    ## Use instead
    ```python
    for _ in range(12):
        y = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        y = keras.layers.Conv2D(64, 3, padding="same")(y)
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    ```

    ## References
    - He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.1 and
      Figure 4 (plain 18 vs 34 layers), https://arxiv.org/abs/1512.03385.
    - Huang et al., "Densely Connected Convolutional Networks", CVPR 2017,
      https://arxiv.org/abs/1608.06993.
    """

    code = "CNK110"
    symbol = "plain-deep-stack"
    severity = Severity.INFO
    fixable = False

    def __init__(self, min_depth: int = 20):
        self.min_depth = min_depth

    def check(self, graph: Graph) -> Iterable[Finding]:
        depth, start = {}, {}
        for node in graph:
            if not node.inputs or node.op in MERGES:
                depth[node.name], start[node.name] = 0, None
                continue
            src = node.inputs[0]
            depth[node.name] = depth[src] + _counts(node)
            start[node.name] = start[src] or (node.name if _counts(node) else None)
        deepest = {}
        for node in reversed(list(graph)):
            best = depth[node.name] if _counts(node) else 0
            for consumer in graph.consumers(node):
                if consumer.op not in MERGES and consumer.inputs[0] == node.name:
                    best = max(best, deepest[consumer.name])
            deepest[node.name] = best
        for node in graph:
            d = depth[node.name]
            if _counts(node) and d >= self.min_depth and not _continues(graph, node,
                                                                         deepest, d):
                first = graph[start[node.name]]
                yield self.finding(
                    node, f"{d} weighted layers in a row, from {first.layer or first.name} "
                          f"to {node.layer or node.name}, with no skip connection",
                    suggestion="add residual (identity) shortcuts every two or three layers, "
                               "or dense connections",
                    measurements={"depth": d, "first": first.name})


def _counts(node: Node) -> bool:
    """A layer of the depth count: a weighted op that mixes channels (not a depthwise
    conv, which the 1×1 conv after it completes)."""
    return node.op in WEIGHTED and not is_depthwise(node)


def _continues(graph: Graph, node: Node, deepest: dict, depth: int) -> bool:
    return any(c.op not in MERGES and c.inputs[0] == node.name and deepest[c.name] > depth
               for c in graph.consumers(node))
