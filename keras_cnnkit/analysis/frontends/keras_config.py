"""Normalise a Keras model config, as written by Keras 3 or by Keras 2 / tf.keras.

The two generations serialise the same architecture differently:

=====================  ===========================================  =============================
                       Keras 2 / tf.keras                            Keras 3
=====================  ===========================================  =============================
call of a layer        ``[["conv", 0, 0, {}]]`` (one list per call,  ``{"args": [{"class_name":
                       one entry per input tensor)                   "__keras_tensor__", "config":
                                                                     {"keras_history": [...]}}],
                                                                     "kwargs": {}}``
input shape            ``batch_input_shape``                         ``batch_shape``
model inputs/outputs   ``[["img", 0, 0]]``                           ``["img", 0, 0]`` or a list
nested model nodes     node 0 is the model's own input; calls        calls count from 0
                       count from 1
Sequential             first layer may carry ``batch_input_shape``   an ``InputLayer`` entry
=====================  ===========================================  =============================

:func:`normalise_model` turns either into :class:`ModelSpec`: every model a graph of
:class:`LayerSpec` calls on ``(layer, call, tensor)`` references, layer configs in
Keras 3 form.  A Sequential becomes the equivalent chain.  The result is plain data: no
class named in the config is imported or looked up here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from keras_cnnkit.analysis.keras_ops import CallArguments, Constant, TensorArg

#: Class names that denote a model nested inside a model.
MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
#: Deepest nesting of models inside models accepted.
MAX_NESTING = 64

TensorRef = tuple  # (layer name, call index, tensor index)


class ConfigFormatError(ValueError):
    """The config is JSON but not a well-formed Keras model config."""


@dataclasses.dataclass
class LayerCall:
    """One call of a layer in a model's graph.

    Attributes:
        inputs: the tensors it reads, flattened in argument order, as
            ``(layer, call, tensor)`` references into the same model.
        shapes: the shape Keras recorded for each of those tensors when it saved the
            model (batch included; Keras 3 only), or ``None`` per tensor where absent.
        arguments: the call's arguments, each tensor replaced by a
            :class:`~keras_cnnkit.analysis.keras_ops.TensorArg` (its position in
            ``inputs``): what says what an operation (``keras.ops`` call, Keras 2
            ``TFOpLambda``) computes.
    """

    inputs: list
    shapes: list = dataclasses.field(default_factory=list)
    arguments: CallArguments = dataclasses.field(default_factory=CallArguments)


@dataclasses.dataclass
class LayerSpec:
    """One layer of a model config.

    Attributes:
        name: the layer's name, unique within its model.
        class_name: the class the config names (``"Conv2D"``, ``"Lambda"``).
        module: the config's ``module`` field (Keras 3 and late tf.keras), else ``None``.
        registered_name: the ``registered_name`` field (``"keras_cnnkit>ConvBNAct"``).
        config: the layer's own config, in Keras 3 form.
        calls: the layer's calls, in the order the config lists them.
        model: for a nested model, its normalised spec; else ``None``.
        build_input_shape: the input shape of ``build_config`` (batch included), if any.
    """

    name: str
    class_name: str
    module: Optional[str]
    registered_name: Optional[str]
    config: dict
    calls: list = dataclasses.field(default_factory=list)
    model: Optional["ModelSpec"] = None
    build_input_shape: Optional[list] = None


@dataclasses.dataclass
class ModelSpec:
    """A model as layers and calls (a Sequential as the equivalent chain).

    Attributes:
        name: the model's name.
        class_name: ``"Functional"`` or ``"Sequential"`` as written.
        layers: its layers, in config order.
        inputs: references to its input tensors (``InputLayer`` calls).
        outputs: references to its output tensors.
        keras2: whether the config was written by Keras 2 / tf.keras.
    """

    name: str
    class_name: str
    layers: list
    inputs: list
    outputs: list
    keras2: bool = False

    def layer(self, name: str) -> LayerSpec:
        """The layer called ``name``."""
        return self._by_name()[name]

    def has_layer(self, name: str) -> bool:
        """Whether the model has a layer called ``name``."""
        return name in self._by_name()

    def _by_name(self) -> dict:
        index = self.__dict__.get("_index")
        if index is None:
            index = {layer.name: layer for layer in self.layers}
            self.__dict__["_index"] = index
        return index


def _expect(condition: bool, problem: str) -> None:
    if not condition:
        raise ConfigFormatError(problem)


def _is_ref(value: Any) -> bool:
    """``["name", 0, 0]`` (optionally with a trailing kwargs dict): a Keras 2 tensor ref."""
    return (isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value[1:3]))


def _ref(value: list, where: str) -> TensorRef:
    _expect(_is_ref(value), f"{where}: malformed tensor reference {str(value)[:80]}")
    _expect(value[1] >= 0 and value[2] >= 0, f"{where}: negative index in {value[:3]}")
    return (value[0], value[1], value[2])


def _refs_list(value: Any, where: str) -> list:
    """Model ``input_layers``/``output_layers``: one ref, or a (nested) list of refs."""
    if _is_ref(value):
        return [_ref(value, where)]
    _expect(isinstance(value, (list, dict)), f"{where}: expected a list of tensor references")
    out: list = []
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        out.extend(_refs_list(item, where))
    return out


#: Deepest nesting of lists and dicts read in a call's arguments.
MAX_ARGUMENT_DEPTH = 64
#: The placeholder tf.keras writes for a constant first argument (``2.0 * x``).
_KERAS2_CONSTANT = "_CONSTANT_VALUE"


class _ArgumentReader:
    """Reads one call's arguments: tensors become :class:`TensorArg` (recording their
    references and shapes), serialized slices, ellipses and arrays plain values."""

    def __init__(self, where: str, known: Optional[set] = None):
        self.where, self.known = where, known or set()
        self.refs: list = []
        self.shapes: list = []

    def tensor(self, ref: TensorRef, shape: Any = None) -> TensorArg:
        """A tensor argument: its reference and recorded shape noted, its placeholder."""
        self.refs.append(ref)
        self.shapes.append(shape if isinstance(shape, list) else None)
        return TensorArg(len(self.refs) - 1)

    def keras3(self, value: Any, depth: int = 0) -> Any:
        """A Keras 3 argument (``__keras_tensor__``, ``__slice__``... dicts) as a value."""
        if isinstance(value, list):
            if depth > MAX_ARGUMENT_DEPTH:
                raise ConfigFormatError(f"{self.where}: call arguments nested too deeply")
            return [self.keras3(v, depth + 1) for v in value]
        if not isinstance(value, dict):
            return value
        if not value:
            return {}
        kind, config = value.get("class_name"), value.get("config")
        if kind == "__keras_tensor__":
            if not isinstance(config, dict):
                raise ConfigFormatError(f"{self.where}: malformed tensor {str(value)[:80]}")
            return self.tensor(_ref(config.get("keras_history"), self.where), config.get("shape"))
        if kind == "__slice__" and isinstance(config, dict):
            return slice(*(self.keras3(config.get(k), depth + 1)
                           for k in ("start", "stop", "step")))
        if kind == "__ellipsis__":
            return Ellipsis
        if kind in ("__numpy__", "__tensor__") and isinstance(config, dict):
            return Constant(_nested_shape(config.get("value")))
        if depth > MAX_ARGUMENT_DEPTH:
            raise ConfigFormatError(f"{self.where}: call arguments nested too deeply")
        return {k: self.keras3(v, depth + 1) for k, v in value.items()}

    def keras2(self, value: Any, depth: int = 0) -> Any:
        """A Keras 2 keyword argument: ``[layer, node, tensor]`` of a known layer is a
        tensor."""
        if depth > MAX_ARGUMENT_DEPTH:
            raise ConfigFormatError(f"{self.where}: call arguments nested too deeply")
        if _is_ref(value) and len(value) == 3 and value[0] in self.known:
            return self.tensor(_ref(value, self.where))
        if isinstance(value, list):
            return [self.keras2(v, depth + 1) for v in value]
        if isinstance(value, dict):
            return {k: self.keras2(v, depth + 1) for k, v in value.items()}
        return value


def _nested_shape(value: Any) -> tuple:
    """The shape of a nested list (a serialized array)."""
    dims = []
    while isinstance(value, list):
        dims.append(len(value))
        value = value[0] if value else None
    return tuple(dims)


def _keras2_call(node: list, where: str, known: set) -> tuple:
    """``(reader, arguments)`` of a Keras 2 inbound node.

    A node lists one ``[layer, node, tensor, kwargs]`` per tensor of the call's first
    argument; a ``TFOpLambda`` called on one tensor writes that entry alone, not in a
    list (``["stem", 0, 0, {"y": ["identity", 0, 0]}]``), and a constant first argument
    as ``["_CONSTANT_VALUE", -1, 2.0, {...}]``.  The keyword arguments (the same dict on
    every entry) may hold more tensors.
    """
    reader = _ArgumentReader(where, known)
    single = bool(node) and isinstance(node[0], str)
    entries = [node] if single else node
    first: list = []
    for item in entries:
        if isinstance(item, list) and len(item) == 4 and item[0] == _KERAS2_CONSTANT:
            first.append(item[2])
        else:
            first.append(reader.tensor(_ref(item, where)))
    head = entries[0] if entries else None
    kwargs = head[3] if isinstance(head, list) and len(head) == 4 and isinstance(
        head[3], dict) else {}
    arguments = CallArguments([first[0] if single else first], reader.keras2(kwargs))
    return reader, arguments


def _calls(entry: dict, where: str, known: set) -> tuple:
    """``(calls, keras2)`` from a layer entry's ``inbound_nodes``."""
    nodes = entry.get("inbound_nodes") or []
    _expect(isinstance(nodes, list), f"{where}: 'inbound_nodes' must be a list")
    calls, keras2 = [], False
    for node in nodes:
        if isinstance(node, dict):  # Keras 3
            reader = _ArgumentReader(where)
            args = reader.keras3(node.get("args", []))
            kwargs = reader.keras3(node.get("kwargs", {}))
            arguments = CallArguments(args if isinstance(args, list) else [args],
                                      kwargs if isinstance(kwargs, dict) else {})
            calls.append(LayerCall(reader.refs, reader.shapes, arguments))
        elif isinstance(node, list):  # Keras 2
            keras2 = True
            reader, arguments = _keras2_call(node, where, known)
            calls.append(LayerCall(reader.refs, [None] * len(reader.refs), arguments))
        else:
            raise ConfigFormatError(f"{where}: malformed inbound node {str(node)[:80]}")
    return calls, keras2


