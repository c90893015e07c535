"""CNK104 ``depthwise-separable-candidate``: a standard conv → depthwise + pointwise."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.patterns import (
    is_factorised_kernel,
    is_fused_expansion,
    is_patchify,
    is_spatial_conv,
    residual_branch,
    spans_input,
    stem_convs,
)
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import STEM_CHANNELS, conv_replacement, kernel_text, num, saves


class DepthwiseSeparableCandidate(Rule):
    """A standard convolution that a depthwise + pointwise pair would make much cheaper.

    ## What it does
    Finds standard convolutions with a spatial kernel whose depthwise-separable form
    (a k×k depthwise conv, then a 1×1 conv to C_out) saves at least half of their
    parameters and FLOPs, and proposes that form.  Both new convs keep the original's
    bias (a 3→4 3×3 conv has 3·9·4 + 4 = 112 parameters; its depthwise conv
    3·9 + 3 = 30 and its pointwise conv 3·4 + 4 = 16, 46 in all); the activation goes
    after the pointwise conv.

    ## Why is this bad?
    A standard conv costs D_K²·C_I·C_O weights (×D_O² multiply-adds); the separable form
    C_I·(D_K² + C_O): a ratio of 1/C_O + 1/D_K² (MobileNets
    §3.1).  64→256 3×3: 147,456 → 16,960.

    ## Known problems
    Fewer FLOPs is not less time: a depthwise conv is memory-bound.  This project's
    measurements (``benchmarks/RESULTS.md``) find the separable form 2.6× *slower* on a
    CPU at a 0.13 FLOP ratio (median) and no faster on an H100 (median time ratio 1.12
    in bfloat16, 0.98 in TF32 at batch 32).  It is also a different, weaker layer that
    needs retraining: MobileNet's trade, a redesign rather than a lint.  So the rule is
    ``info``: advice worth reading where the target is FLOP-bound (mobile CPUs, NPUs),
    never a reason to fail a build.

    It stays silent on designs that chose a full conv on purpose:

    * the stem: a conv over ≤ 4 input channels (RGB) — a depthwise conv over 3 channels
      leaves every output a mix of 3 filtered maps — and the chain of full convs that
      follows it before the first pooling, merge or fork (Inception-V3's three 3×3s,
      Xception's two, ResNet-D's three, ResNet-RS's four, VGG's first pair).
      MobileNet, Xception and EfficientNet keep these standard;
    * convs over fewer than 32 channels (``min_channels``): MobileNet's narrowest
      depthwise conv is over 32 channels;
    * 1×n / n×1 kernels: Inception-V3's factorised convs are already the cheap form;
    * patchify convs (stride = kernel: ViT's patch embedding, ConvNeXt's 4×4 stem and
      2×2 downsampling), a linear space-to-depth;
    * a conv spanning its whole input map (a dense head written as a conv:
      ``flatten-dense-head`` reports it);
    * EfficientNetV2's Fused-MBConv: a k×k expansion feeding a 1×1 projection, and the
      single k×k conv of a residual block (ratio-1 Fused-MBConv; RepVGG's training-form
      3×3 beside its 1×1 branch too).  Tan & Le replaced the depthwise conv there on
      purpose (depthwise convs are slow in early stages on accelerators), as Ding et al.
      keep RepVGG dense (3×3 convs are the fastest per FLOP on GPUs);
    * a full conv in a network built on group convs of the same kernel (ResNeXt,
      RegNet): its designers chose the group width, and a stage narrower than that width
      is dense by that choice (RegNetX-8.0GF's 80-channel first stage under a group
      width of 120; Radosavovic et al. 2020, §4).

    ## Example
    ```python
    y = keras.layers.Conv2D(256, 3, padding="same", use_bias=False)(x)   # x: 64 ch
    ```

    ## Use instead
    ```python
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    y = keras.layers.Conv2D(256, 1, use_bias=False)(y)                  # 576 + 16,384
    ```
    (``keras.layers.SeparableConv2D`` is the same pair with one bias.)

    ## References
    - Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile
      Vision Applications", 2017, §3.1 and Table 1 (a full conv stem, depthwise from 32
      channels on), https://arxiv.org/abs/1704.04861.
    - Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017,
      https://arxiv.org/abs/1610.02357.
    - Tan & Le, "EfficientNetV2: Smaller Models and Faster Training", ICML 2021, §3.2
      (Fused-MBConv).
    - Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021, §3.1.
    - Radosavovic et al., "Designing Network Design Spaces", CVPR 2020 (RegNet's group
      width).
    """

    code = "CNK104"
    symbol = "depthwise-separable-candidate"
    severity = Severity.INFO
    fixable = True

    def __init__(self, min_saving: float = 0.5, min_channels: int = 32):
        self.min_saving = min_saving
        self.min_channels = min_channels

    def check(self, graph: Graph) -> Iterable[Finding]:
        stem = stem_convs(graph, image_channels=STEM_CHANNELS)
        grouped = _grouped_kernels(graph)
        for node in graph:
            if not is_spatial_conv(node) or node.output_shape is None:
                continue
            if not self.exempt(graph, node, stem, grouped):
                finding = self._check_conv(graph, node)
                if finding is not None:
                    yield finding

    def exempt(self, graph: Graph, node: Node, stem: set, grouped: frozenset) -> bool:
        """True when standard spatial conv ``node`` is one of the designs the docstring's
        *Known problems* lists (``stem``: :func:`stem_convs` of ``graph``; ``grouped``:
        :func:`_grouped_kernels` of it)."""
        c_in = node.attrs["in_channels"]
        return (c_in <= STEM_CHANNELS or c_in < self.min_channels or node.name in stem
                or is_factorised_kernel(node) or is_patchify(node) or spans_input(node)
                or is_fused_expansion(graph, node)
                or residual_branch(graph, node, max_convs=1) is not None
                or tuple(node.attrs["kernel"]) in grouped)

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


def _grouped_kernels(graph: Graph) -> frozenset:
    """The kernels of ``graph``'s group convs (1 < groups < channels): a full conv with one
    of them sits in a network whose designers chose grouping as its efficiency technique
    (one pass over the graph, not one per conv)."""
    return frozenset(tuple(node.attrs["kernel"]) for node in graph
                     if node.op == OpKind.CONV
                     and 1 < node.attrs.get("groups", 1) < node.attrs["in_channels"])
