"""Which Keras layer feeds which, read from the source that builds a model.

A layer is *used* at a place in the source, and the place decides its predecessors:

* an element of a ``Sequential([...])`` literal: the elements before it;
* the argument of ``model.add(layer)``: the layers of the ``model.add`` statements right
  before it (and of ``model = Sequential([...])`` right before those);
  both end at a :data:`MODEL_INPUT` marker for the model's input;
* the callee of a functional application ``layer(x)``: the layer whose application
  produced ``x`` — directly (``Dense(10)(Flatten()(x))``) or through a variable with a
  single reaching assignment (``x = Flatten()(x)`` then ``x = Dense(10)(x)``) — back to
  ``keras.Input(...)``.

The walk stops at anything it cannot read (a custom layer, a merge, a branch that
assigns the variable twice).
"""
from __future__ import annotations

import dataclasses
from typing import Iterator, NamedTuple, Optional

from astroid import nodes

from lint_rules.pylint_plugin.keras_names import (
    call_argument,
    infer_constant,
    keras_symbol,
    reaching_value,
)

_MAX_CHAIN = 256

_CONV_PARAMS = ("filters", "kernel_size", "strides", "padding", "data_format",
                "dilation_rate", "groups", "activation", "use_bias")
_SEPARABLE_PARAMS = ("filters", "kernel_size", "strides", "padding", "data_format",
                     "dilation_rate", "depth_multiplier", "activation", "use_bias")
_DEPTHWISE_PARAMS = ("kernel_size", "strides", "padding", "depth_multiplier", "data_format",
                     "dilation_rate", "activation", "use_bias")
_TRANSPOSE_PARAMS = ("filters", "kernel_size", "strides", "padding", "output_padding",
                     "data_format", "dilation_rate", "activation", "use_bias")
_POOL_PARAMS = ("pool_size", "strides", "padding", "data_format")

