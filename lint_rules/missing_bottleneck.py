"""CNK103 ``missing-bottleneck``: a wide k×k conv without a 1×1 channel reduction."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.ops.layer_scale import LAYER_SCALE
from keras_cnnkit.analysis.patterns import (
    TRANSPARENT,
    is_factorised_kernel,
    is_fused_expansion,
    is_patchify,
    is_pointwise,
    is_spatial_conv,
    residual_branch,
    spans_input,
    stem_convs,
)
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import STEM_CHANNELS, conv_replacement, kernel_text, num

#: Single-input ops a 1×1 reduction is seen through (a channel slice keeps it reduced).
#: An element-wise scale (Inception-ResNet's residual scaling, ConvNeXt's layer scale)
#: keeps a tensor's channels as they are.
_PASS = TRANSPARENT | {OpKind.PAD, OpKind.SLICE, OpKind.RESCALE, LAYER_SCALE}
#: Merges through which a reduction is seen when every input is reduced.
_JOINS = frozenset({OpKind.ADD, OpKind.CONCAT})


class MissingBottleneck(Rule):
    """A k×k convolution between wide tensors with no 1×1 reduction in front of it.

    ## What it does
    Finds standard convolutions with a spatial kernel whose input and output both have
    at least 16 channels and that no 1×1 convolution feeds (looking back through batch
    norm, activations, padding, the k×k convs of the same branch, and the ``Add``s,
    ``Concatenate``s and channel slices that join or split reduced tensors).  It
    proposes:

    * for a conv that keeps or narrows the width: the ResNet bottleneck, 1×1 reduce to
      C_out/4, the k×k at that width, 1×1 expand back to C_out (256→256 3×3:
      256·9·256 = 589,824 weights; 256·64 + 64·9·64 + 64·256 = 69,632);
    * for a conv that at least doubles the width: GoogLeNet's form, 1×1 reduce to C_in/2
      then the k×k straight to C_out (24→48 3×3 with bias: 24·9·48 + 48 = 10,416; with a
      1×1 to 12 first: 24·12 + 12 + 12·9·48 + 48 = 5,532).

    Every new conv keeps the original's bias and fused activation.  The bottleneck must
    be at least 32 channels wide (``min_width``).

    ## Why is this bad?
    A k×k conv's cost grows with C_in·C_out.  256→256 3×3 has 589,824 weights; 1×1→64,
    3×3 64→64, 1×1→256 has 69,632 (−88%).  ResNet-50 and deeper ResNets, Inception and
    DenseNet put a 1×1 reduction in front of every 3×3 for this reason.

    ## Known problems
    A bottleneck narrower than 32 channels (InceptionV3's 32→32 ``conv2d_1`` "reduced
    to 8", Res2Net's 26-channel 3×3s "reduced to 6") throws away most of the
    representation for little saving: the rule proposes none.  It stays silent on
    designs that chose the wide k×k on purpose:

    * ResNet's basic block (two k×k convs on a residual branch, ResNet-18/34): He et al.
      use the bottleneck only from 50 layers on, for training time, not accuracy;
    * EfficientNetV2's Fused-MBConv: the k×k expansion feeding a 1×1 projection, and
      the single k×k conv of a ratio-1 residual block (Tan & Le, §3.2);
    * patchify convs (stride = kernel: ViT's patch embedding, ConvNeXt's 2×2
      downsampling), 1×n / n×1 kernels (already factorised), and a conv spanning its
      whole input map (a dense head: ``flatten-dense-head`` reports it);
    * the widening convs of the stem: the chain of full convs from the image input up
      to the first pooling, merge or fork (PP-HGNet's 3→48→48→96, ResNet-D's three
      3×3s), as ``depthwise-separable-candidate`` exempts it, where a conv has more
      output channels than input channels.  Those build the network's first features
      up from RGB; a 1×1 reduction there would squeeze the map the conv before has just
      widened (ResNet-D's and PP-HGNet's deep stems have none).  A stem conv that keeps
      its width (a 64→64 5×5 right after a 1→64 first conv) is a body conv like any
      other.

    The look-back is structural: a k×k fed by a concatenation of reduced branches and
    one unreduced tensor still counts as unreduced.

    ## Example
    ```python
    y = keras.layers.Conv2D(256, 3, padding="same", use_bias=False)(x)   # x: 256 ch
    ```

    ## Use instead
    ```python
    y = keras.layers.Conv2D(64, 1, use_bias=False)(x)
    y = keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(y)
    y = keras.layers.Conv2D(256, 1, use_bias=False)(y)                  # 69,632
    ```
    (with batch norm and activations between, as in the rest of the network).

    ## References
    - He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.1
      (bottleneck architectures), https://arxiv.org/abs/1512.03385.
    - Szegedy et al., "Going Deeper with Convolutions" (GoogLeNet), CVPR 2015, §4,
      https://arxiv.org/abs/1409.4842.
    - Lin et al., "Network In Network", ICLR 2014 (1×1 convolutions),
      https://arxiv.org/abs/1312.4400.
    - Tan & Le, "EfficientNetV2: Smaller Models and Faster Training", ICML 2021, §3.2.
    """

    code = "CNK103"
    symbol = "missing-bottleneck"
    severity = Severity.WARNING
    fixable = True

    def __init__(self, min_channels: int = 16, reduction: int = 4, widen_reduction: int = 2,
                 min_width: int = 32):
        self.min_channels = min_channels
        self.reduction = reduction
        self.widen_reduction = widen_reduction
        self.min_width = min_width

    def check(self, graph: Graph) -> Iterable[Finding]:
        reduced = _reduced_inputs(graph)
        stem = stem_convs(graph, image_channels=STEM_CHANNELS)
        for node in graph:
            if not is_spatial_conv(node) or node.output_shape is None:
                continue
            c_in, c_out = node.attrs["in_channels"], node.attrs["filters"]
            if min(c_in, c_out) < self.min_channels or reduced[node.name] or (
                    node.name in stem and c_out > c_in):
                continue
            if _intended(graph, node):
                continue
            finding = self._check_conv(graph, node, c_in, c_out)
            if finding is not None:
                yield finding

    def _check_conv(self, graph: Graph, node: Node, c_in: int, c_out: int):
        widening = c_out >= 2 * c_in
        mid = c_in // self.widen_reduction if widening else c_out // self.reduction
        if not max(1, self.min_width) <= mid < c_in:
            return None
        rank = node.attrs["rank"]
        ones = (1,) * rank

        def build(frag):
            reduce = frag.conv("reduce", node.inputs[0], node, mid, ones, padding="valid")
            conv = frag.conv("conv", reduce.name, node, c_out if widening else mid,
                             node.attrs["kernel"], strides=node.attrs["strides"],
                             dilation=node.attrs["dilation"])
            if not widening:
                frag.conv("expand", conv.name, node, c_out, ones, padding="valid")

        k = kernel_text(node.attrs["kernel"])
        form = (f"1×1 reduce to {mid}, {k} to {c_out}" if widening
                else f"1×1 reduce to {mid}, {k} at {mid}, 1×1 expand to {c_out}")
        return conv_replacement(
            self, graph, node, build, lambda before, after: (
                f"{k} conv {c_in}→{c_out} without a 1×1 reduction: {num(before.params)} "
                f"parameters, {num(after.params)} as a bottleneck",
                f"insert a bottleneck: {form}"),
            measurements={"form": "reduce" if widening else "bottleneck", "width": mid})


def _intended(graph: Graph, node: Node) -> bool:
    """A basic residual block's or a Fused-MBConv's k×k, a patchify, factorised or
    whole-map conv (see the docstring's *Known problems*)."""
    return (is_patchify(node) or is_factorised_kernel(node) or spans_input(node)
            or is_fused_expansion(graph, node)
            or residual_branch(graph, node, max_convs=2) is not None)


def _reduced_inputs(graph: Graph) -> dict:
    """node name → whether a 1×1 conv feeds it, looking back through transparent ops,
    padding, the spatial convs of the same branch, channel slices, and the ``Add``s and
    ``Concatenate``s all of whose inputs are reduced (one pass, in topological order)."""
    out = {}  # node name → whether its output is a reduced tensor
    for node in graph:
        producers = graph.producers(node)
        if is_pointwise(node):
            out[node.name] = True
        elif node.op in _JOINS:
            out[node.name] = bool(producers) and all(out[p.name] for p in producers)
        else:
            out[node.name] = (len(producers) == 1 and out[producers[0].name]
                              and (node.op in _PASS or is_spatial_conv(node)))
    return {node.name: len(node.inputs) == 1 and out[node.inputs[0]] for node in graph}
