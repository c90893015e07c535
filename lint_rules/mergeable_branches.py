"""CNK112 ``mergeable-branches``: parallel linear conv/BN branches summed → one conv."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.branches import branch_sums, merged_conv
from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import costed_finding, costs_of, kernel_text, num

#: How a branch kind is named in a message.
_KIND_TEXT = {"bn": "BN", "identity": "identity"}


class MergeableBranches(Rule):
    """Parallel linear branches of one tensor, summed, that one convolution computes.

    ## What it does
    Finds an ``Add`` (or a tree of ``Add``s) of two or more branches of the same tensor,
    each a convolution without an activation (with or without a batch norm after it), a
    batch norm of the tensor, or the tensor itself, at least one a conv, with the same
    stride, groups and output channels, whose kernels fit in one window.  That is the
    training form of RepVGG, ACNet, DBB and MobileOne blocks.  It proposes the one conv
    (the largest kernel, with a bias) that computes the same sum in inference.

    ## Why is this bad?
    In inference the sum is one linear map: each batch norm folds into its conv, each
    kernel is zero-padded to the largest one, the identity is a kernel with one tap per
    channel, and they add up (structural re-parameterisation).  Keeping the branches
    costs their MACs, the batch norms, the adds and the memory traffic of every branch
    output: RepVGG-A0's 3×3 + 1×1 + BN blocks spend 10% more MACs than its merged form,
    MobileOne-S0's six-way sums half of the model's.

    ## Known problems
    The branches are the point in training: the merged conv trains like a plain conv,
    and the batch norms' batch statistics are gone.  Merge the model you deploy, keep
    training the multi-branch one.  Stride-2 branches are merged where their windows
    line up (TensorFlow's ``"same"`` pads one side); where they do not, or the shapes
    are unknown, the rule is silent.

    ## Example
    ```python
    a = keras.layers.BatchNormalization()(keras.layers.Conv2D(64, 3, padding="same",
                                                              use_bias=False)(x))
    b = keras.layers.BatchNormalization()(keras.layers.Conv2D(64, 1, use_bias=False)(x))
    c = keras.layers.BatchNormalization()(x)                       # x: 64 channels
    y = keras.layers.ReLU()(keras.layers.Add()([a, b, c]))
    ```

    ## Use instead
    ```python
    y = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)   # merged
    ```
    ``keras_cnnkit.rewrite.reparameterize(model)`` computes the merged weights, exact in
    inference; ``cnnkit-lint --fix`` applies the same.

    ## Fix safety
    Exact in inference (to float rounding), tested to 1e-5; the fixed model is an
    inference model: its batch norms are folded.

    ## References
    - Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021, §3.3,
      https://arxiv.org/abs/2101.03697.
    - Ding et al., "ACNet: Strengthening the Kernel Skeletons for Powerful CNN via
      Asymmetric Convolution Blocks", ICCV 2019, https://arxiv.org/abs/1908.03930.
    - Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023,
      https://arxiv.org/abs/2206.04040.
    """

    code = "CNK112"
    symbol = "mergeable-branches"
    severity = Severity.WARNING
    fixable = True

    def check(self, graph: Graph) -> Iterable[Finding]:
        for merge in branch_sums(graph):
            merged = merged_conv(graph, merge)
            removed = [n.name for n in merge.removed]
            before, after = costs_of(graph, removed, [merged])
            kinds = " + ".join(kernel_text(b.conv.attrs["kernel"]) if b.conv is not None
                               else _KIND_TEXT[b.kind] for b in merge.branches)
            source = merge.source.layer or merge.source.name
            k = kernel_text(merge.kernel)
            yield costed_finding(
                self, graph, merge.output,
                f"{len(merge.branches)} linear branches of {source} summed ({kinds}): one "
                f"{k} conv computes the same in inference, {num(after.macs)} instead of "
                f"{num(before.macs)} MACs",
                f"merge them into one {k} conv with a bias (structural "
                f"re-parameterisation: keras_cnnkit.rewrite.reparameterize)",
                removed, [merged], merged.name, preserves_function=True,
                measurements={"branches": len(merge.branches), "kernel": list(merge.kernel)},
                costs=(before, after))