def _keras3_layer_config(class_name: str, config: dict) -> dict:
    """Drop Keras 2's per-layer ``batch_input_shape`` (an ``InputLayer`` keeps it as
    Keras 3's ``batch_shape``); the layer table reads the other Keras 2 spellings."""
    if "batch_input_shape" not in config:
        return config
    out = {k: v for k, v in config.items() if k != "batch_input_shape"}
    if class_name == "InputLayer" and out.get("batch_shape") is None:
        out["batch_shape"] = config["batch_input_shape"]
    return out


def input_batch_shape(layer_config: dict) -> Optional[list]:
    """The batch shape an ``InputLayer`` (or a layer carrying one) declares, if any."""
    for key in ("batch_shape", "batch_input_shape"):
        value = layer_config.get(key)
        if value is not None:
            return value
    return None


def is_model_entry(entry: dict) -> bool:
    """Whether a layer entry is a nested Functional or Sequential model."""
    config = entry.get("config")
    return (entry.get("class_name") in MODEL_CLASSES and isinstance(config, dict)
            and isinstance(config.get("layers"), list))


def normalise_model(config: dict, depth: int = 0) -> ModelSpec:
    """Normalise a model config (``{"class_name": ..., "config": {...}}``).

    Raises:
        ConfigFormatError: the config is not a Functional or Sequential model config,
            or is malformed (missing fields, wrong types, duplicate layer names).
    """
    _expect(depth <= MAX_NESTING, f"models nested more than {MAX_NESTING} deep")
    _expect(isinstance(config, dict), "model config is not a JSON object")
    class_name = config.get("class_name")
    body = config.get("config")
    _expect(isinstance(body, dict) and isinstance(body.get("layers"), list),
            f"top-level class {str(class_name)[:60]!r} is not a Functional or Sequential "
            "model (no 'layers' list); subclassed models cannot be read statically: save "
            "it as keras.Model(model.inputs, model.outputs), or lint the model object "
            "(keras_cnnkit.lint(model))")
    if class_name == "Sequential" or (
            "input_layers" not in body and "output_layers" not in body):
        return _normalise_sequential(body, depth)
    return _normalise_functional(class_name, body, depth)


