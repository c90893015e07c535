"""CNK108 ``bias-before-batchnorm``: a conv/dense bias that the next batch norm cancels."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.fragments import FragmentBuilder
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.patterns import WEIGHTED
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import costed_finding, num


class BiasBeforeBatchnorm(Rule):
    """A convolution or dense layer with a bias, feeding batch norm directly.

    ## What it does
    Finds conv, depthwise, transposed-conv and dense layers with ``use_bias=True`` and
    no fused activation whose only consumer is a ``BatchNormalization`` over their
    channel axis, and proposes ``use_bias=False``.  The fix keeps the function exactly:
    the bias folds into the batch norm's moving mean.  A batch norm folded into its
    inference form (an ONNX per-channel ``Mul`` + ``Add``) counts only with its shift,
    into which the bias folds; a per-channel scale alone (a layer scale, ConvNeXt's
    ``x · γ``) subtracts nothing, so a bias before it is scaled, not cancelled.

    ## Why is this bad?
    Batch norm subtracts the per-channel mean right after the layer, so a per-channel
    bias is cancelled: C_out parameters that do nothing, a gradient that goes nowhere,
    and an add per output element at inference.

    ## Known problems
    Only a batch norm that shifts cancels the bias.  An ONNX export's per-channel
    multiply without an add (ConvNeXt's layer scale, read as a scale-only folded batch
    norm) scales the bias and cancels nothing: the rule stays silent there.

    ## Example
    ```python
    y = keras.layers.Conv2D(64, 3, padding="same")(x)      # use_bias=True by default
    y = keras.layers.BatchNormalization()(y)
    ```

    ## Use instead
    ```python
    y = keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(x)
    y = keras.layers.BatchNormalization()(y)
    ```

    ## References
    - Ioffe & Szegedy, "Batch Normalization: Accelerating Deep Network Training by
      Reducing Internal Covariate Shift", ICML 2015, §3.2 ("the bias b can be ignored"),
      https://arxiv.org/abs/1502.03167.
    """

    code = "CNK108"
    symbol = "bias-before-batchnorm"
    severity = Severity.WARNING
    fixable = True

    def check(self, graph: Graph) -> Iterable[Finding]:
        for node in graph:
            if (node.op not in WEIGHTED or not node.attrs.get("use_bias")
                    or node.attrs.get("activation") is not None or node.output_shape is None):
                continue
            bn = graph.single_consumer(node)
            if bn is None or bn.op != OpKind.BATCHNORM or node.name in graph.outputs:
                continue
            if bn.attrs.get("folded") and not bn.attrs.get("center"):
                continue
            channel_axis = 0 if node.data_format == "channels_first" else len(
                node.output_shape) - 1
            if bn.attrs.get("axis") != channel_axis or not _cancels_bias(bn):
                continue
            frag = FragmentBuilder(graph, node.name)
            fixed = frag.copy(node, use_bias=False)
            channels = node.channels()
            yield costed_finding(
                self, graph, node,
                f"the {num(channels)} biases of {node.layer or node.name} are cancelled by "
                f"the batch norm {bn.layer or bn.name} that follows",
                "set use_bias=False (the bias folds into the batch norm's moving mean)",
                [node.name], [fixed], fixed.name, preserves_function=True)


def _cancels_bias(bn: Node) -> bool:
    """True unless ``bn`` is a per-channel multiply the ONNX frontend folded into a batch
    norm without a shift (a layer scale): a batch norm subtracts its mean, a folded
    multiply-add absorbs the bias into its add, a bare multiply does neither."""
    return not bn.attrs.get("folded") or bool(bn.attrs.get("center"))
