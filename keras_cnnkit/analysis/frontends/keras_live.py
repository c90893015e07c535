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

* ``keras.ops`` calls (``x + y``, ``keras.ops.split``, ``x[..., :16]``) map through
  :mod:`keras_cnnkit.analysis.keras_ops` with their call arguments, as the file frontend
  maps them; a call with several outputs gives a node per output.

Shapes are Keras' own (``KerasTensor.shape``).  Where the table infers a different output
shape, Keras' wins and the node records the table's in ``attrs["inferred_shape"]`` (the
tests check there is none).  ``Node.params`` is the layer's ``count_params()`` (per inner
op for blocks), which the cost summary compares with its formulas.

Input size: an input dimension the model leaves unknown (``(None, None, 3)``) is
analysed at :data:`DEFAULT_SPATIAL` (224), as the file frontend does, unless
``input_shape`` says otherwise, and the graph says so in :attr:`Graph.notes`.  The
shapes at that size are Keras' own: every operation's ``compute_output_spec`` is run on
the concrete input (layers the linter cannot analyse included), so nothing downstream of
an unknown layer loses its shape.

Keras is imported only by :func:`graph_from_keras`'s caller having a model; this module
imports nothing heavy at import time.
"""
from __future__ import annotations

from typing import Optional

from keras_cnnkit.analysis.input_shape import (add_input_node, as_input_shape, fill_unknown,
                                               format_shape)
from keras_cnnkit.analysis.ir import Graph, Node, OpKind, call_name
from keras_cnnkit.analysis.keras_layers import (
    Expansion,
    LayerConfigError,
    convert_layer,
    is_known,
    opaque_node,
    producer_format,
)
from keras_cnnkit.analysis.keras_ops import KERAS_OP_PREFIX, CallArguments, Constant, TensorArg
from keras_cnnkit.analysis.sequence_layers import NAMED_INPUTS
from keras_cnnkit.analysis.shapes import ShapeError
from keras_cnnkit.errors import CnnkitError
from keras_cnnkit.io_guard import functional_graph

#: Top-level packages whose layer classes are trusted to mean what their names say.
_TRUSTED_PACKAGES = ("keras", "keras_cnnkit", "tf_keras")
#: Size given to input dimensions the model leaves unknown (the file frontend's too).
DEFAULT_SPATIAL = 224


class UnsupportedModelError(CnnkitError, ValueError):
    """The model has no graph the live frontend can walk (e.g. a subclassed model)."""


def _is_model(operation) -> bool:
    import keras
    return isinstance(operation, keras.Model)


class _Walker:
    """State of one walk: the graph built so far and who owns which weights."""

    def __init__(self, name: str, shapes: Optional[dict] = None,
                 default_size: Optional[str] = "input_shape"):
        self.graph = Graph(name=name, source="<keras model>", frontend="keras")
        self.first_call: dict = {}   # id(operation) -> name of its first call's node
        self.prefixes: set = set()    # name prefixes of nested-model calls so far
        self.shapes = shapes or {}    # id(KerasTensor) -> its shape at the analysed size
        # unknown dims at DEFAULT_SPATIAL: the option that chooses another size, else None
        self.default_size = default_size

    def shape_of(self, tensor) -> tuple:
        """The batch-excluded shape of a tensor at the analysed input size."""
        shape = self.shapes.get(id(tensor))
        return shape if shape is not None else tuple(tensor.shape[1:])

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
        arguments = None
        is_op = class_name.startswith(KERAS_OP_PREFIX)
        if is_op or class_name in NAMED_INPUTS:
            arguments, tensors = _arguments(knode)
            inputs = [tensor_names[id(t)] for t in tensors]
        else:
            tensors = knode.input_tensors
        shapes = [self.shape_of(t) for t in tensors]
        observed = self.shape_of(knode.outputs[0]) if knode.outputs else None
        try:
            expansion = convert_layer(name, class_name, config, inputs, shapes,
                                      data_format=producer_format(self.graph, inputs),
                                      observed_shape=observed, arguments=arguments)
        except (LayerConfigError, ShapeError) as exc:
            node = opaque_node(name, class_name, inputs, shapes, observed, reason=str(exc))
            expansion = Expansion([node], name)
        first = self.first_call.setdefault(id(operation), name)
        self.add_nodes(operation, expansion, name, first, observed)
        main = self.graph[expansion.output]
        if main.op == OpKind.OPAQUE and not is_op and all(
                s is not None and None not in s for s in shapes):
            inner = self.inner_costs(operation, knode)
            if inner is not None:
                main.attrs["inner_macs"], main.attrs["inner_flops"] = inner
        outputs = list(expansion.outputs)
        for t, out in enumerate(knode.outputs):
            if t >= len(outputs):
                outputs.append(self.extra_output(expansion, t, self.shape_of(out)))
            tensor_names[id(out)] = outputs[t]
        for t, out in enumerate(knode.outputs[1:len(expansion.outputs)], start=1):
            node = self.graph[outputs[t]]
            if node.output_shape is not None and node.output_shape != self.shape_of(out):
                node.attrs["inferred_shape"] = node.output_shape
                node.output_shape = self.shape_of(out)

    def inner_costs(self, operation, knode) -> Optional[tuple]:
        """``(macs, flops)`` of the known layers an opaque layer calls (see
        :mod:`.inner_costs`)."""
        import keras

        from keras_cnnkit.analysis.frontends.inner_costs import inner_costs
        tensors = {id(t): keras.KerasTensor((None, *self.shape_of(t)), dtype=t.dtype)
                   for t in knode.input_tensors}
        args, kwargs = knode.arguments.fill_in(tensors)
        return inner_costs(operation, args, kwargs)

    def extra_output(self, expansion: Expansion, index: int, shape: tuple) -> str:
        """A node for output ``index`` of a layer analysed as one output (opaque)."""
        main = self.graph[expansion.output]
        name = self.unique(f"{main.name}/output_{index}")
        self.graph.add(Node(
            name=name, op=OpKind.OPAQUE, inputs=list(main.inputs),
            input_shapes=list(main.input_shapes), output_shape=shape,
            attrs={"class_name": main.attrs.get("class_name", main.source_class),
                   "output_index": index,
                   "reason": f"output #{index} of a layer that cannot be analysed"},
            layer=main.layer, source_class=main.source_class))
        return name

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
        shape = self.shape_of(tensor)
        why = f"give {self.default_size} to choose another size" if self.default_size \
            else "the size asked for"
        return add_input_node(self.graph, name, tuple(tensor.shape[1:]), shape, why)


def _class_and_config(operation) -> tuple:
    """The class name the table should use, and the config, for a layer or op."""
    import keras
    cls = type(operation)
    class_name = cls.__name__
    if not isinstance(operation, keras.layers.Layer):
        try:
            config = operation.get_config()
        except (NotImplementedError, TypeError, ValueError):
            config = {}
        return KERAS_OP_PREFIX + class_name, config if isinstance(config, dict) else {}
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


def _arguments(knode) -> tuple:
    """``(CallArguments, tensors)`` of a ``keras.ops`` call: its arguments with every
    tensor replaced by a :class:`TensorArg` (its position in ``tensors``) and every
    constant array by a :class:`Constant`."""
    tensors: list = []

    def convert(value, depth=0):
        if depth > 64:
            return value
        if hasattr(value, "_keras_history"):  # a KerasTensor of the graph
            tensors.append(value)
            return TensorArg(len(tensors) - 1)
        if isinstance(value, (list, tuple)):
            return [convert(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {k: convert(v, depth + 1) for k, v in value.items()}
        shape = getattr(value, "shape", None)
        if shape is not None and not isinstance(value, (int, float)):
            return Constant(tuple(int(d) for d in shape)) if len(shape) else float(value)
        return value

    args = convert(list(knode.arguments.args))
    kwargs = convert(dict(knode.arguments.kwargs))
    return CallArguments(args, kwargs), tensors


def _analysed_shapes(functional, input_shape: Optional[tuple]) -> list:
    """The batch-excluded shape each input is analysed at: ``input_shape`` (a full shape
    or one value per unknown dim) for a single-input model, else the declared shape
    with every unknown dim :data:`DEFAULT_SPATIAL` (unless all of them are unknown)."""
    declared = [tuple(t.shape[1:]) for t in functional.inputs]
    if input_shape is None:
        return [tuple(DEFAULT_SPATIAL if d is None else d for d in shape)
                if any(d is not None for d in shape) else shape for shape in declared]
    if len(declared) != 1:
        raise ValueError("input_shape applies to single-input models only")
    requested, shape = as_input_shape(input_shape), declared[0]
    if not requested.default and len(requested) == len(shape) and any(
            d is not None and d != r for d, r in zip(shape, requested)):
        raise ValueError(f"{requested.describe()} conflicts with the model's input "
                         f"{format_shape(shape)}")
    filled = fill_unknown(shape, requested)
    if filled is None:
        raise ShapeError(f"{requested.describe()} does not fit the model's input "
                         f"{format_shape(shape)}")
    return [filled]


def _concrete_shapes(functional, inputs: list, out: dict) -> list:
    """Keras' shape of every tensor of ``functional`` called on ``inputs`` (KerasTensors
    of the analysed size), into ``out`` (id → batch-excluded shape); returns the outputs.

    Each operation's ``compute_output_spec`` runs on the new shapes (a nested model's
    graph is walked the same way).  One that fails leaves its outputs at Keras' recorded
    shapes.
    """
    import keras

    tensors = {id(x): y for x, y in zip(functional.inputs, inputs)}
    for depth in sorted(functional._nodes_by_depth, reverse=True):  # pylint: disable=protected-access
        for knode in functional._nodes_by_depth[depth]:  # pylint: disable=protected-access
            operation = knode.operation
            if operation is None or knode.is_input or any(
                    id(x) not in tensors for x in knode.input_tensors):
                continue
            args, kwargs = knode.arguments.fill_in(tensors)
            try:
                inner = functional_graph(operation) if _is_model(operation) else None
                if inner is not None:
                    results = _concrete_shapes(
                        inner, [tensors[id(x)] for x in knode.input_tensors], out)
                else:
                    results = keras.tree.flatten(operation.compute_output_spec(*args, **kwargs))
            except Exception:  # pylint: disable=broad-exception-caught
                # The model's own code (a custom layer) may fail at another size in any way.
                continue
            for x, y in zip(knode.outputs, results):
                if y is not None:
                    tensors[id(x)] = y
    out.update({k: tuple(v.shape[1:]) for k, v in tensors.items()})
    return [tensors.get(id(x)) for x in functional.outputs]


def graph_from_keras(model, input_shape: Optional[tuple] = None, *,
                     size_option: str = "input_shape") -> Graph:
    """The IR graph of a built Functional or Sequential Keras model.

    Args:
        model: a ``keras.Model`` (Functional or a built Sequential).
        input_shape: optional batch-excluded shape for a single-input model whose spatial
            size Keras leaves unknown (``(None, None, 3)``): the full shape or one value
            per unknown dim.  A configuration default
            (:class:`~keras_cnnkit.analysis.input_shape.InputShape`) fills only the
            unknown dims.  Without it, unknown dims are :data:`DEFAULT_SPATIAL` and the
            graph's notes say so (naming ``size_option`` as the way to choose another).
            Shapes at that size are Keras' own.

    Raises:
        UnsupportedModelError: a subclassed model or an unbuilt Sequential.
        ValueError: ``input_shape`` does not fit the model's input.
    """
    functional = functional_graph(model)
    if functional is None:
        raise UnsupportedModelError(
            f"model {getattr(model, 'name', model)!r} has no functional graph: build a "
            "Sequential model (give it an Input or call build()) first; subclassed models "
            "must be traced (see keras_cnnkit.lint on ONNX exports)")
    analysed = _analysed_shapes(functional, input_shape)
    shapes: dict = {}
    if analysed != [tuple(t.shape[1:]) for t in functional.inputs]:
        import keras
        _concrete_shapes(functional, [keras.KerasTensor((None, *shape), dtype=t.dtype)
                                      for t, shape in zip(functional.inputs, analysed)],
                         shapes)
    walker = _Walker(model.name, shapes,
                     default_size=size_option if input_shape is None else None)
    names = {}
    for tensor in functional.inputs:
        names[id(tensor)] = walker.add_input(tensor)
    walker.graph.inputs = [names[id(t)] for t in functional.inputs]
    walker.walk(functional, names, "")
    walker.graph.outputs = [names[id(t)] for t in functional.outputs]
    return walker.graph
