"""CNK001 ``opaque-layer``: a layer the linter cannot analyse."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, OpKind
from keras_cnnkit.analysis.ops.opaque import INPUT_SHAPE_UNKNOWN
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import num

#: Downstream layers a finding names (the rest are counted).
_NAMED = 5


class OpaqueLayer(Rule):
    """A layer whose computation the linter cannot see (Lambda, unknown class).

    ## What it does
    Reports every node of the graph the frontend could not analyse: a ``Lambda``, a
    custom layer class the linter does not know, or an operation it has no rule for.
    A known layer that follows one is left without an input shape and becomes opaque
    too: it is not reported on its own, but counted and named in the finding of the
    opaque layer upstream (its root) that hides it.  The summary lists all of them as
    "unknown cost".

    ## Why is this bad?
    The model's parameter, MAC and FLOP totals leave such a node out (it is never
    counted as 0 in silence), and no rule can look inside it, nor at the layers whose
    shapes it hides.  A ``Lambda`` also carries marshalled bytecode: loading the model
    through Keras runs it (CVE-2024-3660), which is why the file frontend never does.

    ## Known problems
    One finding per root: a custom layer after another custom layer is a root of its
    own (it would be opaque even with a known input), a ``Dense`` after it is not.

    ## Example
    ```python
    x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    ```

    ## Use instead
    ```python
    x = keras.layers.Rescaling(2.0)(x)    # a standard layer with a known cost
    ```

    ## References
    - CVE-2024-3660, CVE-2025-1550: code execution when loading Keras models.
    - Issue 4/5 of this project: unknown costs are listed, never counted as 0.
    """

    code = "CNK001"
    symbol = "opaque-layer"
    severity = Severity.INFO
    fixable = False

    def check(self, graph: Graph) -> Iterable[Finding]:
        hidden = _hidden_by_root(graph)
        for name, downstream in hidden.items():
            node = graph[name]
            cls = node.attrs.get("class_name", node.source_class or "?")
            why = node.attrs.get("reason", "unknown layer class")
            params = f"; {num(node.params)} parameters observed" if node.params else ""
            hides = ""
            if downstream:
                layers = [graph[n].layer or n for n in downstream]
                more = f", … ({len(layers) - _NAMED} more)" if len(layers) > _NAMED else ""
                hides = (f"; {len(layers)} layer(s) after it cannot be analysed either "
                         f"(input shape unknown): {', '.join(layers[:_NAMED])}{more}")
            yield self.finding(
                node, f"{cls} cannot be analysed ({why}); its MACs and FLOPs are unknown"
                      f"{params}{hides}",
                suggestion="replace it with standard layers, or register a rule/frontend "
                           "mapping for its class",
                measurements={"class_name": cls, "reason": why, "hidden": len(downstream),
                              "hidden_layers": list(downstream)})


def _hidden_by_root(graph: Graph) -> dict:
    """root opaque node name → names of the opaque-by-shape nodes downstream of it (each
    under its first root, in topological order)."""
    roots, root_of = {}, {}
    for node in graph:
        if node.op != OpKind.OPAQUE:
            continue
        upstream = [root_of[p] for p in node.inputs if p in root_of]
        if node.attrs.get("reason") == INPUT_SHAPE_UNKNOWN and upstream:
            root_of[node.name] = upstream[0]
            roots[upstream[0]].append(node.name)
        else:
            root_of[node.name] = node.name
            roots[node.name] = []
    return roots
