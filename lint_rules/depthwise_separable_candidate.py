"""CNK104 ``depthwise-separable-candidate``: a standard conv → depthwise + pointwise."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.analysis.patterns import has_op, is_depthwise, is_spatial_conv
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import conv_replacement, kernel_text, num, saves


class DepthwiseSeparableCandidate(Rule):
    """A standard convolution that a depthwise + pointwise pair would make much cheaper.

    ## What it does
    Finds standard convolutions with a spatial kernel whose depthwise-separable form
    (a k×k depthwise conv, then a 1×1 conv to C_out) saves at least half of their
    parameters and FLOPs, and proposes that form.  Both new convs keep the original's
    bias (a 3→4 3×3 conv has 3·9·4 + 4 = 112 parameters; its depthwise conv
    3·9 + 3 = 30 and its pointwise conv 3·4 + 4 = 16, 46 in all); the activation goes
    after the pointwise conv.  It stays
    silent on the RGB stem (≤ 4 input channels) of a network that already uses
    depthwise convolutions: MobileNet and Xception keep that one standard on purpose.

    ## Why is this bad?
    A standard conv costs D_K²·C_I·C_O weights (×D_O² multiply-adds); the separable form
    C_I·(D_K² + C_O): a ratio of (D_K² + C_O)/(D_K²·C_O) = 1/C_O + 1/D_K² (MobileNets
    §3.1).  3→256 3×3: 3·9·256 = 6,912 → 3·9 + 3·256 = 795.

    ## Example
    ```python
    y = keras.layers.Conv2D(256, 3, padding="same", use_bias=False)(x)   # x: 3 ch
    ```

    ## Use instead
    ```python
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    y = keras.layers.Conv2D(256, 1, use_bias=False)(y)                  # 27 + 768
    ```
    (``keras.layers.SeparableConv2D`` is the same pair with one bias.)

    ## References
    - Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
      Vision Applications", 2017, §3.1, https://arxiv.org/abs/1704.04861.
    - Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017,
      https://arxiv.org/abs/1610.02357.
    """

    code = "CNK104"
    symbol = "depthwise-separable-candidate"
    severity = Severity.WARNING
    fixable = True

    def __init__(self, min_saving: float = 0.5, stem_channels: int = 4):
        self.min_saving = min_saving
        self.stem_channels = stem_channels

    def check(self, graph: Graph) -> Iterable[Finding]:
        separable_net = None
        for node in graph:
            if not is_spatial_conv(node) or node.output_shape is None:
                continue
            if node.attrs["in_channels"] <= self.stem_channels:
                if separable_net is None:
                    separable_net = has_op(graph, is_depthwise)
                if separable_net:
                    continue
            finding = self._check_conv(graph, node)
            if finding is not None:
                yield finding

    def _check_conv(self, graph: Graph, node: Node):
        a = node.attrs

        def build(frag):
            dw = frag.conv("depthwise", node.inputs[0], node, a["in_channels"], a["kernel"],
                           strides=a["strides"], dilation=a["dilation"], depthwise=True,
                           activation=None)
            frag.conv("pointwise", dw.name, node, a["filters"], (1,) * a["rank"],
                      padding="valid")

        def accept(before, after) -> bool:
            return (saves(before, after, params=True, flops=True)
                    and after.params <= (1 - self.min_saving) * before.params
                    and after.flops <= (1 - self.min_saving) * before.flops)

        k = kernel_text(a["kernel"])
        return conv_replacement(
            self, graph, node, build, lambda before, after: (
                f"{k} conv {a['in_channels']}→{a['filters']}: its depthwise-separable form "
                f"has {num(after.params)} instead of {num(before.params)} parameters",
                f"replace it by a {k} depthwise conv and a 1×1 conv to {a['filters']} "
                f"channels (SeparableConv)"),
            accept=accept)
