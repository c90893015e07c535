"""Shape inference on the IR: an op kind, its attributes and input shapes → output shape.

Pure Python, shared by every frontend (a frontend that knows the observed shapes, like
the live Keras one, checks them against these) and by the rules, which build replacement
fragments and need their shapes.  Each kind's shape rule is part of its definition in
:mod:`keras_cnnkit.analysis.ops` (the window-length formulas are in
:mod:`keras_cnnkit.analysis.ops.geometry`); this module runs them.

Shapes exclude the batch dimension.  An unknown dimension is ``None`` and propagates; an
unknown shape (the output of an opaque op) is ``None`` and makes every shape computed
from it ``None`` too.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from keras_cnnkit.analysis.ir import Graph, Shape
from keras_cnnkit.analysis.ops import AttrsError, Trait, op_def
from keras_cnnkit.analysis.ops.errors import ShapeError, UnknownOpError
from keras_cnnkit.analysis.ops.geometry import conv_length, deconv_length, pool_length, prod

__all__ = ["ShapeError", "conv_length", "deconv_length", "infer_shape", "num_elements",
           "pool_length", "propagate_shapes"]


def infer_shape(op: str, attrs: dict, input_shapes: Sequence) -> Optional[Shape]:
    """The output shape of an ``op`` node, or ``None`` where it cannot be known.

    Raises :class:`ShapeError` when the attributes contradict the input shapes (or do
    not fit the kind's typed attributes).
    """
    try:
        definition = op_def(op)
    except UnknownOpError:
        raise ShapeError(f"no shape rule for op kind {op!r}") from None
    if definition.has(Trait.OPAQUE):
        return None
    if not definition.has(Trait.SOURCE) and (
            not input_shapes or any(s is None for s in input_shapes)):
        return None
    try:
        typed = definition.parse(attrs)
    except AttrsError as exc:
        raise ShapeError(str(exc)) from None
    try:
        return definition.infer_shape(typed, [tuple(s) for s in input_shapes])
    except (KeyError, IndexError, TypeError) as exc:
        raise ShapeError(f"{op} with attributes {attrs} on inputs {list(input_shapes)}: "
                         f"{type(exc).__name__}: {exc}") from None


def num_elements(shape: Optional[Shape]) -> Optional[int]:
    """Elements of one sample of ``shape``; ``None`` if any dimension is unknown."""
    return None if shape is None else prod(shape)


def propagate_shapes(graph: Graph, input_shapes: dict) -> Graph:
    """A copy of ``graph`` with new shapes for its inputs, re-inferred downstream.

    ``input_shapes`` maps input node names to batch-excluded shapes (e.g. to give a
    model built with ``(None, None, 3)`` a concrete ``(224, 224, 3)``).  Opaque nodes
    keep their output shape only where their input shapes did not change.
    """
    out = Graph(name=graph.name, inputs=list(graph.inputs), outputs=list(graph.outputs),
                source=graph.source, frontend=graph.frontend, notes=list(graph.notes))
    for node in graph:
        attrs = dict(node.attrs)
        in_shapes = [out[src].output_shape for src in node.inputs]
        definition = op_def(node.op)
        if definition.has(Trait.SOURCE):
            shape = tuple(input_shapes.get(node.name, node.output_shape))
            attrs["shape"] = shape
        elif definition.has(Trait.OPAQUE):
            same = all(a == b for a, b in zip(in_shapes, node.input_shapes))
            shape = node.output_shape if same else None
        else:
            shape = infer_shape(node.op, attrs, in_shapes)
        attrs.pop("inferred_shape", None)
        out.add(dataclasses.replace(node, attrs=attrs, input_shapes=in_shapes,
                                    output_shape=shape, inputs=list(node.inputs)))
    return out