def _layer_spec(entry: Any, depth: int, where: str) -> LayerSpec:
    _expect(isinstance(entry, dict), f"{where}: layer entry is not a JSON object")
    class_name = entry.get("class_name")
    _expect(isinstance(class_name, str) and class_name != "",
            f"{where}: layer entry without 'class_name'")
    config = entry.get("config")
    if config is None:
        config = {}
    _expect(isinstance(config, dict), f"{where}: layer 'config' is not a JSON object")
    name = entry.get("name", config.get("name"))
    _expect(isinstance(name, str) and name != "", f"{where}: layer without a name")
    module = entry.get("module")
    registered = entry.get("registered_name")
    if ">" in class_name:  # Keras 3's legacy .h5 spells registered classes "package>Class"
        registered, class_name = class_name, class_name.rsplit(">", 1)[1]
    nested = normalise_model(entry, depth + 1) if is_model_entry(entry) else None
    build = entry.get("build_config")
    build_shape = build.get("input_shape") if isinstance(build, dict) else None
    return LayerSpec(name=name, class_name=class_name,
                     module=module if isinstance(module, str) else None,
                     registered_name=registered if isinstance(registered, str) else None,
                     config=_keras3_layer_config(class_name, config), model=nested,
                     build_input_shape=build_shape if isinstance(build_shape, list) else None)


