"""CNK102 ``asymmetric-factorization``: an n×n conv on a mid-size map → 1×n + n×1."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.analysis.patterns import is_standard_conv
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import conv_replacement, findings_at, num


class AsymmetricFactorization(Rule):
    """An n×n convolution on a medium-size map that a 1×n then n×1 pair would make cheaper.

    ## What it does
    Finds 2D standard convolutions with a square n×n kernel (n ≥ 3), stride 1 and no
    dilation whose output map is between 12 and 20 positions on each side, and proposes
    the asymmetric pair 1×n (C_in → C_out) then n×1 (C_out → C_out).

    ## Why is this bad?
    An n×n kernel costs n² weights per channel pair, the asymmetric pair 2n: a 3×3
    becomes 33% cheaper, a 7×7 71%.  Szegedy et al. found the factorisation works well
    on medium grids (m×m with m between 12 and 20) and poorly on early layers, so the
    rule stays silent elsewhere.  It is advice (info): the pair is a different model
    that needs retraining.

    ## Example
    ```python
    y = keras.layers.Conv2D(192, 7, padding="same")(x)    # x: (17, 17, 192)
    ```

    ## Use instead
    ```python
    y = keras.layers.Conv2D(192, (1, 7), padding="same")(x)
    y = keras.layers.Conv2D(192, (7, 1), padding="same")(y)
    ```

    ## References
    - Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR
      2016, §3.2 (InceptionV3's 17×17 modules: 1×3/3×1, 1×7/7×1),
      https://arxiv.org/abs/1512.00567.
    """

    code = "CNK102"
    symbol = "asymmetric-factorization"
    severity = Severity.INFO
    fixable = True

    def __init__(self, min_size: int = 12, max_size: int = 20, min_kernel: int = 3):
        self.min_size, self.max_size, self.min_kernel = min_size, max_size, min_kernel

    def check(self, graph: Graph) -> Iterable[Finding]:
        return findings_at((n for n in graph if self._applies(n)),
                           lambda node: self._check_conv(graph, node))

    def _applies(self, node: Node) -> bool:
        """A square n×n, stride-1, undilated 2D conv on a medium-size map."""
        if not is_standard_conv(node) or node.attrs["rank"] != 2 or node.output_shape is None:
            return False
        kernel = node.attrs["kernel"]
        if len(set(kernel)) != 1 or kernel[0] < self.min_kernel:
            return False
        if set(node.attrs["strides"]) != {1} or set(node.attrs["dilation"]) != {1}:
            return False
        return all(d is not None and self.min_size <= d <= self.max_size
                   for d in node.spatial())

    def _check_conv(self, graph: Graph, node: Node):
        n, filters = node.attrs["kernel"][0], node.attrs["filters"]

        def build(frag):
            row = frag.conv(f"1x{n}", node.inputs[0], node, filters, (1, n))
            frag.conv(f"{n}x1", row.name, node, filters, (n, 1))

        size = "×".join(str(d) for d in node.spatial())
        return conv_replacement(
            self, graph, node, build, lambda before, after: (
                f"{n}×{n} conv on a {size} map: 1×{n} then {n}×1 has {num(after.params)} "
                f"instead of {num(before.params)} parameters",
                f"factorise into a 1×{n} and an {n}×1 conv of {filters} filters"),
            measurements={"kernel": n})