#: Convolutions whose weights are ``kernel · C_in · filters / groups`` (+ ``filters`` biases).
CONV = frozenset({"Conv1D", "Conv2D", "Conv3D"})
SEPARABLE_CONV = frozenset({"SeparableConv1D", "SeparableConv2D"})
DEPTHWISE_CONV = frozenset({"DepthwiseConv1D", "DepthwiseConv2D"})
TRANSPOSED_CONV = frozenset({"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"})
#: Every convolution layer (all carry a bias unless ``use_bias=False``).
ANY_CONV = CONV | SEPARABLE_CONV | DEPTHWISE_CONV | TRANSPOSED_CONV
#: Dropouts that rescale activations in training only (AlphaDropout keeps mean and variance).
DROPOUT = frozenset({"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "GaussianDropout"})
#: Weightless element-wise layers: they change neither the shape nor a following layer's cost.
ELEMENTWISE = DROPOUT | frozenset({"AlphaDropout", "GaussianNoise", "ActivityRegularization",
                                   "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax"})
SHAPE_PRESERVING = ELEMENTWISE | frozenset({
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization",
    "PReLU", "Rescaling", "Identity"})
POOL = frozenset(f"{kind}Pooling{rank}D" for kind in ("Max", "Average") for rank in (1, 2, 3))
GLOBAL_POOL = frozenset(f"Global{kind}Pooling{rank}D"
                        for kind in ("Max", "Average") for rank in (1, 2, 3))
ZERO_PADDING = frozenset({"ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"})
INPUT = frozenset({"Input", "InputLayer"})
#: Pseudo layer class: the start of a Sequential model that declares no input shape.
MODEL_INPUT = "<model input>"
#: Where a chain of layers reaches the model's input.
MODEL_START = INPUT | {MODEL_INPUT}

_POSITIONAL: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(CONV, _CONV_PARAMS),
    **dict.fromkeys(SEPARABLE_CONV, _SEPARABLE_PARAMS),
    **dict.fromkeys(DEPTHWISE_CONV, _DEPTHWISE_PARAMS),
    **dict.fromkeys(TRANSPOSED_CONV, _TRANSPOSE_PARAMS),
    "Conv3DTranspose": ("filters", "kernel_size", "strides", "padding", "data_format",
                        "output_padding", "dilation_rate", "activation", "use_bias"),
    **dict.fromkeys(POOL, _POOL_PARAMS),
    **dict.fromkeys(GLOBAL_POOL, ("data_format", "keepdims")),
    **dict.fromkeys(ZERO_PADDING, ("padding", "data_format")),
    **dict.fromkeys(DROPOUT | {"AlphaDropout"}, ("rate",)),
    **dict.fromkeys(INPUT, ("shape",)),
    "Dense": ("units", "activation", "use_bias"),
    "Embedding": ("input_dim", "output_dim"),
    "Activation": ("activation",),
}

_ALIAS_PREFIXES = (("GlobalMaxPool", "GlobalMaxPooling"),
                   ("GlobalAvgPool", "GlobalAveragePooling"),
                   ("MaxPool", "MaxPooling"), ("AvgPool", "AveragePooling"))


def canonical_class(name: str) -> str:
    """Keras' preferred name for a layer class alias (``Convolution2D`` → ``Conv2D``)."""
    name = name.replace("Convolution", "Conv")
    for alias, preferred in _ALIAS_PREFIXES:
        if name.startswith(alias) and not name.startswith(preferred):
            return preferred + name[len(alias):]
    return name


def rank_of(cls: str) -> int:
    """The number of spatial axes of a ``...1D``/``...2D``/``...3D`` layer class (0 if none)."""
    for rank in (1, 2, 3):
        if f"{rank}D" in cls:
            return rank
    return 0


@dataclasses.dataclass(frozen=True)
class LayerRef:
    """A Keras layer constructed in the source: its class and the constructing call."""

    cls: str
    call: nodes.Call

    def argument(self, name: str) -> Optional[nodes.NodeNG]:
        """The expression passed for constructor parameter ``name``, if any."""
        params = _POSITIONAL.get(self.cls, ())
        position = params.index(name) if name in params else None
        return call_argument(self.call, name, position)

    def use_bias(self) -> Optional[bool]:
        """Whether the layer has a bias (Keras' default: yes); ``None`` if not inferable."""
        expr = self.argument("use_bias")
        if expr is None:
            return True
        known, value = infer_constant(expr)
        return bool(value) if known else None

    def channels_last(self) -> bool:
        """False when ``data_format`` is given as anything but ``"channels_last"``."""
        expr = self.argument("data_format")
        return expr is None or infer_constant(expr) == (True, "channels_last")


class LayerUse(NamedTuple):
    """A layer at one place of use: ``place`` is the expression that denotes the layer there
    (a Sequential element, the argument of ``add``, the callee of an application)."""

    place: nodes.NodeNG
    ref: LayerRef


def layer_ref(expr: Optional[nodes.NodeNG], depth: int = 0) -> Optional[LayerRef]:
    """The layer ``expr`` constructs (``layers.Conv2D(...)``) or names (``conv`` bound to one)."""
    if isinstance(expr, nodes.Name) and depth < _MAX_CHAIN:
        return layer_ref(reaching_value(expr), depth + 1)
    if isinstance(expr, nodes.Call):
        symbol = keras_symbol(expr.func)
        if symbol and symbol[0].isupper():
            return LayerRef(canonical_class(symbol), expr)
    return None


def sequential_layers(call: nodes.Call) -> Optional[list[nodes.NodeNG]]:
    """The element expressions of ``Sequential([...])`` (list or tuple literal), else None."""
    if keras_symbol(call.func) != "Sequential":
        return None
    container = call_argument(call, "layers", 0)
    if container is None:
        return []
    if isinstance(container, (nodes.List, nodes.Tuple)):
        return list(container.elts)
    return None


def add_call(statement: Optional[nodes.NodeNG]) -> Optional[tuple[str, nodes.NodeNG]]:
    """``(receiver source, layer expression)`` for a statement ``receiver.add(layer)``."""
    if not isinstance(statement, nodes.Expr) or not isinstance(statement.value, nodes.Call):
        return None
    call = statement.value
    if (isinstance(call.func, nodes.Attribute) and call.func.attrname == "add"
            and len(call.args) == 1 and not call.keywords
            and not isinstance(call.args[0], nodes.Starred)):
        return call.func.expr.as_string(), call.args[0]
    return None


def upstream(place: nodes.NodeNG) -> Iterator[LayerUse]:
    """The layers before the layer used at ``place``, nearest first (see module docstring)."""
    parent = place.parent
    if isinstance(parent, nodes.Call) and parent.func is place:
        if parent.args and not isinstance(parent.args[0], nodes.Starred):
            yield from _functional_upstream(parent.args[0])
        return
    if isinstance(parent, (nodes.List, nodes.Tuple)):
        owner = parent.parent.parent if isinstance(parent.parent, nodes.Keyword) else parent.parent
        elements = sequential_layers(owner) if isinstance(owner, nodes.Call) else None
        for index, element in enumerate(elements or ()):
            if element is place:
                yield from _refs_backwards(elements[:index], owner)
        return
    statement = parent.parent if isinstance(parent, nodes.Call) else None
    add = add_call(statement)
    if add is not None and add[1] is place:
        yield from _add_chain_upstream(statement, add[0])


def _refs_backwards(elements: list[nodes.NodeNG], model: nodes.Call) -> Iterator[LayerUse]:
    """The layers of ``elements`` from last to first, then the input of ``model``; stops at
    the first unreadable element."""
    for element in reversed(elements):
        ref = layer_ref(element)
        if ref is None:
            return
        yield LayerUse(element, ref)
    yield LayerUse(model, LayerRef(MODEL_INPUT, model))


def _add_chain_upstream(statement: nodes.NodeNG, receiver: str) -> Iterator[LayerUse]:
    """Layers of the ``receiver.add(...)`` statements before ``statement``, nearest first."""
    current = statement.previous_sibling()
    while current is not None:
        add = add_call(current)
        if add is not None and add[0] == receiver:
            ref = layer_ref(add[1])
            if ref is None:
                return
            yield LayerUse(add[1], ref)
            current = current.previous_sibling()
            continue
        if (isinstance(current, nodes.Assign) and len(current.targets) == 1
                and current.targets[0].as_string() == receiver
                and isinstance(current.value, nodes.Call)):
            elements = sequential_layers(current.value)
            if elements is not None:
                yield from _refs_backwards(elements, current.value)
        return


def _functional_upstream(tensor: Optional[nodes.NodeNG]) -> Iterator[LayerUse]:
    """The layers whose applications produced ``tensor``, nearest first, back to ``Input``."""
    for _ in range(_MAX_CHAIN):
        if isinstance(tensor, nodes.Name):
            tensor = reaching_value(tensor)
            continue
        if not isinstance(tensor, nodes.Call):
            return
        if keras_symbol(tensor.func) == "Input":
            yield LayerUse(tensor, LayerRef("Input", tensor))
            return
        ref = layer_ref(tensor.func)
        if ref is None:
            return
        yield LayerUse(tensor.func, ref)
        if not tensor.args or isinstance(tensor.args[0], nodes.Starred):
            return
        tensor = tensor.args[0]
