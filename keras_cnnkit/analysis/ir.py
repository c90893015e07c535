"""The linter's graph IR: framework-neutral nodes with op kind, attributes, shapes, edges.

Frontends (live Keras model, model files read statically, ONNX) produce a :class:`Graph`;
analyses and rules read only this module's types.

Shapes exclude the batch dimension and keep the layout of ``attrs["data_format"]``
(``"channels_last"`` unless stated).  Use :meth:`Node.channels` and
:meth:`Node.spatial` rather than indexing shapes by hand.  A dimension the frontend cannot
know is ``None``; an output shape it cannot know at all (after an opaque op) is ``None``.

A layer called several times (a shared layer) gives one node per call; every call after
the first carries ``attrs["shares_weights_with"]`` naming the first call's node, so its
weights are counted once (as Keras' ``count_params()`` does).

What an op kind means — its typed attributes, shape rule, cost formulas, traits and Keras
codegen — is defined once, in :mod:`keras_cnnkit.analysis.ops`.  ``Node.attrs`` is a
plain ``dict``, checked against the kind's typed attributes when the node is made
(:class:`~keras_cnnkit.analysis.ops.AttrsError` for an undeclared key, a missing
required one or a value of the wrong type).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Optional

from keras_cnnkit.budgets import check_node

Shape = tuple  # tuple of Optional[int], batch dimension excluded


class OpKind:
    """Names of the op kinds built into the IR (the values of ``Node.op``).

    Each is defined — typed attributes, shape, costs, traits, codegen — by the module of
    :mod:`keras_cnnkit.analysis.ops` named after it; the attribute names beside each are
    a reminder, the definition's attrs dataclass is the reference.  Kinds added later
    (``layer_scale``, third-party kinds) are named by their op module's constant and
    listed by :func:`keras_cnnkit.analysis.ops.all_kinds`.

    Convolutions share: ``rank`` (1/2/3), ``kernel`` (tuple), ``strides``, ``dilation``,
    ``padding`` ("same"/"valid" or explicit pads tuple), ``groups``, ``in_channels``,
    ``filters``, ``use_bias``, ``activation`` (fused activation name or None),
    ``data_format``.
    """

    INPUT = "input"
    CONV = "conv"                      # groups=in_channels with filters=k*in → depthwise
    DEPTHWISE_CONV = "depthwise_conv"  # + depth_multiplier
    CONV_TRANSPOSE = "conv_transpose"
    DEFORM_CONV = "deform_conv"        # + modulated (bool); offset conv is its own node
    EMBEDDING = "embedding"            # input_dim, output_dim (a table look-up: 0 MACs)
    DENSE = "dense"                    # in_features, units, use_bias, activation
    BATCHNORM = "batchnorm"            # channels, center, scale
    NORM = "norm"                      # other normalisations (LayerNorm, GroupNorm)
    ACTIVATION = "activation"          # activation: relu, relu6, sigmoid, softmax, ...
    ADD = "add"
    SUBTRACT = "subtract"
    MULTIPLY = "multiply"
    AVERAGE = "average"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    CONCAT = "concat"                  # axis
    POOL = "pool"                      # pool_type max/avg, pool_size, strides, padding
    GLOBAL_POOL = "global_pool"        # pool_type max/avg, keepdims
    FLATTEN = "flatten"
    RESHAPE = "reshape"                # target_shape
    TRANSPOSE = "transpose"            # perm (over the batch-excluded dims, 0-based)
    SLICE = "slice"                    # axis (batch-excluded), start, stop
    DROPOUT = "dropout"                # rate (also SpatialDropout, DropPath)
    PAD = "pad"                        # padding
    CROP = "crop"
    UPSAMPLE = "upsample"
    CHANNEL_SHUFFLE = "channel_shuffle"  # groups
    RESCALE = "rescale"                # Rescaling / Normalization: element-wise affine
    IDENTITY = "identity"              # no computation (InputSpec-only layers, Permute...)
    OPAQUE = "opaque"                  # cannot be analysed (Lambda, unknown class)


def call_name(name: str, taken) -> str:
    """``name``, or ``name@k`` with the smallest ``k`` not in ``taken``.

    The name of a later call of a shared layer (or of a repeated nested-model prefix);
    every frontend names calls this way, so their graphs agree node for node.
    """
    if name not in taken:
        return name
    k = 1
    while f"{name}@{k}" in taken:
        k += 1
    return f"{name}@{k}"


@dataclasses.dataclass
class Node:
    """One op of the graph.

    Attributes:
        name: unique id in the graph (for Keras: the layer path, ``"block_1/expand"`` for
            an op inside a block; for ONNX: the node name).
        op: an :class:`OpKind` value.
        inputs: names of the producing nodes, in argument order.
        input_shapes: one shape per input (batch excluded).
        output_shape: the shape of the output (batch excluded).
        attrs: op attributes: a ``dict`` whose keys and value types are those of the
            kind's typed attributes (``op_def(op).attrs``), checked when the node is
            made.
        params: parameter count read from the model's weights, or ``None`` where the
            frontend does not know it (the cost model then uses its formula).
        layer: the user-facing name findings report (Keras layer name, ONNX node name).
        source_class: the class or op type it came from (``"Conv2D"``, ``"Conv"``).
    """

    name: str
    op: str
    inputs: list = dataclasses.field(default_factory=list)
    input_shapes: list = dataclasses.field(default_factory=list)
    output_shape: Shape = ()
    attrs: dict = dataclasses.field(default_factory=dict)
    params: Optional[int] = None
    layer: str = ""
    source_class: str = ""

    def __post_init__(self):
        from keras_cnnkit.analysis.ops import check_attrs
        check_attrs(self.op, self.attrs)

    @property
    def data_format(self) -> str:
        """``channels_last`` unless the node says otherwise."""
        return self.attrs.get("data_format", "channels_last")

    def channels(self, shape: Optional[Shape] = None) -> Optional[int]:
        """Channel count of ``shape`` (default: the output shape)."""
        shape = self.output_shape if shape is None else shape
        if not shape:
            return None
        return shape[0] if self.data_format == "channels_first" else shape[-1]

    def in_channels(self) -> Optional[int]:
        """Channel count of the first input."""
        return self.channels(self.input_shapes[0]) if self.input_shapes else None

    def spatial(self, shape: Optional[Shape] = None) -> tuple:
        """Spatial dims of ``shape`` (default: the output shape)."""
        shape = self.output_shape if shape is None else shape
        if not shape:
            return ()
        return tuple(shape[1:]) if self.data_format == "channels_first" else tuple(shape[:-1])

    def attr(self, key: str, default: Any = None) -> Any:
        """``attrs.get`` shorthand."""
        return self.attrs.get(key, default)


#: Frontends whose graphs come from files, and so are checked against the budgets.
_BUDGETED_FRONTENDS = ("file", "onnx")


@dataclasses.dataclass
class Graph:
    """A model as a DAG of :class:`Node`, kept in topological order.

    Attributes:
        name: the model's name.
        nodes: node name → node, in topological order.
        inputs / outputs: names of the graph's input and output nodes.
        source: where it came from (a path, or ``"<keras model>"``).
        frontend: which frontend made it (``"keras"``, ``"file"``, ``"onnx"``).
        notes: one line each, what the frontend assumed in reading the model (a default
            input size it applied, a dimension it could not know) — shown with the
            report, so that no assumption is silent.
        source_lines: layer name → the 1-based line of the source text (a JSON model
            config, or a ``.keras`` archive's ``config.json``) that names it; empty
            where the source is not text (``.h5``, ONNX, live models).
    """

    name: str = "model"
    nodes: dict = dataclasses.field(default_factory=dict)
    inputs: list = dataclasses.field(default_factory=list)
    outputs: list = dataclasses.field(default_factory=list)
    source: str = ""
    frontend: str = ""
    notes: list = dataclasses.field(default_factory=list)
    source_lines: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self._consumers = None

    def add(self, node: Node) -> Node:
        """Append ``node``; its inputs must already be in the graph.

        A graph read from a file (``frontend`` ``"file"`` or ``"onnx"``) checks each node
        against the budgets (:func:`keras_cnnkit.budgets.check_node`).
        """
        if self.frontend in _BUDGETED_FRONTENDS:
            check_node(self.source, node, len(self.nodes) + 1)
        if node.name in self.nodes:
            raise ValueError(f"duplicate node name {node.name!r}")
        for src in node.inputs:
            if src not in self.nodes:
                raise ValueError(f"node {node.name!r} reads unknown node {src!r}")
        self.nodes[node.name] = node
        self._consumers = None
        return node

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def producers(self, node: Node) -> list:
        """The nodes feeding ``node``, in argument order."""
        return [self.nodes[n] for n in node.inputs]

    def consumers(self, node: Node) -> list:
        """The nodes reading ``node``'s output."""
        if self._consumers is None:
            self._consumers = {name: [] for name in self.nodes}
            for n in self.nodes.values():
                for src in n.inputs:
                    self._consumers[src].append(n)
        return list(self._consumers[node.name])

    def single_consumer(self, node: Node) -> Optional[Node]:
        """The only consumer of ``node``, or ``None`` if it has zero or several."""
        cons = self.consumers(node)
        return cons[0] if len(cons) == 1 else None
