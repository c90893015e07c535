"""CNK001 ``opaque-layer``: a layer the linter cannot analyse."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, OpKind
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import num


class OpaqueLayer(Rule):
    """A layer whose computation the linter cannot see (Lambda, unknown class).

    ## What it does
    Reports every node of the graph the frontend could not analyse: a ``Lambda``, a
    custom layer class the linter does not know, or an operation it has no rule for.
    The summary lists the same nodes as "unknown cost".

    ## Why is this bad?
    The model's parameter, MAC and FLOP totals leave such a node out (it is never
    counted as 0 in silence), and no rule can look inside it.  A ``Lambda`` also
    carries marshalled bytecode: loading the model through Keras runs it
    (CVE-2024-3660), which is why the file frontend never does.

    ## Example
    ```python
    x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    ```

    ## Use instead
    ```python
    x = keras.layers.Rescaling(2.0)(x)    # a standard layer with a known cost
    ```

    ## References
    - CVE-2024-3660, CVE-2025-1550: code execution when loading Keras models,
      https://nvd.nist.gov/vuln/detail/CVE-2024-3660.
    """

    code = "CNK001"
    symbol = "opaque-layer"
    severity = Severity.INFO
    fixable = False

    def check(self, graph: Graph) -> Iterable[Finding]:
        for node in graph:
            if node.op != OpKind.OPAQUE:
                continue
            cls = node.attrs.get("class_name", node.source_class or "?")
            why = node.attrs.get("reason", "unknown layer class")
            params = f"; {num(node.params)} parameters observed" if node.params else ""
            yield self.finding(
                node, f"{cls} cannot be analysed ({why}); its MACs and FLOPs are unknown"
                      f"{params}",
                suggestion="replace it with standard layers, or register a rule/frontend "
                           "mapping for its class",
                measurements={"class_name": cls, "reason": why})
