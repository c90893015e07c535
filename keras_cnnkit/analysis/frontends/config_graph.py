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
import re
from typing import Optional

from keras_cnnkit.analysis.frontends.keras_config import MAX_NESTING, LayerSpec, ModelSpec
from keras_cnnkit.analysis.input_shape import (add_input_node, as_input_shape, fill_unknown,
                                               format_shape)
from keras_cnnkit.analysis.ir import Graph, Node, OpKind, call_name
from keras_cnnkit.analysis.keras_ops import KERAS_OP_PREFIX, is_keras_op_class
from keras_cnnkit.analysis.keras_layers import (
    LayerConfigError,
    convert_layer,
    input_shape_of,
    is_block,
    is_known,
    opaque_node,
    producer_format,
)
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.shapes import ShapeError

#: Spatial size given to input dimensions the model leaves unknown (``None``).
DEFAULT_SPATIAL = 224
#: Top-level packages whose layer classes are taken to mean what their names say.
TRUSTED_PACKAGES = ("keras", "keras_cnnkit", "tf_keras")
#: Modules of ``keras.ops`` operations recorded as graph nodes (``keras.src.ops.numpy``).
KERAS_OPS_MODULES = ("keras.src.ops.", "keras.ops")
#: keras.applications classes Keras registers under its default package ``"Custom"``.
KERAS_DEFAULT_PACKAGE_CLASSES = frozenset({"CustomScaleLayer"})
#: ``registered_name`` prefixes of trusted classes.
_TRUSTED_REGISTRIES = ("keras_cnnkit>", "keras>")


#: Convolution classes whose stored kernel (first weight) gives their input's channels:
#: axis -2, or -1 for a transposed convolution.
_CONV_CLASS = re.compile(r"(Conv|Convolution|DepthwiseConv|SeparableConv|"
                         r"SeparableConvolution)[123]D(Transpose)?")


class GraphBuildError(ValueError):
    """The config's graph is inconsistent (missing layer, cycle, bad shapes...)."""


def untrusted_origin(layer: LayerSpec) -> Optional[str]:
    """Where an untrusted class claims to come from (``"os.system"``), else ``None``.

    A class is trusted when the config names no module (Keras 2 files) or a module of a
    :data:`TRUSTED_PACKAGES` package, and no custom registration other than Keras' or
    keras_cnnkit's, or the default package's (``"Custom>CustomScaleLayer"``) for a class
    a trusted module defines, or one of :data:`KERAS_DEFAULT_PACKAGE_CLASSES` where no
    module is recorded (tf_keras' InceptionResNetV2 ``.h5``).  Nothing is imported to
    decide this.
    """
    module = layer.module
    if module is not None and module.split(".")[0] not in TRUSTED_PACKAGES:
        return f"{module}.{layer.class_name}"
    registered = layer.registered_name
    if registered is None or registered == layer.class_name:
        return None
    package, _, name = registered.rpartition(">")
    if name == layer.class_name and (f"{package}>".startswith(_TRUSTED_REGISTRIES) or (
            package == "Custom" and (module is not None
                                     or name in KERAS_DEFAULT_PACKAGE_CLASSES))):
        return None
    return registered.replace(">", ".")


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
                                  f"{format_shape(declared)}; pass --input-shape")
        return tuple(DEFAULT_SPATIAL if d is None else d for d in declared)
    requested = as_input_shape(requested)
    if not requested.default and len(requested) == len(declared):
        for i, (have, want) in enumerate(zip(declared, requested)):
            if have is not None and have != want:
                raise GraphBuildError(
                    f"{requested.describe()} conflicts with input {name!r} of shape "
                    f"{format_shape(declared)} (dimension {i + 1})")
    shape = fill_unknown(declared, requested)
    if shape is None:
        unknown = sum(d is None for d in declared)
        raise GraphBuildError(f"{requested.describe()} does not fit input {name!r} of "
                              f"shape {format_shape(declared)}: give {len(declared)} dims, or "
                              f"{unknown} for its unknown ones")
    return shape


