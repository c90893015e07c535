"""Live Keras model → graph IR.

Walks a built Functional or Sequential Keras 3 model call by call:

* nested models are flattened; their ops are named ``"outer/inner"``;
* a shared layer (or nested model) gives one node per call; calls after the first are
  named ``"<name>@<k>"`` when the plain name is taken, and carry
  ``attrs["shares_weights_with"]`` (their weights are counted once);
* several inputs and outputs are kept;
* ``keras_cnnkit`` composite blocks are expanded through their block specs, so rules see
  inside them; everything else goes through the shared table
  :mod:`keras_cnnkit.analysis.keras_layers`; a class it does not know becomes an opaque
  node with Keras' output shape and weight count.

Shapes are Keras' own (``KerasTensor.shape``).  Where the table infers a different output
shape, Keras' wins and the node records the table's in ``attrs["inferred_shape"]`` (the
tests check there is none).  ``Node.params`` is the layer's ``count_params()`` (per inner
op for blocks), which the cost summary compares with its formulas.

Keras is imported only by :func:`graph_from_keras`'s caller having a model; this module
imports nothing heavy at import time.
"""
from __future__ import annotations

from typing import Optional

from keras_cnnkit.analysis.input_shape import as_input_shape, fill_unknown
from keras_cnnkit.analysis.ir import Graph, OpKind, call_name
from keras_cnnkit.analysis.keras_layers import (
    Expansion,
    LayerConfigError,
    convert_layer,
    is_known,
    opaque_node,
)
from keras_cnnkit.analysis.ops.activation_table import keras_op_activations
from keras_cnnkit.analysis.shapes import ShapeError
from keras_cnnkit.errors import CnnkitError
from keras_cnnkit.io_guard import functional_graph

#: Top-level packages whose layer classes are trusted to mean what their names say.
_TRUSTED_PACKAGES = ("keras", "keras_cnnkit", "tf_keras")

#: ``keras.ops`` operations that can appear in a functional graph, as layer classes (the
#: activations' from the activation table).
_OPS_AS_LAYERS = {
    "Add": ("Add", {}), "Subtract": ("Subtract", {}), "Multiply": ("Multiply", {}),
    "Maximum": ("Maximum", {}), "Minimum": ("Minimum", {}),
    **{op: ("Activation", {"activation": name})
       for op, name in keras_op_activations().items()},
}


class UnsupportedModelError(CnnkitError, ValueError):
    """The model has no graph the live frontend can walk (e.g. a subclassed model)."""


def _is_model(operation) -> bool:
    import keras
    return isinstance(operation, keras.Model)


class _Walker:
    """State of one walk: the graph built so far and who owns which weights."""

    def __init__(self, name: str):
        self.graph = Graph(name=name, source="<keras model>", frontend="keras")
        self.first_call: dict = {}   # id(operation) -> name of its first call's node
        self.prefixes: set = set()    # name prefixes of nested-model calls so far

    def unique(self, name: str, taken=None) -> str:
        """:func:`~keras_cnnkit.analysis.ir.call_name` among ``taken`` (default: the nodes)."""
        return call_name(name, self.graph.nodes if taken is None else taken)

    def walk(self, functional, tensor_names: dict, prefix: str) -> None:
        """Add the nodes of ``functional``; ``tensor_names`` maps id(KerasTensor) → node."""
        for depth in sorted(functional._nodes_by_depth, reverse=True):  # pylint: disable=protected-access
            for knode in functional._nodes_by_depth[depth]:  # pylint: disable=protected-access
                operation = knode.operation
                if operation is None or knode.is_input:
                    continue
                inputs = [tensor_names[id(t)] for t in knode.input_tensors]
                if _is_model(operation) and functional_graph(operation) is not None:
                    self.nested(operation, knode, inputs, tensor_names, prefix)
                else:
                    self.layer_call(operation, knode, inputs, tensor_names, prefix)

    def nested(self, model, knode, inputs: list, tensor_names: dict, prefix: str) -> None:
        """Flatten a call of a nested model."""
        inner = functional_graph(model)
        call_prefix = self.unique(prefix + model.name, self.prefixes)
        self.prefixes.add(call_prefix)
        call_prefix += "/"
        inner_names = {id(t): src for t, src in zip(inner.inputs, inputs)}
        self.walk(inner, inner_names, call_prefix)
        for out, inner_out in zip(knode.outputs, inner.outputs):
            tensor_names[id(out)] = inner_names[id(inner_out)]

    def layer_call(self, operation, knode, inputs: list, tensor_names: dict,
                   prefix: str) -> None:
        """Add the node(s) of one call of a layer (or a ``keras.ops`` operation)."""
        name = self.unique(prefix + operation.name)
        class_name, config = _class_and_config(operation)
        shapes = [tuple(t.shape[1:]) for t in knode.input_tensors]
        observed = tuple(knode.outputs[0].shape[1:]) if knode.outputs else None
        producer = self.graph.nodes.get(inputs[0]) if inputs else None
        fmt = producer.attrs.get("data_format") if producer is not None else None
        try:
            expansion = convert_layer(name, class_name, config, inputs, shapes,
                                      data_format=fmt, observed_shape=observed)
        except (LayerConfigError, ShapeError) as exc:
            node = opaque_node(name, class_name, inputs, shapes, observed, reason=str(exc))
            expansion = Expansion([node], name)
        first = self.first_call.setdefault(id(operation), name)
        self.add_nodes(operation, expansion, name, first, observed)
        for out in knode.outputs:
            tensor_names[id(out)] = expansion.output

    def add_nodes(self, operation, expansion, name: str, first: str,
                  observed: Optional[tuple]) -> None:
        """Add an expansion's nodes with observed params, sharing and shape checks."""
        op_layers = getattr(operation, "_op_layers", None) or {}
        for node in expansion.nodes:
            if first != name:
                node.attrs["shares_weights_with"] = first + node.name[len(name):]
            elif node.name == expansion.output and node.op != OpKind.INPUT:
                node.params = _count_params(operation) if not op_layers else None
            local = node.name[len(name) + 1:]
            if first == name and local in op_layers:
                node.params = _count_params(op_layers[local])
            if node.name == expansion.output and observed is not None:
                if node.output_shape is not None and tuple(node.output_shape) != observed:
                    node.attrs["inferred_shape"] = tuple(node.output_shape)
                node.output_shape = observed
            self.graph.add(node)

    def add_input(self, tensor, prefix: str = "") -> str:
        """Add an INPUT node for a model input tensor."""
        layer = tensor._keras_history.operation  # pylint: disable=protected-access
        name = self.unique(prefix + (layer.name if layer is not None else "input"))
        expansion = convert_layer(name, "InputLayer", {"batch_shape": tuple(tensor.shape)},
                                  [], [])
        self.graph.add(expansion.nodes[0])
        return name


