"""Keras models built from graph IR alone: a whole graph, or one finding's before/after.

These models hold stock Keras layers with fresh (random) weights; they are what the
benchmark harness times.  Built from the IR, they never run code from a model file.
"""
from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import keras

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.lint.findings import Replacement
from keras_cnnkit.rewrite.codegen import (UnsupportedNodeError, call_layers, layer_name,
                                          node_layers)


def model_from_nodes(nodes: Sequence[Node], inputs: dict, outputs: Sequence[str],
                     dtype: Any = None, name: str = "subgraph") -> keras.Model:
    """A functional model computing ``nodes`` (topological order) from ``inputs``.

    Args:
        nodes: the IR nodes to build.  Each reads other nodes of the list or names in
            ``inputs``.
        inputs: external input name → shape (batch excluded); one ``keras.Input`` each.
        outputs: names (of nodes or inputs) whose values the model returns.
        dtype: dtype policy for every layer (``"mixed_float16"``...); the inputs take
            its compute dtype.
        name: the model's name.

    Raises:
        UnsupportedNodeError: a node has no Keras equivalent or a shape is unknown.
    """
    tensors = {}
    model_inputs = []
    in_dtype = keras.DTypePolicy(dtype).compute_dtype if dtype is not None else None
    for in_name, shape in inputs.items():
        if shape is None:
            raise UnsupportedNodeError(in_name, "input shape unknown")
        tensor = keras.Input(shape=tuple(shape), name=layer_name(in_name), dtype=in_dtype)
        tensors[in_name] = tensor
        model_inputs.append(tensor)
    for node in nodes:
        missing = [src for src in node.inputs if src not in tensors]
        if missing:
            raise UnsupportedNodeError(node.name, "reads nodes outside the subgraph: "
                                       + ", ".join(missing))
        layers = node_layers(node, dtype=dtype)
        tensors[node.name] = call_layers(layers, [tensors[src] for src in node.inputs])
    outs = []
    for out in outputs:
        value = tensors[out]
        if any(value is t for t in model_inputs):
            value = keras.layers.Identity(name=f"{layer_name(out)}_identity")(value)
        outs.append(value)
    return keras.Model(model_inputs, outs[0] if len(outs) == 1 else outs, name=name)


def external_inputs(graph: Graph, names: Iterable[str]) -> dict:
    """The producers read by nodes ``names`` but not among them: name → output shape."""
    inside = set(names)
    found = {}
    for name in names:
        node = graph[name]
        for src, shape in zip(node.inputs, node.input_shapes or [None] * len(node.inputs)):
            if src not in inside and src not in found:
                found[src] = tuple(graph[src].output_shape if src in graph.nodes else shape)
    return found


def replacement_models(graph: Graph, rep: Replacement, dtype: Any = None,
                       name: str = "fix") -> tuple:
    """``(before, after)``: the removed nodes and the fragment, as Keras models.

    Both read the removed nodes' producers at their real shapes (batch excluded) and
    return the value that replaces the last removed node.  The weights are random.

    Raises:
        UnsupportedNodeError: some node cannot be built (opaque op, unknown shape).
    """
    before_nodes = [graph[n] for n in rep.removed]
    inputs = external_inputs(graph, rep.removed)
    inside = {node.name for node in rep.nodes}
    for node in rep.nodes:
        for src in node.inputs:
            if src not in inside and src not in inputs:
                inputs[src] = tuple(graph[src].output_shape)
    before = model_from_nodes(before_nodes, inputs, [rep.removed[-1]], dtype=dtype,
                              name=f"{_safe(name)}_before")
    after = model_from_nodes(rep.nodes, inputs, [rep.output], dtype=dtype,
                             name=f"{_safe(name)}_after")
    return before, after


def model_from_graph(graph: Graph, dtype: Any = None) -> keras.Model:
    """The whole graph as a Keras model with random weights.

    Raises:
        UnsupportedNodeError: naming the first node (opaque, unknown shape) that cannot
            be built.
    """
    inputs = {}
    nodes = []
    for node in graph:
        if node.op == OpKind.INPUT:
            inputs[node.name] = tuple(node.output_shape)
        else:
            nodes.append(node)
    return model_from_nodes(nodes, inputs, list(graph.outputs), dtype=dtype,
                            name=_safe(graph.name or "model"))


def unbuildable_nodes(graph: Graph, names: Optional[Iterable[str]] = None) -> list:
    """Names of the nodes of ``graph`` (or of ``names``) that codegen cannot build."""
    bad = []
    for node in (graph[n] for n in names) if names is not None else graph:
        if node.op == OpKind.INPUT:
            continue
        try:
            node_layers(node)
        except (UnsupportedNodeError, ValueError, TypeError):
            bad.append(node.name)
    return bad


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name) or "model"
