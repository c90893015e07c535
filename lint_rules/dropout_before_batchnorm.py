"""CNK109 ``dropout-before-batchnorm``: dropout feeding batch norm (variance shift)."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.fragments import FragmentBuilder
from keras_cnnkit.analysis.ir import Graph, OpKind
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import costed_finding

#: Dropout kinds that rescale kept units (and so shift the variance BN learns).
_VARIANCE_SHIFTING = frozenset({"dropout", "spatial", "gaussian", "alpha"})


class DropoutBeforeBatchnorm(Rule):
    """Dropout whose output goes straight into batch normalization.

    ## What it does
    Finds a ``Dropout`` (or ``SpatialDropout``, ``GaussianDropout``, ``AlphaDropout``)
    with a non-zero rate whose only consumer is a ``BatchNormalization``, and proposes
    swapping them (dropout after the batch norm).  At inference both orders compute the
    same thing, so the learned weights carry over.

    ## Why is this bad?
    During training dropout scales the kept units by 1/(1−p), which changes the variance
    of its output; at inference it does not.  Batch norm's moving variance is learnt
    under the training-time variance and applied to the inference-time one: a
    "variance shift" that costs accuracy.  Put dropout after the last batch norm.

    ## Example
    ```python
    x = keras.layers.Dense(128)(x)
    x = keras.layers.Dropout(0.3)(x)
    x = keras.layers.BatchNormalization()(x)
    ```

    ## Use instead
    ```python
    x = keras.layers.Dense(128)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.3)(x)
    ```

    ## References
    - Li et al., "Understanding the Disharmony between Dropout and Batch Normalization
      by Variance Shift", CVPR 2019, https://arxiv.org/abs/1801.05134.
    """

    code = "CNK109"
    symbol = "dropout-before-batchnorm"
    severity = Severity.WARNING
    fixable = True

    def check(self, graph: Graph) -> Iterable[Finding]:
        for node in graph:
            if (node.op != OpKind.DROPOUT or not node.attrs.get("rate")
                    or node.attrs.get("kind", "dropout") not in _VARIANCE_SHIFTING):
                continue
            bn = graph.single_consumer(node)
            if bn is None or bn.op != OpKind.BATCHNORM or node.name in graph.outputs:
                continue
            frag = FragmentBuilder(graph, bn.name)
            moved_bn = frag.copy(bn, [node.inputs[0]], suffix="bn")
            moved_drop = frag.copy(node, [moved_bn.name], suffix="dropout")
            yield costed_finding(
                self, graph, node,
                f"dropout (rate {node.attrs['rate']:g}) feeds the batch norm "
                f"{bn.layer or bn.name}: its training-time variance shifts the statistics "
                "the batch norm learns",
                "move the dropout after the batch norm", [node.name, bn.name],
                [moved_bn, moved_drop], moved_drop.name, preserves_function=True)
