"""Building replacement IR fragments: new nodes with attributes and inferred shapes.

A rule that suggests a fix describes it as a few new nodes reading graph nodes (or each
other).  :class:`FragmentBuilder` names them (unique in the graph, Keras-valid: no
``/``), fills in shapes with the IR's shape rules, and checks that the fragment's output
has the shape of what it replaces.  The costs of a fragment come from the same cost model
as the rest of the graph (:func:`keras_cnnkit.analysis.cost.replacement_costs`).
"""
from __future__ import annotations

from typing import Optional, Sequence

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.shapes import ShapeError, infer_shape


class FragmentBuilder:
    """Accumulates the nodes of one replacement fragment.

    Args:
        graph: the graph the fragment will replace part of.
        base: the stem of new node names (usually the replaced node's name);
            new nodes are named ``f"{base}_{suffix}"``.
    """

    def __init__(self, graph: Graph, base: str):
        self.graph = graph
        self.base = base.replace("/", "_")
        self.nodes: list = []
        self._by_name: dict = {}

    def shape_of(self, name: str):
        """The output shape of a fragment node or a graph node."""
        if name in self._by_name:
            return self._by_name[name].output_shape
        return self.graph[name].output_shape

    def _name(self, suffix: str) -> str:
        name = f"{self.base}_{suffix}"
        k = 1
        while name in self.graph.nodes or name in self._by_name:
            k += 1
            name = f"{self.base}_{suffix}{k}"
        return name

    def add(self, suffix: str, op: str, inputs: Sequence[str], attrs: dict,
            source_class: str = "") -> Node:
        """A new node reading ``inputs`` (graph or fragment node names)."""
        shapes = [self.shape_of(n) for n in inputs]
        name = self._name(suffix)
        node = Node(name=name, op=op, inputs=list(inputs), input_shapes=shapes,
                    output_shape=infer_shape(op, attrs, shapes), attrs=dict(attrs),
                    layer=name, source_class=source_class)
        self.nodes.append(node)
        self._by_name[name] = node
        return node

    def conv(self, suffix: str, source: str, like: Node, filters: int, kernel: Sequence[int],
             strides: Optional[Sequence[int]] = None, padding=None,
             dilation: Optional[Sequence[int]] = None, groups: int = 1,
             depthwise: bool = False, use_bias: Optional[bool] = None,
             activation: Optional[str] = "same") -> Node:
        """A convolution node modelled on ``like`` (its rank, data format, bias and
        activation unless overridden); ``depthwise`` makes a depthwise conv."""
        rank = len(kernel)
        in_shape = self.shape_of(source)
        fmt = like.data_format
        in_channels = in_shape[0] if fmt == "channels_first" else in_shape[-1]
        attrs = {
            "rank": rank, "kernel": tuple(kernel),
            "strides": tuple(strides) if strides is not None else (1,) * rank,
            "dilation": tuple(dilation) if dilation is not None else (1,) * rank,
            "padding": padding if padding is not None else like.attrs.get("padding", "same"),
            "in_channels": in_channels,
            "filters": in_channels if depthwise else filters,
            "groups": in_channels if depthwise else groups,
            "use_bias": like.attrs.get("use_bias", True) if use_bias is None else use_bias,
            "activation": like.attrs.get("activation") if activation == "same" else activation,
            "data_format": fmt,
        }
        if depthwise:
            attrs["depth_multiplier"] = 1
            return self.add(suffix, OpKind.DEPTHWISE_CONV, [source], attrs,
                            f"DepthwiseConv{rank}D")
        return self.add(suffix, OpKind.CONV, [source], attrs, f"Conv{rank}D")

    def copy(self, node: Node, inputs: Optional[Sequence[str]] = None, suffix: str = "",
             **attr_changes) -> Node:
        """A copy of graph node ``node`` with changed attributes and/or inputs."""
        attrs = dict(node.attrs)
        attrs.update(attr_changes)
        attrs.pop("shares_weights_with", None)
        return self.add(suffix or "fixed", node.op, list(inputs or node.inputs), attrs,
                        node.source_class)

    def matches(self, replaced: Node, output: Node) -> bool:
        """True when ``output`` has the shape of ``replaced`` (a drop-in replacement)."""
        return (output.output_shape is not None
                and tuple(output.output_shape) == tuple(replaced.output_shape or ()))


def try_build(build) -> Optional[FragmentBuilder]:
    """Run ``build()``; ``None`` if the fragment's shapes do not work out."""
    try:
        return build()
    except ShapeError:
        return None