def _class_and_config(operation) -> tuple:
    """The class name the table should use, and the config, for a layer or op."""
    import keras
    cls = type(operation)
    class_name = cls.__name__
    if not isinstance(operation, keras.layers.Layer):
        if class_name in _OPS_AS_LAYERS:
            return _OPS_AS_LAYERS[class_name]
        return f"keras.ops.{class_name}", {}
    if cls.__module__.split(".")[0] not in _TRUSTED_PACKAGES:
        # A user's class may reuse a Keras name; only trusted packages' names are believed.
        return f"{cls.__module__}.{class_name}", {}
    if not is_known(class_name):
        return class_name, {}
    try:
        config = operation.get_config()
    except (NotImplementedError, TypeError, ValueError):
        return class_name, {}
    return class_name, config


def _count_params(layer) -> Optional[int]:
    """``layer.count_params()``; ``None`` for an unbuilt layer or a bare ``keras.ops`` op."""
    if not getattr(layer, "built", False) or not hasattr(layer, "count_params"):
        return None
    try:
        return int(layer.count_params())
    except ValueError:
        return None


def graph_from_keras(model, input_shape: Optional[tuple] = None) -> Graph:
    """The IR graph of a built Functional or Sequential Keras model.

    Args:
        model: a ``keras.Model`` (Functional or a built Sequential).
        input_shape: optional batch-excluded shape for a single-input model whose spatial
            size Keras leaves unknown (``(None, None, 3)``); shapes are then re-inferred
            from it with the IR's shape rules.  A configuration default
            (:class:`~keras_cnnkit.analysis.input_shape.InputShape`) fills only the
            unknown dims.

    Raises:
        UnsupportedModelError: a subclassed model or an unbuilt Sequential.
    """
    functional = functional_graph(model)
    if functional is None:
        raise UnsupportedModelError(
            f"model {getattr(model, 'name', model)!r} has no functional graph: build a "
            "Sequential model (give it an Input or call build()) first; subclassed models "
            "must be traced (see keras_cnnkit.lint on ONNX exports)")
    walker = _Walker(model.name)
    names = {}
    for tensor in functional.inputs:
        names[id(tensor)] = walker.add_input(tensor)
    walker.graph.inputs = [names[id(t)] for t in functional.inputs]
    walker.walk(functional, names, "")
    walker.graph.outputs = [names[id(t)] for t in functional.outputs]
    if input_shape is not None:
        from keras_cnnkit.analysis.shapes import propagate_shapes
        if len(walker.graph.inputs) != 1:
            raise ValueError("input_shape applies to single-input models only")
        requested = as_input_shape(input_shape)
        declared = tuple(functional.inputs[0].shape[1:])
        shape = fill_unknown(declared, requested)
        if shape is None:
            raise ShapeError(f"{requested.describe()} does not fit the model's input of "
                             f"shape {declared}")
        if shape != declared:
            return propagate_shapes(walker.graph, {walker.graph.inputs[0]: shape})
    return walker.graph
