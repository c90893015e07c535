"""CNK101 ``large-kernel``: a k×k convolution (k ≥ 5) → stacked 3×3 convolutions."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.analysis.patterns import is_patchify, is_standard_conv, spans_input
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import conv_replacement, findings_at, kernel_text, num


def stack_depth(kernel: int) -> int:
    """How many stacked 3-wide convs see a ``kernel``-wide window: ⌈(k − 1)/2⌉."""
    return -(-(kernel - 1) // 2)


class LargeKernel(Rule):
    """A large-kernel convolution that stacked 3×3 convolutions would make cheaper.

    ## What it does
    Finds standard convolutions with a square k×k kernel, k ≥ 5 (any rank), no
    dilation, and proposes ⌈(k−1)/2⌉ stacked 3×3 convolutions with the same receptive
    field, each as wide as the output (the stride, on the first).  It fires only where
    the stack has fewer parameters; the finding gives both forms' FLOPs.

    ## Why is this bad?
    A 5×5 kernel costs 25 weights per input/output channel pair, two 3×3 cost 18 and see
    the same 5×5 window, with one more non-linearity in between (VGG; Inception-V3 §3.1).
    A 64→64 5×5 conv has 102,400 weights, two 3×3 have 73,728.  Where the input has few
    channels (ResNet50's 7×7 stem on RGB) the stack would be *more* expensive: the
    intermediate layers are as wide as the output.  No finding there.

    ## Known problems
    A patchify conv (stride = kernel: ViT's 16×16 patch embedding) sees non-overlapping
    windows, and a conv spanning its whole input map is a dense head
    (``flatten-dense-head`` reports it): stacked 3×3s are not the same layer there, so
    the rule is silent on both.

    ## Example
    ```python
    y = keras.layers.Conv2D(64, 5, padding="same", use_bias=False)(x)   # 102,400
    ```

    ## Use instead
    ```python
    y = keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(x)
    y = keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(y)   # 73,728
    ```
    When only the receptive field matters, a dilated 3×3 (``dilation_rate=2``) sees a
    5×5 window with 9 weights per pair.

    ## References
    - Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
      Recognition" (VGG), ICLR 2015, §2.3 (two stacked 3×3 see a 5×5 window with
      2·3² = 18 weights per channel pair instead of 5² = 25),
      https://arxiv.org/abs/1409.1556.
    - Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR
      2016, §3.1 (InceptionV3's 5×5 branches: 76,800 → 64,512 weights),
      https://arxiv.org/abs/1512.00567.
    """

    code = "CNK101"
    symbol = "large-kernel"
    severity = Severity.WARNING
    fixable = True
    #: The smallest square kernel the rule considers (also the pylint plugin's default).
    MIN_KERNEL = 5

    def __init__(self, min_kernel: int = MIN_KERNEL):
        self.min_kernel = min_kernel

    def check(self, graph: Graph) -> Iterable[Finding]:
        return findings_at((n for n in graph if self._applies(n)),
                           lambda node: self._check_conv(graph, node))

    def _applies(self, node: Node) -> bool:
        """A standard conv with a square kernel of at least ``min_kernel``, undilated."""
        if not is_standard_conv(node) or node.output_shape is None:
            return False
        kernel = node.attrs["kernel"]
        return (len(set(kernel)) == 1 and kernel[0] >= self.min_kernel
                and set(node.attrs["dilation"]) == {1}
                and not is_patchify(node) and not spans_input(node))

    def _check_conv(self, graph: Graph, node: Node):
        k, rank = node.attrs["kernel"][0], node.attrs["rank"]
        depth = stack_depth(k)
        filters = node.attrs["filters"]

        def build(frag):
            src = node.inputs[0]
            for i in range(depth):
                src = frag.conv(f"3x3_{i + 1}", src, node, filters, (3,) * rank,
                                strides=node.attrs["strides"] if i == 0 else None).name

        window = kernel_text(node.attrs["kernel"])
        small = kernel_text((3,) * rank)
        return conv_replacement(
            self, graph, node, build, lambda before, after: (
                f"{window} conv {node.attrs['in_channels']}→{filters}: {depth} stacked "
                f"{small} convs see the same {window} window with "
                f"{num(after.params)} instead of {num(before.params)} parameters",
                f"replace it by {depth} stacked {small} convs of {filters} "
                f"filters (stride on the first); or a dilated 3×3 where only the receptive "
                f"field matters"),
            measurements={"kernel": k, "stack_depth": depth})
