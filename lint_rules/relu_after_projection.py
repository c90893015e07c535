"""CNK106 ``relu-after-projection``: a non-linearity on a narrow 1×1 projection's output."""
from __future__ import annotations

from typing import Iterable, Optional

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.patterns import (
    RECTIFIERS,
    TRANSPARENT,
    is_pointwise,
    is_spatial_conv,
    kernel_size,
    reach_forward,
    spatial_size,
    walk_back,
)
from keras_cnnkit.analysis.fragments import FragmentBuilder
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import costed_finding

_NORM_LIKE = frozenset({OpKind.BATCHNORM, OpKind.IDENTITY, OpKind.DROPOUT})


class ReluAfterProjection(Rule):
    """A ReLU-like activation on the output of a channel-reducing 1×1 projection.

    ## What it does
    Finds a rectifier (ReLU, ReLU6, leaky ReLU, swish, ...) applied, directly or after
    batch norm, to the output of a 1×1 convolution that reduces the channel count, where
    that narrow tensor feeds a residual ``Add``, or feeds a 1×1 expansion (the next block
    of an inverted-residual stack) while the projection closes a spatial interior (its
    input comes from a k×k or depthwise conv, through norm and activation, as an inverted
    residual's projection follows its depthwise conv).  It proposes to drop the
    activation: a linear bottleneck.  It stays silent on a 1×1 reduction feeding a k×k
    conv (ResNet's bottleneck, where the ReLU belongs) and on squeeze-and-excitation MLPs
    (1×1 maps).

    ## Why is this bad?
    A ReLU on a low-dimensional tensor destroys information: MobileNetV2's authors show
    inputs embedded in 2–5 dimensions losing much of their structure through a ReLU,
    15+ dimensions little.  The projected tensor of an inverted residual block is the
    narrow one; keeping it linear improved accuracy at no cost.

    ## Known problems
    The argument is about the tensor that carries an inverted-residual block's output.
    The rule stays silent where the narrow tensor also feeds a k×k conv: that 1×1 is
    the inner reduction of a bottleneck (ResNet's, SqueezeNet's squeeze feeding its 1×1
    and 3×3 expands, DLA's aggregation roots feeding the next tree's 3×3), where the
    ReLU belongs.  It is silent on squeeze-and-excitation MLPs (1×1 maps) too, and on a
    1×1 squeeze → rectifier → 1×1 excitation pair over a concatenation or any other
    non-convolution input with no residual through the narrow tensor (PP-HGNet's
    aggregation): that pair is a channel MLP, and without its rectifier it would be one
    low-rank linear map, not a linear bottleneck.

    ## Example
    ```python
    y = keras.layers.Conv2D(24, 1, use_bias=False)(expanded)   # 144 → 24
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU(6.0)(y)
    y = keras.layers.Add()([shortcut, y])
    ```

    ## Use instead
    ```python
    y = keras.layers.Conv2D(24, 1, use_bias=False)(expanded)
    y = keras.layers.BatchNormalization()(y)                   # linear bottleneck
    y = keras.layers.Add()([shortcut, y])
    ```

    ## References
    - Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR
      2018, §3.2 and Figure 1 (a manifold embedded in 2–5 dimensions loses much through
      ReLU, in 15 or more little), https://arxiv.org/abs/1801.04381.
    """

    code = "CNK106"
    symbol = "relu-after-projection"
    severity = Severity.WARNING
    fixable = True

    def check(self, graph: Graph) -> Iterable[Finding]:
        for node in graph:
            if node.op == OpKind.ACTIVATION and node.attrs.get("activation") in RECTIFIERS:
                projection = _projection_before(graph, node)
                if projection is not None and _narrow_tensor(graph, node, projection):
                    yield self._finding(graph, node, projection, fused=False)
            elif (is_pointwise(node) and node.attrs.get("activation") in RECTIFIERS
                  and _is_projection(node) and _narrow_tensor(graph, node, node)):
                yield self._finding(graph, node, node, fused=True)

    def _finding(self, graph: Graph, act: Node, projection: Node, fused: bool) -> Finding:
        name = act.attrs["activation"]
        c_in, c_out = projection.attrs["in_channels"], projection.attrs["filters"]
        message = (f"{name} after the 1×1 projection {projection.layer or projection.name} "
                   f"({c_in}→{c_out} channels) destroys information in a narrow tensor")
        suggestion = "keep the projection linear (a linear bottleneck): remove the activation"
        if fused:
            frag = FragmentBuilder(graph, act.name)
            fixed = frag.copy(act, activation=None)
            return costed_finding(self, graph, act, message, suggestion, [act.name], [fixed],
                                  fixed.name, measurements={"activation": name})
        return costed_finding(self, graph, act, message, suggestion, [act.name], [],
                              act.inputs[0], measurements={"activation": name})


def _is_projection(conv: Node) -> bool:
    """A 1×1 conv that reduces channels, on a map (not a 1×1 squeeze-excitation MLP)."""
    return (conv.attrs["filters"] < conv.attrs["in_channels"]
            and (spatial_size(conv) or 0) > 1)


def _projection_before(graph: Graph, act: Node) -> Optional[Node]:
    current = act
    while current.inputs:
        producer = graph[current.inputs[0]]
        if is_pointwise(producer):
            return producer if (_is_projection(producer)
                                and producer.attrs.get("activation") is None) else None
        if producer.op not in _NORM_LIKE or len(producer.inputs) != 1:
            return None
        current = producer
    return None


def _closes_spatial_interior(graph: Graph, projection: Node) -> bool:
    """True when ``projection``'s input comes, through norm and activations, from a conv
    whose kernel covers more than one position (k×k, depthwise or grouped): the
    projection closes a block's spatial interior, as an inverted residual's projection
    closes its depthwise conv."""
    producer = walk_back(graph, projection)
    return (producer is not None
            and producer.op in (OpKind.CONV, OpKind.DEPTHWISE_CONV, OpKind.DEFORM_CONV)
            and kernel_size(producer) > 1)


def _narrow_tensor(graph: Graph, node: Node, projection: Node) -> bool:
    """True when ``node`` (the rectified projection output) is the narrow tensor of an
    inverted-residual stack: it feeds a residual ``Add``, or a 1×1 expansion while the
    projection closes a spatial interior; and it feeds no k×k conv (which would make it a
    bottleneck's inner reduction)."""
    consumers = list(reach_forward(graph, node, TRANSPARENT))
    if any(is_spatial_conv(c) for c in consumers):
        return False
    if any(c.op == OpKind.ADD for c in consumers):
        return True
    return _closes_spatial_interior(graph, projection) and any(
        is_pointwise(c) and c.attrs["filters"] > c.attrs["in_channels"]
        and (spatial_size(c) or 0) > 1 for c in consumers)