def _weight_count(shapes: list) -> int:
    return sum(prod(shape) for shape in shapes)


class _Builder:
    """State of one build: the graph, weight shapes, and who owns which weights."""

    def __init__(self, root: ModelSpec, source: str, weights: Optional[dict],
                 input_shape: Optional[tuple]):
        self.root = root
        self.graph = Graph(name=root.name, source=source, frontend="file")
        self.weights = weights
        self.input_shape = input_shape
        self.first_call: dict = {}  # (id(model spec), layer name) -> first call's node
        self.prefixes: set = set()  # name prefixes of nested-model calls so far
        self.owners: Optional[dict] = None  # weight path -> the layer path owning it

    def unique(self, name: str, taken=None) -> str:
        """:func:`~keras_cnnkit.analysis.ir.call_name` among ``taken`` (default: the nodes)."""
        return call_name(name, self.graph.nodes if taken is None else taken)

    def observed_params(self, path: str) -> Optional[int]:
        """Weights the file stores for layer ``path``; ``None`` if it stores no weights."""
        if self.weights is None:
            return None
        return _weight_count(self.weights.get(path, ()))

    def shape_from_weights(self, layer: LayerSpec, path: str) -> Optional[tuple]:
        """The input shape a convolution's stored kernel implies, when its producer's
        output shape is unknown: its rank and channels (``(None, None, C)``), the
        spatial sizes unknown.  ``None`` for other layers or without weights."""
        match = _CONV_CLASS.fullmatch(layer.class_name)
        stored = self.weights.get(path) if self.weights else None
        if match is None or not stored or len(stored[0]) < 3 or \
                untrusted_origin(layer) is not None:
            return None
        kernel = stored[0]
        channels = kernel[-1 if match.group(2) else -2]
        spatial = (None,) * (len(kernel) - 2)
        if layer.config.get("data_format") == "channels_first":
            return (channels, *spatial)
        return (*spatial, channels)

    def nested_params(self, spec: ModelSpec, path: str) -> Optional[int]:
        """Weights the file stores for layer ``path`` and every sub-layer it holds.

        A custom layer keeps its sub-layers' weights under its own path (``stem/conv``,
        ``stem/stem_conv_kxk_0/conv2d_1``); each stored weight belongs to the deepest
        layer of the config whose path starts it, so a top-level layer that is itself
        called ``stem/bn`` (Keras 2 allows slashes) keeps its own.
        """
        if self.weights is None:
            return None
        if self.owners is None:
            paths = set(_layer_paths(spec, ""))
            self.owners = {key: _owner(key, paths) for key in self.weights}
        return sum(_weight_count(shapes) for key, shapes in self.weights.items()
                   if self.owners.get(key) == path)

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
            inputs = [self.lookup(env, ref, (index, spec, layer), recorded)
                      for ref in call.inputs]
            if layer.model is not None and untrusted_origin(layer) is None:
                call_prefix = self.unique(prefix + layer.name, self.prefixes)
                self.prefixes.add(call_prefix)
                outs = self.walk(layer.model, inputs, call_prefix + "/",
                                 wprefix + layer.name + "/")
                for t, out in enumerate(outs):
                    env[(layer.name, call_idx, t)] = out
            else:
                outs = self.layer_call(spec, layer, call_idx, inputs, prefix, wprefix, recorded)
                for t, out in enumerate(outs):
                    env[(layer.name, call_idx, t)] = out
        if bound is None:
            self.graph.inputs = [env[(r[0], 0, 0)] for r in spec.inputs
                                 if (r[0], 0, 0) in env]
        return [self.lookup(env, ref, (index, spec, None), recorded) for ref in spec.outputs]

    def lookup(self, env: dict, ref: tuple, where: tuple, recorded: dict) -> str:
        """The node name holding tensor ``ref`` (``where``: the index, model and reader).

        Output ``t > 0`` of an opaque layer gets a node of its own (opaque, with the
        shape Keras recorded for that output, else unknown): never output 0's shape.
        """
        index, spec, reader = where
        _producer_call(ref, index, spec, reader)
        if ref in env:
            return env[ref]
        first = env.get((ref[0], ref[1], 0))
        if first is None:
            raise GraphBuildError(f"model {spec.name!r}: tensor {list(ref)} is never produced")
        node = self.graph[first]
        if ref[2] == 0 or node.op != OpKind.OPAQUE or spec.layers[index[ref[0]]].model:
            raise GraphBuildError(f"model {spec.name!r}: layer {ref[0]!r} has no output "
                                  f"#{ref[2]}")
        name = self.unique(f"{first}/output_{ref[2]}")
        self.graph.add(Node(
            name=name, op=OpKind.OPAQUE, inputs=list(node.inputs),
            input_shapes=list(node.input_shapes), output_shape=recorded.get(ref),
            attrs={"class_name": node.attrs.get("class_name", ""), "output_index": ref[2],
                   "reason": f"output #{ref[2]} of a layer that cannot be analysed"},
            layer=node.layer, source_class=node.source_class))
        env[ref] = name
        return name

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
        why = "give --input-shape to choose another size" if self.input_shape is None \
            else "the size asked for"
        return add_input_node(self.graph, self.unique(prefix + layer.name), declared, shape,
                              why)

    def layer_call(self, spec: ModelSpec, layer: LayerSpec, call_idx: int, inputs: list,
                   prefix: str, wprefix: str, recorded: dict) -> list:
        """Add the node(s) of one call of a layer; returns its output nodes' names."""
        name = self.unique(prefix + layer.name)
        shapes = [self.graph[src].output_shape for src in inputs]
        producer = self.graph[inputs[0]] if len(inputs) == 1 else None
        if producer is not None and producer.output_shape is None \
                and producer.op == OpKind.OPAQUE:
            # An opaque producer's output, recovered from this consumer's stored kernel.
            producer.output_shape = self.shape_from_weights(layer, wprefix + layer.name)
            shapes = [producer.output_shape]
        observed = _observed_output(layer, call_idx, shapes, recorded)
        origin = untrusted_origin(layer)
        class_name, config = layer.class_name, layer.config
        is_op = origin is None and _is_keras_op(layer, spec)
        if is_op:
            # A keras.ops call in a functional graph; the live frontend maps the same ones.
            class_name = KERAS_OP_PREFIX + class_name
        if origin is not None:
            nodes = [opaque_node(name, origin, inputs, shapes, observed,
                                 reason="class from outside keras and keras_cnnkit; its "
                                        "code is not loaded")]
            output, outputs = name, [name]
        else:
            try:
                expansion = convert_layer(
                    name, class_name, config, inputs, shapes, observed_shape=observed,
                    data_format=producer_format(self.graph, inputs),
                    arguments=layer.calls[call_idx].arguments)
            except (LayerConfigError, ShapeError) as exc:
                raise GraphBuildError(str(exc)) from None
            nodes, output, outputs = expansion.nodes, expansion.output, expansion.outputs
        first = self.first_call.setdefault((id(spec), layer.name), name)
        path = wprefix + layer.name
        block = origin is None and is_block(layer.class_name)
        for node in nodes:
            if first != name:
                node.attrs["shares_weights_with"] = first + node.name[len(name):]
            elif node.name == output and not block and not is_op:
                node.params = self.nested_params(self.root, path)
            elif block and node.name.startswith(name + "/"):
                node.params = self.observed_params(path + node.name[len(name):])
            self.graph.add(node)
        return outputs


