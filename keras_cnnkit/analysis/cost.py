"""The cost model: parameters, multiply-accumulates, FLOPs and memory of every IR node.

One model serves the summary and the rules: a finding's before/after figures are the
costs of the nodes it removes and of its replacement fragment, both computed here
(:func:`replacement_costs`).  Each kind's formulas are written once, in its definition in
:mod:`keras_cnnkit.analysis.ops` (``weights``, ``macs``, ``flops``, ``bytes_moved``); this
module applies them and adds them up.  The conventions they follow:

Parameters
    Always from the formula over the node's attributes (so that comparing the total with
    Keras' ``count_params()`` is a real check); a frontend's observed count
    (``Node.params``) is only compared against it (:attr:`ModelSummary.param_mismatches`),
    and used where no formula exists (opaque layers).  Conv: ``∏k · C_in/groups · C_out``
    (+ ``C_out`` bias); dense: ``in · units`` (+ ``units``); batch norm: ``C · (2 +
    center + scale)`` (moving mean and variance included, as Keras counts them);
    embedding: ``input_dim · output_dim``; layer / group norm: ``size · (center +
    scale)``; PReLU: its alpha; ``Normalization``: mean, variance and count; layer scale:
    ``C``.  A later call of a shared layer (``attrs["shares_weights_with"]``) has 0
    parameters of its own.

MACs
    Multiply-accumulates of convolutions and dense layers only: conv ``H_o·W_o·C_out ·
    ∏k · C_in/groups`` (depthwise: ``groups = C_in``), transposed conv ``H_i·W_i·C_in ·
    ∏k · C_out/groups``, dense ``in · units`` per row; deformable conv adds 4 MACs of
    bilinear sampling per (output position, kernel tap, input channel), and a modulated
    one 1 FLOP per the same for its mask.  Every other op
    has 0 MACs.

FLOPs — the convention (one FLOP is one elementary add, multiply, compare or
transcendental; inference mode)
    * conv / dense / transposed conv: ``2 × MACs``, + 1 per output element for the bias,
      + the fused activation's count per output element;
    * batch norm: 2 per element (its inference form, a per-channel scale and shift);
    * layer / group norm: 5 per element (mean, subtract, square, variance, normalise)
      + 1 for ``scale`` + 1 for ``center``; unit norm: 3 per element;
    * activations, per element: relu, relu6 (one clamp) 1; leaky_relu 2; prelu, sigmoid, elu,
      hard_sigmoid 4; selu, silu/swish, hard_silu, gelu, mish, softmax, log_softmax 5;
      softplus, softsign 3; tanh, exponential 1; linear 0 (the activation table,
      :mod:`keras_cnnkit.analysis.ops.activation_table`).  An activation not in this
      table has unknown cost;
    * layer scale (ConvNeXt's per-channel ``x · γ``): 1 per element;
    * element-wise merges (add, subtract, multiply, maximum, minimum): ``n_inputs − 1``
      per output element; average: ``n_inputs``;
    * pooling: ``∏pool_size`` per output element; global pooling: 1 per input element;
    * ``Rescaling`` / ``Normalization``: 2 per element (scale and shift);
    * bilinear up-sampling: 7 per output element (4 multiplies, 3 adds); nearest: 0;
    * data movement (embedding look-up, concat, reshape, flatten, transpose, slice, pad,
      crop, channel shuffle, identity, dropout at inference): 0.

    These are the counts TensorFlow's profiler makes for conv, matmul, bias add, the
    multiply and add of batch norm, element-wise ops, pooling and mean (softmax: 5);
    the profiler counts activations as 0 and per-channel constant work (BN's ``rsqrt``)
    that is folded here, so totals agree within a fraction of a percent on CNNs.

Memory (``float32``: 4 bytes per element unless ``attrs["dtype_bytes"]`` says otherwise)
    ``activation_bytes``: the node's output; ``bytes_moved``: reads of its inputs and
    weights plus the write of its output (0 for inputs and for pure views: reshape,
    flatten, identity, dropout).  ShuffleNet V2's guideline: FLOPs alone mislead,
    depthwise and group convolutions are memory-bound.

Unknown cost
    An opaque node, an unknown dimension or an activation outside the table gives a
    :class:`Cost` with ``known=False`` and ``None`` for what cannot be computed; the
    summary lists those nodes, and totals say which parts they leave out.  Nothing
    unknown is silently counted as 0.  An opaque node whose known sub-layers the live
    frontend ran (``attrs["inner_macs"]``, ``attrs["inner_flops"]``) contributes their
    MACs and FLOPs, lower bounds of its own (its cost stays unknown).
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Optional

from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.analysis.ops import Sizes, Trait, op_def
from keras_cnnkit.analysis.ops.activation_table import TABLE as _ACTIVATIONS
from keras_cnnkit.analysis.shapes import num_elements

#: FLOPs per element of each activation (from the activation table; linear is 0).
ACTIVATION_FLOPS = {None: 0, "linear": 0, **{row.name: row.flops for row in _ACTIVATIONS}}


@dataclasses.dataclass(frozen=True)
class Cost:
    """Costs of one node or a set of nodes.

    ``None`` marks a figure that cannot be computed; ``known`` is ``False`` when any
    figure of any node summed in is unknown.
    """

    params: Optional[int] = 0
    macs: Optional[int] = 0
    flops: Optional[int] = 0
    activation_bytes: Optional[int] = 0
    bytes_moved: Optional[int] = 0
    known: bool = True

    def __add__(self, other: "Cost") -> "Cost":
        def add(a, b):
            return None if a is None or b is None else a + b
        return Cost(add(self.params, other.params), add(self.macs, other.macs),
                    add(self.flops, other.flops),
                    add(self.activation_bytes, other.activation_bytes),
                    add(self.bytes_moved, other.bytes_moved), self.known and other.known)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return dataclasses.asdict(self)


def total(costs: Iterable[Cost]) -> Cost:
    """The sum of ``costs`` (``None`` wherever one of them is unknown)."""
    out = Cost()
    for c in costs:
        out = out + c
    return out


def node_params(node: Node) -> Optional[int]:
    """The parameter count of ``node`` by formula; ``None`` where none exists (opaque).

    A later call of a shared layer has 0 (its weights are the first call's).
    """
    if node.attrs.get("shares_weights_with"):
        return 0
    return weight_count(node)


def weight_count(node: Node) -> Optional[int]:
    """The number of weights ``node`` reads (shared or not), by formula."""
    definition = op_def(node.op)
    return definition.weights(node, definition.view(node.attrs))


def node_cost(node: Node) -> Cost:
    """The :class:`Cost` of one node (see the module docstring for the conventions)."""
    definition = op_def(node.op)
    attrs = definition.view(node.attrs)
    weights = definition.weights(node, attrs)
    params = 0 if attrs.shares_weights_with else weights
    opaque = definition.has(Trait.OPAQUE)
    if params is None and opaque:
        params = node.params
    out_elems = num_elements(node.output_shape)
    in_elems = [num_elements(s) for s in node.input_shapes]
    if opaque:
        return Cost(params, getattr(attrs, "inner_macs", None),
                    getattr(attrs, "inner_flops", None), None, None, False)
    if out_elems is None or any(e is None for e in in_elems):
        return Cost(params, None, None, None, None, False)
    sizes = Sizes(out_elems, tuple(in_elems))
    macs = definition.macs(node, attrs, sizes)
    flops = definition.flops(node, attrs, sizes, macs)
    moved = definition.bytes_moved(node, attrs, sizes, weights)
    return Cost(params, macs, flops, attrs.dtype_bytes * out_elems, moved,
                known=flops is not None and params is not None)


def nodes_cost(nodes: Iterable[Node]) -> Cost:
    """The summed cost of ``nodes``."""
    return total(node_cost(n) for n in nodes)


def replacement_costs(graph: Graph, removed: Iterable[str], nodes: Iterable[Node]) -> tuple:
    """``(before, after)``: the cost of the graph nodes ``removed`` and of ``nodes``.

    This is how every finding's before/after figures are computed: the same cost model
    over the replaced nodes and over the replacement fragment.
    """
    return nodes_cost(graph[n] for n in removed), nodes_cost(nodes)


@dataclasses.dataclass
class NodeSummary:
    """One row of the per-node summary."""

    name: str
    layer: str
    op: str
    source_class: str
    output_shape: Optional[tuple]
    cost: Cost
    observed_params: Optional[int] = None

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"name": self.name, "layer": self.layer, "op": self.op,
                "source_class": self.source_class,
                "output_shape": None if self.output_shape is None else list(self.output_shape),
                "observed_params": self.observed_params, **self.cost.to_dict()}


@dataclasses.dataclass
class ModelSummary:
    """Per-node and total costs of a model.

    Totals sum what is known: ``macs``/``flops``/``bytes_moved`` leave out the nodes in
    ``unknown`` (listed by name, never counted as 0 in silence), so they are lower bounds
    whenever :attr:`complete` is false (``costs_complete`` in :meth:`to_dict`);
    ``params`` adds, for nodes without a formula (opaque layers), the frontend's observed
    count and lists them in ``params_from_observed``.  ``notes`` are the graph's notes
    (what the frontend assumed, e.g. a default input size).
    """

    name: str
    nodes: list
    params: int
    macs: int
    flops: int
    activation_bytes: int
    peak_activation_bytes: int
    weight_bytes: int
    bytes_moved: int
    layer_count: int
    unknown: list
    params_from_observed: list
    param_mismatches: list
    notes: list = dataclasses.field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every node's cost is known."""
        return not self.unknown

    def node(self, name: str) -> NodeSummary:
        """The summary row of node ``name``."""
        for row in self.nodes:
            if row.name == name:
                return row
        raise KeyError(name)

    def to_dict(self, per_node: bool = True) -> dict:
        """JSON-ready fields (``per_node=False`` leaves the per-node rows out)."""
        out = {k: getattr(self, k) for k in (
            "name", "params", "macs", "flops", "activation_bytes", "peak_activation_bytes",
            "weight_bytes", "bytes_moved", "layer_count", "unknown", "params_from_observed")}
        out["costs_complete"] = self.complete
        out["param_mismatches"] = [dict(m) for m in self.param_mismatches]
        out["notes"] = list(self.notes)
        if per_node:
            out["nodes"] = [row.to_dict() for row in self.nodes]
        return out


def _peak_activation(graph: Graph, costs: dict) -> int:
    """Peak bytes of live tensors when the nodes run in order (freed after last use)."""
    last_use = {}
    for i, node in enumerate(graph):
        for src in node.inputs:
            last_use[src] = i
    for out in graph.outputs:
        last_use[out] = len(graph)
    live = peak = 0
    frees: dict = {}
    for i, node in enumerate(graph):
        size = costs[node.name].activation_bytes or 0
        live += size
        peak = max(peak, live)
        frees.setdefault(last_use.get(node.name, i), []).append(size)
        live -= sum(frees.pop(i, ()))
    return peak


def summarize(graph: Graph) -> ModelSummary:
    """Per-node and total costs of ``graph``."""
    rows, costs = [], {}
    params = macs = flops = act = moved = weights = 0
    unknown, from_observed = [], []
    by_layer: dict = {}
    for node in graph:
        cost = node_cost(node)
        costs[node.name] = cost
        rows.append(NodeSummary(node.name, node.layer or node.name, node.op,
                                node.source_class, node.output_shape, cost, node.params))
        formula = node_params(node)
        if formula is None:
            if node.params is not None:
                from_observed.append(node.name)
        else:
            group = by_layer.setdefault(node.layer or node.name, [0, None])
            group[0] += formula
            if node.params is not None:
                group[1] = (group[1] or 0) + node.params
        params += cost.params or 0
        weights += 4 * (cost.params or 0)
        if not cost.known:
            unknown.append(node.name)
        macs += cost.macs or 0
        flops += cost.flops or 0
        act += cost.activation_bytes or 0
        moved += cost.bytes_moved or 0
    mismatches = [{"layer": layer, "formula": f, "observed": o}
                  for layer, (f, o) in by_layer.items() if o is not None and o != f]
    layers = {n.layer or n.name for n in graph if not op_def(n.op).has(Trait.SOURCE)}
    return ModelSummary(graph.name, rows, params, macs, flops, act, _peak_activation(graph, costs),
                        weights, moved, len(layers), unknown, from_observed, mismatches,
                        list(graph.notes))
