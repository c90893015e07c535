"""A normalised Keras model config (:mod:`.keras_config`) → the linter's graph IR.

Mirrors the live frontend (:mod:`keras_cnnkit.analysis.frontends.keras_live`) so that a
model read from a file and the same model in memory give the same IR:

* nested models are flattened, their ops named ``"outer/inner"``;
* a shared layer (or nested model) gives one node per call; later calls are named
  ``"<name>@<k>"`` and carry ``attrs["shares_weights_with"]``;
* ``keras_cnnkit`` blocks are expanded through their specs and every other layer goes
  through the shared table :mod:`keras_cnnkit.analysis.keras_layers`;
* ``keras.ops`` calls recorded in the graph map as the live frontend maps them;
* a class the table does not know, or one from a module outside Keras and keras_cnnkit,
  becomes an :data:`~keras_cnnkit.analysis.ir.OpKind.OPAQUE` node.  Its output shape is
  the one Keras recorded in the file, where it recorded one for the same input shapes.

Calls are ordered topologically (ties in config order), so a config listing layers out
of order still works, and a cycle or a reference to a missing layer is an error, found
without recursion however long the model is.  ``Node.params`` is the weight count the
file stores for the layer (``None`` for a bare JSON config).
"""
from __future__ import annotations

import heapq
from typing import Optional

from keras_cnnkit.analysis.frontends.keras_config import LayerSpec, ModelSpec
from keras_cnnkit.analysis.frontends.keras_live import _OPS_AS_LAYERS as OPS_AS_LAYERS
from keras_cnnkit.analysis.input_shape import as_input_shape, fill_unknown
from keras_cnnkit.analysis.ir import Graph, OpKind, call_name
from keras_cnnkit.analysis.keras_layers import (
    LayerConfigError,
    convert_layer,
    input_shape_of,
    is_block,
    is_known,
    opaque_node,
)
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.shapes import ShapeError

#: Spatial size given to input dimensions the model leaves unknown (``None``).
DEFAULT_SPATIAL = 224
#: Top-level packages whose layer classes are taken to mean what their names say.
TRUSTED_PACKAGES = ("keras", "keras_cnnkit", "tf_keras")
#: Modules of ``keras.ops`` operations recorded as graph nodes (``keras.src.ops.numpy``).
KERAS_OPS_MODULES = ("keras.src.ops.", "keras.ops")
#: ``registered_name`` prefixes of trusted classes.
_TRUSTED_REGISTRIES = ("keras_cnnkit>", "keras>")


class GraphBuildError(ValueError):
    """The config's graph is inconsistent (missing layer, cycle, bad shapes...)."""


def untrusted_origin(layer: LayerSpec) -> Optional[str]:
    """Where an untrusted class claims to come from (``"os.system"``), else ``None``.

    A class is trusted when the config names no module (Keras 2 files) or a module of a
    :data:`TRUSTED_PACKAGES` package, and no custom registration other than Keras' or
    keras_cnnkit's.  Nothing is imported to decide this.
    """
    module = layer.module
    if module is not None and module.split(".")[0] not in TRUSTED_PACKAGES:
        return f"{module}.{layer.class_name}"
    registered = layer.registered_name
    if registered is not None and registered != layer.class_name and not (
            registered.startswith(_TRUSTED_REGISTRIES)
            and registered.split(">")[-1] == layer.class_name):
        return registered.replace(">", ".")
    return None


def _batchless(shape) -> Optional[tuple]:
    if not isinstance(shape, (list, tuple)) or not shape:
        return None
    dims = shape[1:]
    if not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
               for d in dims):
        return None
    return tuple(dims)


def resolve_input_shape(name: str, declared: tuple, requested: Optional[tuple]) -> tuple:
    """The shape an input gets: ``declared`` with its unknown dims filled.

    With ``requested`` (an :class:`~keras_cnnkit.analysis.input_shape.InputShape`, or a
    tuple counted as ``--input-shape``): either a full shape or exactly one value per
    unknown dim.  A flag's known dims must agree with the declared ones; a configuration
    value fills the unknown dims only and never conflicts.  Without: each unknown dim
    becomes :data:`DEFAULT_SPATIAL` unless every dim is unknown (then the channels are
    unknown too, and the user must say).
    """
    if requested is None:
        if declared and all(d is None for d in declared):
            raise GraphBuildError(f"input {name!r} has fully unknown shape "
                                  f"{_fmt(declared)}; pass --input-shape")
        return tuple(DEFAULT_SPATIAL if d is None else d for d in declared)
    requested = as_input_shape(requested)
    if not requested.default and len(requested) == len(declared):
        for i, (have, want) in enumerate(zip(declared, requested)):
            if have is not None and have != want:
                raise GraphBuildError(
                    f"{requested.describe()} conflicts with input {name!r} of shape "
                    f"{_fmt(declared)} (dimension {i + 1})")
    shape = fill_unknown(declared, requested)
    if shape is None:
        unknown = sum(d is None for d in declared)
        raise GraphBuildError(f"{requested.describe()} does not fit input {name!r} of "
                              f"shape {_fmt(declared)}: give {len(declared)} dims, or "
                              f"{unknown} for its unknown ones")
    return shape


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _weight_count(shapes: list) -> int:
    return sum(prod(shape) for shape in shapes)


