"""Code generation: graph-IR nodes back into standard Keras layers.

Each op kind's Keras codegen is part of its definition in :mod:`keras_cnnkit.analysis.ops`
(:meth:`~keras_cnnkit.analysis.ops.OpDef.keras_layers`); this module runs it.  Layers are
stock ``keras.layers`` classes (or this package's own registered layers, such as
``ChannelShuffle``), built from the node's attributes and shapes only.  Nothing is ever
taken from a model file's code, so building layers from a file's IR can never run that
file's code.  A kind marked ``rebuildable = False`` (inputs, opaque ops, the sampling half
of a deformable convolution) says why in the :class:`UnsupportedNodeError`.

A node usually becomes one layer.  A convolution or pooling with explicit, asymmetric
pads becomes ``ZeroPadding`` + the op with ``padding="valid"``; the op is then the last
layer of the list and carries the node's name.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional

from keras_cnnkit.analysis.ir import Node
from keras_cnnkit.analysis.ops import UnknownOpError, UnsupportedNodeError, all_kinds, op_def

__all__ = ["UnsupportedNodeError", "call_layers", "keras_layers_for", "layer_name",
           "node_layers", "supported_ops"]


def layer_name(node_name: str) -> str:
    """A valid Keras layer name for an IR node name (``block/op`` → ``block_op``)."""
    return node_name.replace("/", "_")


def node_layers(node: Node, name: Optional[str] = None,
                dtype: Any = None) -> list:
    """The Keras layers computing ``node``, in call order; the last one is the op itself.

    Args:
        node: the IR node.
        name: the Keras name of the op's layer (default: :func:`layer_name` of the node).
        dtype: a dtype policy (``"mixed_float16"``, ``"bfloat16"``...) for every layer.

    Raises:
        UnsupportedNodeError: for opaque nodes and op kinds or attributes without a
            Keras equivalent.
    """
    try:
        definition = op_def(node.op)
    except UnknownOpError:
        definition = None
    if definition is None or not definition.rebuildable:
        why = f": {definition.not_rebuildable}" if definition is not None else ""
        raise UnsupportedNodeError(node.name, f"op {node.op!r} "
                                   f"({node.source_class or 'unknown class'}) has no "
                                   f"Keras equivalent here{why}")
    common = {"name": name or layer_name(node.name)}
    if dtype is not None:
        common["dtype"] = dtype
    return definition.keras_layers(node, definition.view(node.attrs), common)


def keras_layers_for(nodes: Iterable[Node], dtype: Any = None) -> dict:
    """Node name → list of Keras layers (see :func:`node_layers`), in the nodes' order."""
    return {node.name: node_layers(node, dtype=dtype) for node in nodes}


def call_layers(layers: list, inputs: list):
    """Call a node's layers on its input tensors; merge layers get the list."""
    x = inputs[0] if len(inputs) == 1 else list(inputs)
    for layer in layers:
        x = layer(x)
    return x


def supported_ops() -> tuple:
    """The IR op kinds :func:`node_layers` can build."""
    return tuple(kind for kind in all_kinds() if op_def(kind).rebuildable)