def _normalise_functional(class_name: str, body: dict, depth: int) -> ModelSpec:
    name = str(body.get("name", "model"))
    entries = body["layers"]
    known = {e.get("name") for e in entries
             if isinstance(e, dict) and isinstance(e.get("name"), str)}
    layers, keras2 = [], False
    for i, entry in enumerate(entries):
        layer = _layer_spec(entry, depth, f"layer #{i}")
        layer.calls, is_k2 = _calls(entry, f"layer {layer.name!r}", known)
        keras2 = keras2 or is_k2
        layers.append(layer)
    _check_unique(layers)
    spec = ModelSpec(name=name, class_name=str(class_name), layers=layers,
                     inputs=_refs_list(body.get("input_layers", []), "input_layers"),
                     outputs=_refs_list(body.get("output_layers", []), "output_layers"),
                     keras2=keras2)
    _expect(bool(spec.outputs), f"model {name!r} lists no output layers")
    if keras2:
        _rebase_keras2_nested_calls(spec)
    return spec


def _check_unique(layers: list) -> None:
    seen = set()
    for layer in layers:
        _expect(layer.name not in seen, f"two layers named {layer.name!r}")
        seen.add(layer.name)


def _rebase_keras2_nested_calls(spec: ModelSpec) -> None:
    """Keras 2 counts a nested model's own construction as its node 0.

    tf.keras skips that node when it serialises (``_should_skip_first_node``), so the
    model's first call in the outer graph is referenced as node 1.
    """
    skip = {layer.name for layer in spec.layers if layer.model is not None and (
        layer.class_name != "Sequential" or _sequential_has_input(layer.config))}
    if not skip:
        return

    def rebase(ref: TensorRef) -> TensorRef:
        if ref[0] in skip and ref[1] >= 1:
            return (ref[0], ref[1] - 1, ref[2])
        return ref

    for layer in spec.layers:
        for call in layer.calls:
            call.inputs = [rebase(r) for r in call.inputs]
    spec.inputs = [rebase(r) for r in spec.inputs]
    spec.outputs = [rebase(r) for r in spec.outputs]


def _sequential_has_input(body: dict) -> bool:
    entries = body.get("layers") or []
    return bool(entries) and isinstance(entries[0], dict) and (
        entries[0].get("class_name") == "InputLayer"
        or input_batch_shape(entries[0].get("config") or {}) is not None)


def _normalise_sequential(body: dict, depth: int) -> ModelSpec:
    name = str(body.get("name", "sequential"))
    layers = [_layer_spec(entry, depth, f"layer #{i}")
              for i, entry in enumerate(body["layers"])]
    _expect(bool(layers), f"Sequential model {name!r} has no layers")
    if layers[0].class_name != "InputLayer":
        shape = input_batch_shape(body["layers"][0].get("config") or {})
        if shape is None:
            shape = body.get("build_input_shape")
        input_layer = LayerSpec(name=f"{layers[0].name}_input", class_name="InputLayer",
                                module=None, registered_name=None,
                                config={"batch_shape": shape, "name": f"{layers[0].name}_input"})
        layers.insert(0, input_layer)
    _check_unique(layers)
    for prev, layer in zip(layers, layers[1:]):
        _expect(layer.class_name != "InputLayer",
                f"Sequential model {name!r} has an InputLayer after its first layer")
        layer.calls = [LayerCall([(prev.name, 0, 0)], [None])]
    return ModelSpec(name=name, class_name="Sequential", layers=layers,
                     inputs=[(layers[0].name, 0, 0)], outputs=[(layers[-1].name, 0, 0)])
