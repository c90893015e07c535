"""CNK111 ``tensor-core-alignment``: channel counts that are not a multiple of 8."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, OpKind
from keras_cnnkit.analysis.cost import node_cost
from keras_cnnkit.analysis.patterns import (
    TRANSPARENT,
    WEIGHTED,
    feeds_only,
    is_depthwise,
    on_single_position,
)
from keras_cnnkit.blockspec import make_divisible
from keras_cnnkit.lint.findings import Finding, Rule, Severity

#: Ops between a layer and the model output that keep it "the output layer".
_HEAD = TRANSPARENT | {OpKind.FLATTEN, OpKind.RESHAPE, OpKind.TRANSPOSE, OpKind.GLOBAL_POOL,
                       OpKind.CONCAT}


class TensorCoreAlignment(Rule):
    """A conv or dense layer whose output channel count is not a multiple of 8.

    ## What it does
    Reports convolutions and dense layers whose number of output channels (filters,
    units) is not a multiple of 8, with the nearest multiple (MobileNet's
    ``make_divisible`` rounding).  It leaves out depthwise convs (their width is their
    input's) and the layers that produce the model's outputs, directly or through
    activations, reshapes, pooling and concatenations (the number of classes, boxes or
    mask channels is the task's).  Advice only.

    ## Why is this bad?
    Tensor cores (NVIDIA Volta and later, fp16/bf16/int8) and most NPUs compute matrix
    tiles of 8 (or 16) channels; cuDNN and cuBLAS fall back to slower kernels or pad
    internally when a channel dimension is not a multiple of 8, so a layer of 30
    channels can run as slowly as one of 32 or slower.

    ## Known problems
    The padding loss is a share of the layer's own time, so the rule stays silent on
    layers with a negligible share of the model's MACs (under ``min_share``, 0.5%) and
    on convs and dense layers over a single position (squeeze-and-excitation convs,
    whose widths are ``C/4`` or ``C/24`` by construction, and classifier MLPs on pooled
    vectors): their alignment has no measurable effect on the model.

    ## Example
    ```python
    y = keras.layers.Conv2D(30, 3, padding="same")(x)
    ```

    ## Use instead
    ```python
    y = keras.layers.Conv2D(32, 3, padding="same")(x)
    ```

    ## References
    - NVIDIA, "Deep Learning Performance Guide: Tensor Core Requirements" (channel
      counts multiple of 8 for fp16),
      https://docs.nvidia.com/deeplearning/performance/index.html.
    - Sandler et al., "MobileNetV2", 2018 (``make_divisible``: widths rounded to 8),
      https://arxiv.org/abs/1801.04381.
    """

    code = "CNK111"
    symbol = "tensor-core-alignment"
    severity = Severity.INFO
    fixable = False

    def __init__(self, multiple: int = 8, min_share: float = 0.005):
        self.multiple = multiple
        self.min_share = min_share

    def check(self, graph: Graph) -> Iterable[Finding]:
        macs = {node.name: node_cost(node).macs for node in graph}
        total = sum(m for m in macs.values() if m)
        for node in graph:
            if node.op not in WEIGHTED or is_depthwise(node) or on_single_position(node):
                continue
            channels = node.attrs.get("units", node.attrs.get("filters"))
            if channels is None or channels % self.multiple == 0:
                continue
            if macs[node.name] is not None and macs[node.name] < self.min_share * total:
                continue
            if feeds_only(graph, node, frozenset(), through=_HEAD):
                continue
            suggested = make_divisible(channels, self.multiple)
            yield self.finding(
                node, f"{channels} output channels is not a multiple of {self.multiple}: "
                      "tensor cores compute in tiles of 8 channels",
                suggestion=f"use {suggested} channels",
                measurements={"channels": channels, "suggested": suggested})