def _is_keras_op(layer: LayerSpec, spec: ModelSpec) -> bool:
    """Whether an entry is a ``keras.ops`` call rather than a layer.

    ``.keras`` configs say so by module (``keras.src.ops.numpy``); Keras 3's legacy
    ``.h5`` configs drop the module, but an op's config holds its name and arguments,
    never the ``trainable`` and ``dtype`` every layer's has.
    """
    if layer.module is not None:
        return layer.module.startswith(KERAS_OPS_MODULES)
    return (not spec.keras2 and spec.class_name != "Sequential" and bool(layer.calls)
            and "trainable" not in layer.config and "dtype" not in layer.config
            and (is_keras_op_class(layer.class_name) or not is_known(layer.class_name)))


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


def _layer_paths(spec: ModelSpec, prefix: str, depth: int = 0):
    """The weight path of every layer of ``spec`` and of the models nested in it."""
    for layer in spec.layers:
        yield prefix + layer.name
        if layer.model is not None and depth < MAX_NESTING:
            yield from _layer_paths(layer.model, prefix + layer.name + "/", depth + 1)


def _owner(key: str, paths: set) -> Optional[str]:
    """The deepest layer path that is ``key`` or a path prefix of it."""
    parts = key.split("/")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end])
        if candidate in paths:
            return candidate
    return None


