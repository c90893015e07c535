"""The machinery shared by every composite block: build from a spec, run it, emit it.

A composite block is a :class:`SpecBlock` subclass whose structure is a pure-Python
:class:`~keras_cnnkit.blockspec.BlockGraph` (see :mod:`keras_cnnkit.blockspec`).  The
same graph is

* instantiated as tracked sub-layers and executed by :meth:`SpecBlock.call`, and
* emitted into a functional model as plain, top-level layers by :func:`emit` (what the
  builders use, so that their layer list matches keras.applications).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
from __future__ import annotations

import importlib

import keras

from keras_cnnkit.blockspec import BlockGraph, get_spec
from keras_cnnkit.blockspec.core import BLOCK_INPUT, resolve_config

PACKAGE = "keras_cnnkit"


def register(cls):
    """Register a layer class as ``keras_cnnkit>ClassName`` for (de)serialisation."""
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def conv_weights(layer: keras.layers.Layer, kernel_shape: tuple) -> tuple:
    """``(kernel, bias)`` of a conv-like ``layer``: a kernel of ``kernel_shape`` and, with
    ``use_bias``, a bias of ``filters`` (else ``None``), added with its
    ``kernel_initializer``/``bias_initializer``."""
    kernel = layer.add_weight(name="kernel", shape=tuple(kernel_shape),
                              initializer=layer.kernel_initializer)
    bias = None
    if layer.use_bias:
        bias = layer.add_weight(name="bias", shape=(layer.filters,),
                                initializer=layer.bias_initializer)
    return kernel, bias


def layer_class(class_name: str, package: str = "keras"):
    """Resolve a spec op's class to a Keras layer class."""
    if package == "keras":
        return getattr(keras.layers, class_name)
    cls = keras.saving.get_registered_object(f"{package}>{class_name}")
    if cls is None:
        # The layer modules register on import.
        importlib.import_module("keras_cnnkit.layers")
        cls = keras.saving.get_registered_object(f"{package}>{class_name}")
    if cls is None:
        raise ValueError(f"unknown layer class {package}>{class_name}")
    return cls


def make_layer(op, name: str | None = None) -> keras.layers.Layer:
    """Instantiate the layer of a spec op."""
    config = dict(op.config)
    if name is not None:
        config["name"] = name
    return layer_class(op.class_name, op.package)(**config)


def run_graph(graph: BlockGraph, layers: dict, inputs):
    """Execute ``graph`` with the layer instances ``layers`` (op name → layer)."""
    values = {BLOCK_INPUT: inputs}
    for op in graph.ops:
        args = [values[src] for src in op.inputs]
        values[op.name] = layers[op.name](args[0] if len(args) == 1 else args)
    return values[graph.output]


def _with_data_format(config: dict) -> dict:
    config = dict(config)
    if config.get("data_format") is None:
        config["data_format"] = keras.config.image_data_format()
    return config


def emit(block_class: str, config: dict, x, prefix: str = "", names: dict | None = None):
    """Emit block ``block_class`` with ``config`` on functional tensor ``x`` as plain layers.

    Each op becomes a top-level layer named ``prefix + op.name`` (or ``names[op.name]``
    where given).  Returns the output tensor.  This is how builders use blocks while
    keeping keras.applications' flat layer list.  Missing arguments take the block's
    defaults; a ``data_format`` of ``None`` or none at all means Keras' default.
    """
    config = _with_data_format(config)
    graph = get_spec(block_class)(config, tuple(x.shape))
    names = names or {}
    layers = {op.name: make_layer(op, names.get(op.name, prefix + op.name)) for op in graph.ops}
    return run_graph(graph, layers, x)


class SpecBlock(keras.layers.Layer):
    """Base class of composite blocks defined by a spec.

    Subclasses call ``super().__init__(block_args, **kwargs)`` with their own arguments
    in ``block_args``.  They are validated (``ValueError`` naming the argument) and
    completed with the spec's defaults here; a ``data_format`` of ``None`` becomes
    ``keras.config.image_data_format()``.  :meth:`get_config` returns them so that
    ``from_config(get_config())`` rebuilds the block.
    """

    def __init__(self, block_args: dict, **kwargs):
        block_args = _with_data_format(block_args)
        block_args = resolve_config(type(self).__name__, block_args)
        super().__init__(**kwargs)
        self._block_args = block_args
        self._graph = None
        self._op_layers = None

    @property
    def block_args(self) -> dict:
        """The block's own arguments, as given to the constructor."""
        return dict(self._block_args)

    def graph(self, input_shape) -> BlockGraph:
        """The block's structure for ``input_shape`` (batch dimension included)."""
        return get_spec(type(self).__name__)(self._block_args, tuple(input_shape))

    def build(self, input_shape):
        self._graph = self.graph(input_shape)
        self._op_layers = {}
        shapes = {BLOCK_INPUT: tuple(input_shape)}
        for op in self._graph.ops:
            layer = make_layer(op, op.name)
            in_shapes = [shapes[src] for src in op.inputs]
            in_shape = in_shapes[0] if len(in_shapes) == 1 else in_shapes
            layer.build(in_shape)
            shapes[op.name] = tuple(layer.compute_output_shape(in_shape))
            self._op_layers[op.name] = layer
        # A list attribute is tracked by Keras, so sub-layer weights are saved.
        self.op_layers = list(self._op_layers.values())
        self.built = True

    def call(self, inputs):
        return run_graph(self._graph, self._op_layers, inputs)

    def compute_output_shape(self, input_shape):
        graph = self.graph(input_shape)
        shapes = {BLOCK_INPUT: tuple(input_shape)}
        for op in graph.ops:
            in_shapes = [shapes[src] for src in op.inputs]
            layer = make_layer(op)
            shapes[op.name] = tuple(
                layer.compute_output_shape(in_shapes[0] if len(in_shapes) == 1 else in_shapes)
            )
        return shapes[graph.output]

    def get_config(self):
        config = super().get_config()
        config.update(self._block_args)
        return config