class _Builder:
    """State of one build: the graph, weight shapes, and who owns which weights."""

    def __init__(self, name: str, source: str, weights: Optional[dict],
                 input_shape: Optional[tuple]):
        self.graph = Graph(name=name, source=source, frontend="file")
        self.weights = weights
        self.input_shape = input_shape
        self.first_call: dict = {}  # (id(model spec), layer name) -> first call's node
        self.prefixes: set = set()  # name prefixes of nested-model calls so far

    def unique(self, name: str, taken=None) -> str:
        """:func:`~keras_cnnkit.analysis.ir.call_name` among ``taken`` (default: the nodes)."""
        return call_name(name, self.graph.nodes if taken is None else taken)

    def observed_params(self, path: str) -> Optional[int]:
        """Weights the file stores for layer ``path``; ``None`` if it stores no weights."""
        if self.weights is None:
            return None
        return _weight_count(self.weights.get(path, ()))

    def walk(self, spec: ModelSpec, bound: Optional[list], prefix: str, wprefix: str) -> list:
        """Add the nodes of ``spec``; returns the node names of its outputs.

        ``bound`` gives the node names feeding a nested model's inputs (``None`` at the top
        level, where its ``InputLayer`` become INPUT nodes).  ``prefix`` prefixes node
        names, ``wprefix`` the weight paths.
        """
        order, index = _call_order(spec)
        env: dict = {}
        if bound is not None:
            if len(bound) != len(spec.inputs):
                raise GraphBuildError(f"nested model {spec.name!r} has {len(spec.inputs)} "
                                      f"inputs but is called with {len(bound)}")
            for ref, node_name in zip(spec.inputs, bound):
                if spec.layer(ref[0]).class_name != "InputLayer":
                    raise GraphBuildError(f"model {spec.name!r}: input {ref[0]!r} is not an "
                                          "InputLayer")
                env[(ref[0], 0, 0)] = node_name
        recorded = _recorded_output_shapes(spec)
        for layer_idx, call_idx in order:
            layer = spec.layers[layer_idx]
            if layer.class_name == "InputLayer":
                if (layer.name, 0, 0) not in env:
                    env[(layer.name, 0, 0)] = self.add_input(layer, prefix)
                continue
            call = layer.calls[call_idx]
            inputs = [_lookup(env, ref, index, spec, layer) for ref in call.inputs]
            if layer.model is not None and untrusted_origin(layer) is None:
                call_prefix = self.unique(prefix + layer.name, self.prefixes)
                self.prefixes.add(call_prefix)
                outs = self.walk(layer.model, inputs, call_prefix + "/",
                                 wprefix + layer.name + "/")
                for t, out in enumerate(outs):
                    env[(layer.name, call_idx, t)] = out
            else:
                env[(layer.name, call_idx, 0)] = self.layer_call(
                    spec, layer, call_idx, inputs, prefix, wprefix, recorded)
        if bound is None:
            self.graph.inputs = [env[(r[0], 0, 0)] for r in spec.inputs
                                 if (r[0], 0, 0) in env]
        return [_lookup(env, ref, index, spec, None) for ref in spec.outputs]

    def add_input(self, layer: LayerSpec, prefix: str) -> str:
        """An INPUT node for a top-level ``InputLayer``."""
        try:
            declared = input_shape_of(layer.config)
        except LayerConfigError as exc:
            raise GraphBuildError(f"input {layer.name!r}: {exc}") from None
        if not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
                   for d in declared):
            raise GraphBuildError(f"input {layer.name!r}: bad shape {list(declared)!r}")
        shape = resolve_input_shape(layer.name, declared, self.input_shape)
        name = self.unique(prefix + layer.name)
        expansion = convert_layer(name, "InputLayer", {"batch_shape": (None, *shape)}, [], [])
        node = expansion.nodes[0]
        if shape != tuple(declared):
            node.attrs["declared_shape"] = tuple(declared)
        self.graph.add(node)
        return name

    def layer_call(self, spec: ModelSpec, layer: LayerSpec, call_idx: int, inputs: list,
                   prefix: str, wprefix: str, recorded: dict) -> str:
        """Add the node(s) of one call of a layer; returns its output node's name."""
        name = self.unique(prefix + layer.name)
        shapes = [self.graph[src].output_shape for src in inputs]
        observed = _observed_output(layer, call_idx, shapes, recorded)
        origin = untrusted_origin(layer)
        class_name, config = layer.class_name, layer.config
        is_op = origin is None and _is_keras_op(layer, spec)
        if is_op:
            # A keras.ops call in a functional graph; the live frontend maps the same ones.
            class_name, config = OPS_AS_LAYERS.get(class_name, (f"keras.ops.{class_name}", {}))
        if origin is not None:
            nodes = [opaque_node(name, origin, inputs, shapes, observed,
                                 reason="class from outside keras and keras_cnnkit; its "
                                        "code is not loaded")]
            output = name
        else:
            producer = self.graph.nodes.get(inputs[0]) if inputs else None
            fmt = producer.attrs.get("data_format") if producer is not None else None
            try:
                expansion = convert_layer(name, class_name, config, inputs,
                                          shapes, data_format=fmt, observed_shape=observed)
            except (LayerConfigError, ShapeError) as exc:
                raise GraphBuildError(str(exc)) from None
            nodes, output = expansion.nodes, expansion.output
        first = self.first_call.setdefault((id(spec), layer.name), name)
        path = wprefix + layer.name
        block = origin is None and is_block(layer.class_name)
        for node in nodes:
            if first != name:
                node.attrs["shares_weights_with"] = first + node.name[len(name):]
            elif node.name == output and not block and not is_op:
                node.params = self.observed_params(path)
            elif block and node.name.startswith(name + "/"):
                node.params = self.observed_params(path + node.name[len(name):])
            self.graph.add(node)
        return output


