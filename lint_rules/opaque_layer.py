"""CNK001 ``opaque-layer``: a layer the linter cannot analyse."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.ir import Graph, OpKind
from keras_cnnkit.analysis.ops.opaque import INPUT_SHAPE_UNKNOWN
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import num

class OpaqueLayer(Rule):
    """A layer whose computation the linter cannot see (Lambda, unknown class).

    ## What it does
    Reports every layer the frontend could not analyse: a ``Lambda``, a custom layer
    class the linter does not know, or an operation it has no rule for.  The summary
    lists the same nodes as "unknown cost".  One finding per such layer (a layer with
    several outputs is one finding); known layers left without an input shape by it
    are listed in its finding (``measurements["hides"]``), not reported on their own.

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
    - CVE-2024-3660, CVE-2025-1550: code execution when loading Keras models,
      https://nvd.nist.gov/vuln/detail/CVE-2024-3660.
    """

    code = "CNK001"
    symbol = "opaque-layer"
    severity = Severity.INFO
    fixable = False

    def check(self, graph: Graph) -> Iterable[Finding]:
        hidden = _hidden_by_root(graph)
        for node in graph:
            if node.name not in hidden:
                continue
            cls = node.attrs.get("class_name", node.source_class or "?")
            why = node.attrs.get("reason", "unknown layer class")
            params = f"; {num(node.params)} parameters observed" if node.params else ""
            hides = hidden[node.name]
            after = ""
            if hides:
                shown = ", ".join(hides[:3]) + (", ..." if len(hides) > 3 else "")
                after = (f"; {len(hides)} layer{'s' if len(hides) > 1 else ''} after it "
                         f"{'have' if len(hides) > 1 else 'has'} no known input shape "
                         f"({shown})")
            inner = node.attrs.get("inner_macs")
            unknown = ("its MACs and FLOPs are those of the known layers it calls "
                       f"({num(inner)} MACs, {num(node.attrs.get('inner_flops') or 0)} "
                       "FLOPs; its other work is not counted)") if inner else \
                "its MACs and FLOPs are unknown"
            yield self.finding(
                node, f"{cls} cannot be analysed ({why}); {unknown}{params}{after}",
                suggestion="replace it with standard layers, or register a rule/frontend "
                           "mapping for its class",
                measurements={"class_name": cls, "reason": why, "hides": hides,
                              "hidden": len(hides)})


def _hidden_by_root(graph: Graph) -> dict:
    """Root opaque node → the layers downstream it leaves without a shape.

    A root is an opaque node that is not a known layer merely left without an input
    shape by another (reason :data:`INPUT_SHAPE_UNKNOWN`), and the first node of its
    layer (a layer with several outputs has a node per output); a known layer without an
    input shape belongs to the root its first unknown input comes from.
    """
    roots: dict = {}
    origin: dict = {}
    first_of_layer: dict = {}
    for node in graph:
        if node.op != OpKind.OPAQUE:
            continue
        layer = node.layer or node.name
        upstream = [origin[src] for src, shape in zip(node.inputs, node.input_shapes)
                    if shape is None and src in origin] \
            if node.attrs.get("reason") == INPUT_SHAPE_UNKNOWN else []
        if upstream:
            origin[node.name] = upstream[0]
            if layer not in roots[upstream[0]]:
                roots[upstream[0]].append(layer)
        elif node.attrs.get("output_index", 0) and layer in first_of_layer:
            origin[node.name] = first_of_layer[layer]
        else:
            origin[node.name] = node.name
            roots[node.name] = []
            first_of_layer.setdefault(layer, node.name)
    return roots