def _is_shape(value) -> bool:
    """Whether ``value`` is one shape (a list of dims), not a list of shapes."""
    return isinstance(value, list) and all(not isinstance(d, list) for d in value)


def _recorded_input_shapes(layer: LayerSpec, call_idx: int) -> list:
    """The input shapes Keras recorded for one call (batch-less; ``None`` where not).

    Keras 3 records each tensor's shape in the call; Keras 2 only the shape the layer was
    built for (``build_config``): of its first call, one shape or one per input.
    """
    call = layer.calls[call_idx]
    shapes = [_batchless(s) for s in call.shapes]
    build = layer.build_input_shape
    if call_idx == 0 and build is not None and not any(s is not None for s in shapes):
        if _is_shape(build):
            shapes[:1] = [_batchless(build)]
        elif len(build) == len(call.inputs) and all(_is_shape(b) for b in build):
            shapes = [_batchless(b) for b in build]
    return shapes + [None] * (len(call.inputs) - len(shapes))


def _recorded_output_shapes(spec: ModelSpec) -> dict:
    """Output shapes Keras recorded where tensors are consumed: ref → batch-less shape."""
    recorded: dict = {}
    for layer in spec.layers:
        for call_idx, call in enumerate(layer.calls):
            for ref, shape in zip(call.inputs, _recorded_input_shapes(layer, call_idx)):
                if shape is not None:
                    recorded.setdefault(ref, shape)
    return recorded


def _compatible(recorded: Optional[tuple], actual: Optional[tuple]) -> bool:
    """Whether a recorded shape can be the actual one (``None`` dims match anything)."""
    if recorded is None or actual is None:
        return recorded is None
    return len(recorded) == len(actual) and all(
        r is None or a is None or r == a for r, a in zip(recorded, actual))


def _observed_output(layer: LayerSpec, call_idx: int, shapes: list, recorded: dict
                     ) -> Optional[tuple]:
    """The output shape Keras recorded for this call (where its consumers read it),
    if the inputs it recorded for the call fit the actual ones.

    Recorded ``None`` dims match any size and stay ``None``: a model saved with inputs of
    unknown size records unknown sizes, and the output of a layer nobody can analyse
    keeps the sizes it recorded (its channels).  A Lambda declaring a fixed
    ``output_shape`` (batch excluded) gives its own.
    """
    out = recorded.get((layer.name, call_idx, 0))
    if out is None:
        declared = layer.config.get("output_shape") if layer.class_name == "Lambda" else None
        return _batchless([None, *declared]) if isinstance(declared, list) else None
    recorded_in = _recorded_input_shapes(layer, call_idx)
    if len(recorded_in) != len(shapes) or not all(
            _compatible(r, s) for r, s in zip(recorded_in, shapes)):
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
    builder = _Builder(spec, source, weights, input_shape)
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