def _is_keras_op(layer: LayerSpec, spec: ModelSpec) -> bool:
    """Whether an entry is a ``keras.ops`` call rather than a layer.

    ``.keras`` configs say so by module (``keras.src.ops.numpy``); Keras 3's legacy
    ``.h5`` configs drop the module, but an op's config holds nothing but its name
    (a layer's always has ``trainable`` and ``dtype``).
    """
    if layer.module is not None:
        return layer.module.startswith(KERAS_OPS_MODULES)
    return (not spec.keras2 and spec.class_name != "Sequential" and bool(layer.calls)
            and set(layer.config) <= {"name"}
            and (layer.class_name in OPS_AS_LAYERS or not is_known(layer.class_name)))


def _call_order(spec: ModelSpec) -> tuple:
    """Calls ``(layer index, call index)`` in topological order, ties in config order.

    Returns ``(order, index)`` with ``index`` mapping layer names to positions.
    Raises :class:`GraphBuildError` on a reference to a missing layer or call, or a cycle.
    """
    index = {layer.name: i for i, layer in enumerate(spec.layers)}
    waiting: dict = {}   # call -> number of producers not yet placed
    consumers: dict = {}  # producer call -> calls reading it
    ready: list = []
    total = 0
    for i, layer in enumerate(spec.layers):
        if layer.class_name == "InputLayer":
            ready.append((i, 0))
            total += 1
            continue
        for c, call in enumerate(layer.calls):
            total += 1
            deps = set()
            for ref in call.inputs:
                deps.add(_producer_call(ref, index, spec, layer))
            waiting[(i, c)] = len(deps)
            for dep in deps:
                consumers.setdefault(dep, []).append((i, c))
            if not deps:
                ready.append((i, c))
    heapq.heapify(ready)
    order = []
    while ready:
        call = heapq.heappop(ready)
        order.append(call)
        for consumer in consumers.get(call, ()):
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(ready, consumer)
    if len(order) != total:
        stuck = sorted({spec.layers[i].name for (i, _), n in waiting.items() if n > 0})
        shown = ", ".join(repr(s) for s in stuck[:5]) + (", ..." if len(stuck) > 5 else "")
        raise GraphBuildError(f"model {spec.name!r}: inbound_nodes form a cycle through "
                              f"layers {shown}")
    return order, index


def _producer_call(ref: tuple, index: dict, spec: ModelSpec, reader: Optional[LayerSpec]
                   ) -> tuple:
    """The ``(layer index, call index)`` producing tensor ``ref``; checks it exists."""
    who = f"layer {reader.name!r}" if reader is not None else f"model {spec.name!r}"
    layer_name, call_idx, _ = ref
    if layer_name not in index:
        raise GraphBuildError(f"{who} reads unknown layer {layer_name!r}")
    producer = spec.layers[index[layer_name]]
    calls = 1 if producer.class_name == "InputLayer" else len(producer.calls)
    if call_idx >= calls:
        raise GraphBuildError(f"{who} reads call #{call_idx} of layer {layer_name!r}, which "
                              f"has {calls} call{'s' if calls != 1 else ''}")
    return (index[layer_name], call_idx)


def _lookup(env: dict, ref: tuple, index: dict, spec: ModelSpec,
            reader: Optional[LayerSpec]) -> str:
    """The node name holding tensor ``ref``."""
    _producer_call(ref, index, spec, reader)
    if ref in env:
        return env[ref]
    first = env.get((ref[0], ref[1], 0))
    if first is None:
        raise GraphBuildError(f"model {spec.name!r}: tensor {list(ref)} is never produced")
    if ref[2] > 0 and spec.layers[index[ref[0]]].model is None:
        return first  # an opaque multi-output layer: one node stands for all its outputs
    raise GraphBuildError(f"model {spec.name!r}: layer {ref[0]!r} has no output #{ref[2]}")


def _recorded_output_shapes(spec: ModelSpec) -> dict:
    """Output shapes Keras recorded where tensors are consumed: ref → batch-less shape."""
    recorded: dict = {}
    for layer in spec.layers:
        single = len(layer.calls) == 1
        for call in layer.calls:
            for i, ref in enumerate(call.inputs):
                shape = call.shapes[i] if i < len(call.shapes) else None
                if shape is None and single and len(call.inputs) == 1:
                    shape = layer.build_input_shape
                shape = _batchless(shape)
                if shape is not None:
                    recorded.setdefault(ref, shape)
    return recorded


def _observed_output(layer: LayerSpec, call_idx: int, shapes: list, recorded: dict
                     ) -> Optional[tuple]:
    """The output shape Keras recorded for this call, if recorded for the same inputs.

    Keras 2 files record no shapes; a Lambda declaring a fixed ``output_shape``
    (batch excluded) gives its own.
    """
    out = recorded.get((layer.name, call_idx, 0))
    if out is None:
        declared = layer.config.get("output_shape") if layer.class_name == "Lambda" else None
        return _batchless([None, *declared]) if isinstance(declared, list) else None
    call = layer.calls[call_idx]
    recorded_in = [_batchless(s) for s in call.shapes]
    if len(layer.calls) == 1 and len(shapes) == 1 and recorded_in in ([], [None]):
        recorded_in = [_batchless(layer.build_input_shape)]
    if len(recorded_in) != len(shapes) or any(
            r is None or s is None or tuple(r) != tuple(s) for r, s in zip(recorded_in, shapes)):
        return None
    return out


def build_graph(spec: ModelSpec, source: str = "", weights: Optional[dict] = None,
                input_shape: Optional[tuple] = None) -> Graph:
    """The IR graph of a normalised model config.

    Args:
        spec: the model, from :func:`.keras_config.normalise_model`.
        source: the file it came from (recorded in :attr:`Graph.source`).
        weights: layer path → weight shapes from the file, or ``None`` if it has none.
        input_shape: dims for inputs of unknown size (see :func:`resolve_input_shape`).

    Raises:
        GraphBuildError: the config's graph or shapes are inconsistent.
    """
    builder = _Builder(spec.name, source, weights, input_shape)
    outputs = builder.walk(spec, None, "", "")
    builder.graph.outputs = outputs
    if not builder.graph.inputs:
        raise GraphBuildError(f"model {spec.name!r} has no input layer")
    _check_dense_inputs(builder.graph, weights)
    return builder.graph


def _check_dense_inputs(graph: Graph, weights: Optional[dict]) -> None:
    """A Dense kernel in the file must fit the inferred input width.

    The one place where a wrong ``--input-shape`` (or default) changes parameter counts
    is Flatten → Dense; the stored kernel says which width is right.
    """
    if not weights:
        return
    for node in graph:
        if node.op != OpKind.DENSE or node.params is None or "shares_weights_with" in node.attrs:
            continue
        in_features, units = node.attrs.get("in_features"), node.attrs.get("units")
        expected = in_features * units + (units if node.attrs.get("use_bias") else 0)
        if node.params != expected and units:
            stored = node.params - (units if node.attrs.get("use_bias") else 0)
            width = stored // units if stored > 0 and stored % units == 0 else None
            hint = "" if width is None else f" (the stored kernel has {width:,} inputs)"
            raise GraphBuildError(
                f"layer {node.layer!r}: the inferred input width {in_features:,} does not "
                f"match the weights in the file{hint}; pass the model's --input-shape")
