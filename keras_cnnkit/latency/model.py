"""The latency model: a node's and a fragment's predicted time on a device profile.

Time of one node of latency class ``c`` (:func:`~keras_cnnkit.latency.classes.op_class`)
at batch ``b``, in the profile's dtype::

    t = launch[c] + hypot(max(F / (peak · η_F[c]), B / (bandwidth · η_B[c])),
                          D / rate[c])

* ``F``: the cost model's FLOPs of the node (per sample) × ``b``
  (:func:`keras_cnnkit.analysis.cost.node_cost`; nothing here counts FLOPs itself);
* ``B``: the cost model's bytes moved, its activation part × ``b`` plus its weights once
  (weights are read once per call whatever the batch), at the profile's bytes per
  element; ``B = 0`` for views;
* the roofline term ``max(F/peak, B/bandwidth)`` (Williams, Waterman and Patterson,
  *Roofline*, CACM 2009) with an efficiency per class fitted on measurements, and a
  per-kernel ``launch`` term: below about 0.2 ms a GPU kernel's time is its launch, not
  its work (nn-Meter, MobiSys 2021, predicts whole models from per-kernel models the
  same way);
* a depth term ``D / rate`` on a GPU: ``D`` is the FLOPs of one output element (the
  length of its reduction).  However many outputs run in parallel, the last ones to be
  scheduled still run their whole reduction after the throughput-bound work, so a deep
  reduction with few outputs (a 7×7 conv on a 7×7 map at batch 1) takes time in
  proportion to ``D``, not to its FLOPs.  The two overlap partly: they combine as
  their p-norm, ``p`` the profile's ``depth_norm``; 2 (``hypot``, the default) predicted
  the held-out H100 shapes best of ``max`` (full overlap, ``depth_norm: null``), the
  plain sum and the 1.5- and 3-norms (leave-one-shape-out over the training shapes:
  ``tools/fit_latency_profiles.py forms``, in ``benchmarks/results_latency_model.md``).
  A CPU profile has no depth rate (``D / rate = 0``);
* for a ``conv`` node, η_F and the rate are scaled for its kernel size
  (:func:`kernel_scales`: a fitted factor per kernel size, else a power law in taps);
* class ``none`` (views, dropout at inference) runs no kernel and takes 0.

Fusion.  An XLA-style compiler fuses an element-wise op (class ``elementwise`` or
``norm``) into the kernel of its producer when that producer has no other consumer:
such a node costs ``fusion["after_compute"]`` (producer a conv, dense...) or
``fusion["after_elementwise"]`` (producer another element-wise op) times its unfused
time.  Views in between (dropout, reshape) are looked through.

Fragment.  A fragment's time is the sum of its nodes' times, plus, for a fragment timed
on its own as a compiled program (``standalone=True``, what ``--benchmark`` measures),
the profile's ``call_overhead_ms`` (dispatch and synchronisation of one call).  A fix
that adds kernels therefore costs their launches: on a GPU at batch 1 that can outweigh
a large FLOP saving.

A node whose cost or class is unknown (opaque layer) has unknown time; a fragment that
holds one has ``ms = None`` and lists it in ``unknown``.  Nothing unknown is counted as 0.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from keras_cnnkit.analysis.cost import node_cost, weight_count
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.latency.classes import COMPUTE_CLASSES, FUSABLE_CLASSES, op_class
from keras_cnnkit.latency.profile import Profile

#: Fusion roles (keys of ``Profile.fusion``).
AFTER_COMPUTE, AFTER_ELEMENTWISE = "after_compute", "after_elementwise"


@dataclasses.dataclass(frozen=True)
class Work:
    """What one node does at one batch size.

    Attributes:
        op_class: its latency class (``None``: unknown).
        flops: FLOPs of the whole batch (``None``: unknown).
        bytes: bytes moved for the whole batch at the profile's element width.
        depth: FLOPs per output element (the length of one output's reduction).
        taps: the kernel's size (taps of a convolution; 1 for other ops).
        lanes: output channels per group of a conv, units of a dense layer (``inf`` for
            other ops): what a kernel tile is filled with.
        kernel: a ``conv`` node's kernel size as :func:`kernel_key` writes it (``""`` for
            other classes).
    """

    op_class: Optional[str]
    flops: Optional[float]
    bytes: Optional[float]
    depth: float = 0.0
    taps: int = 1
    lanes: float = np.inf
    kernel: str = ""

    @property
    def known(self) -> bool:
        """True when class, FLOPs and bytes are all known."""
        return self.op_class is not None and self.flops is not None and self.bytes is not None


def node_work(node: Node, batch: int, dtype_bytes: int = 4) -> Work:
    """The FLOPs and bytes of ``node`` at ``batch`` (from the cost model), at
    ``dtype_bytes`` per element."""
    cls = op_class(node)
    cost = node_cost(node)
    if cls is None or not cost.known or cost.flops is None or cost.bytes_moved is None:
        return Work(cls, None, None)
    width = node.attrs.get("dtype_bytes", 4)
    weights = (weight_count(node) or 0) if cost.bytes_moved else 0
    activations = max(cost.bytes_moved / width - weights, 0)
    outputs = (cost.activation_bytes or 0) / width
    taps = 1
    for k in node.attrs.get("kernel") or ():
        taps *= k
    lanes = np.inf
    if cls in ("conv", "pointwise", "grouped"):
        lanes = node.attrs["filters"] / (node.attrs.get("groups", 1) or 1)
    elif cls == "dense":
        lanes = node.attrs["units"]
    return Work(cls, float(batch * cost.flops),
                float((batch * activations + weights) * dtype_bytes),
                cost.flops / outputs if outputs else 0.0, taps, float(lanes),
                kernel_key(node.attrs.get("kernel")) if cls == "conv" else "")


def kernel_key(kernel) -> str:
    """The key of a kernel size in a profile's ``kernel_factors``: its sides, smaller
    first (``"1x7"`` for both 1×7 and 7×1: measurements pair them, as a factorised
    conv does, and cannot tell them apart); ``""`` for none."""
    return "x".join(str(int(k)) for k in sorted(kernel)) if kernel else ""


def taps_scale(taps, exponent):
    """``(taps / 9) ** -exponent``: the factor on a conv's compute efficiency and depth
    rate for its kernel size (1 for a 3×3 kernel)."""
    return (np.asarray(taps, dtype=float) / 9.0) ** -exponent


def kernel_scales(params, taps, kernels) -> tuple:
    """``(compute, depth)``: the factors on a conv's compute efficiency and depth rate
    for its kernel, on class figures ``params`` (a
    :class:`~keras_cnnkit.latency.profile.ClassParams`): the fitted factors of its size
    where ``params.kernel_factors`` holds them, else the ``taps_exponent`` power law
    (:func:`taps_scale`).  ``taps`` and ``kernels`` (:func:`kernel_key`) are numbers or arrays
    of one entry per node."""
    depth_exponent = (params.taps_exponent if params.depth_taps_exponent is None
                      else params.depth_taps_exponent)
    compute = taps_scale(taps, params.taps_exponent)
    depth = taps_scale(taps, depth_exponent)
    for key, factor in (params.kernel_factors or {}).items():
        hit = np.asarray(kernels, dtype=object) == key
        compute = np.where(hit, factor["compute"], compute)
        depth = np.where(hit, factor.get("depth", factor["compute"]), depth)
    if np.ndim(taps) == 0:
        return float(compute), float(depth)
    return compute, depth


def tile_scale(lanes, tile):
    """``min(1, lanes / tile)``: the factor on the compute efficiency of a kernel whose
    tiles are only partly filled (``tile = 0``: no effect)."""
    lanes = np.asarray(lanes, dtype=float)
    tile = np.asarray(tile, dtype=float)
    return np.where(tile > 0, np.minimum(1.0, lanes / np.where(tile > 0, tile, 1.0)), 1.0)


def roofline_terms(flops, nbytes, depth, peak_flops, bandwidth, compute_efficiency,
                   memory_efficiency, depth_rate) -> tuple:
    """``(F / (peak · η_F), B / (bandwidth · η_B), depth / depth_rate)`` in milliseconds:
    the compute, memory and parallelism floors of a kernel.  Works element-wise on
    numpy arrays too (``depth_rate = inf``: no parallelism floor)."""
    compute = 1e3 * np.asarray(flops, dtype=float) / (peak_flops * compute_efficiency)
    memory = 1e3 * np.asarray(nbytes, dtype=float) / (bandwidth * memory_efficiency)
    serial = 1e3 * np.asarray(depth, dtype=float) / depth_rate
    return compute, memory, serial


def kernel_ms(flops, nbytes, depth, peak_flops, bandwidth, compute_efficiency,
              memory_efficiency, depth_rate, launch_ms, norm: Optional[float] = 2.0):
    """``launch + ‖max(F / (peak · η_F), B / (bandwidth · η_B)), depth /
    depth_rate‖_p`` in milliseconds, ``p = norm`` (``None``: the maximum; see the module
    docstring).

    The one formula of the model; works element-wise on numpy arrays (the fit calls it
    on every measured node at once) as well as on numbers.
    """
    compute, memory, serial = roofline_terms(flops, nbytes, depth, peak_flops, bandwidth,
                                             compute_efficiency, memory_efficiency,
                                             depth_rate)
    work = np.maximum(compute, memory)
    if norm is None:
        return launch_ms + np.maximum(work, serial)
    if norm == 2.0:
        return launch_ms + np.hypot(work, serial)
    top = np.maximum(np.maximum(work, serial), 1e-300)
    return launch_ms + top * ((work / top) ** norm + (serial / top) ** norm) ** (1.0 / norm)


def fusion_roles(nodes: Sequence[Node],
                 consumers: Optional[Callable[[str], int]] = None) -> dict:
    """Node name → fusion role (:data:`AFTER_COMPUTE`, :data:`AFTER_ELEMENTWISE`) for the
    element-wise nodes of ``nodes`` that a compiler fuses into their producer.

    Args:
        nodes: the nodes (topological order).
        consumers: node name → number of consumers; default: counted within ``nodes``
            (right for a fragment; pass the graph's count for a whole model).
    """
    by_name = {n.name: n for n in nodes}
    classes = {n.name: op_class(n) for n in nodes}
    if consumers is None:
        counts: dict = {}
        for n in nodes:
            for src in n.inputs:
                counts[src] = counts.get(src, 0) + 1

        def consumers(name: str) -> int:  # pylint: disable=function-redefined
            return counts.get(name, 0)

    def producer(name: str) -> Optional[Node]:
        """The kernel producing ``name``'s value, through views; ``None`` when it is
        outside ``nodes`` or read by more than one consumer on the way."""
        while name in by_name and consumers(name) == 1:
            if classes[name] != "none":
                return by_name[name]
            inputs = by_name[name].inputs
            if len(inputs) != 1:
                return None
            name = inputs[0]
        return None

    roles = {}
    for node in nodes:
        if classes[node.name] not in FUSABLE_CLASSES:
            continue
        found = []
        for src in node.inputs:
            prod = producer(src)
            if prod is not None:
                found.append(classes[prod.name])
        if any(c in FUSABLE_CLASSES for c in found):
            roles[node.name] = AFTER_ELEMENTWISE
        elif any(c in COMPUTE_CLASSES for c in found):
            roles[node.name] = AFTER_COMPUTE
    return roles


@dataclasses.dataclass(frozen=True)
class NodeTime:
    """One node's predicted time.

    Attributes:
        name / op_class: the node and its latency class.
        flops / bytes: its work at the batch size (``None``: unknown).
        compute_ms / memory_ms / depth_ms / launch_ms: the roofline's compute, memory and
            parallelism floors, and the launch term.
        fusion: the fusion role and factor applied, or ``None``.
        ms: the predicted time (``None``: unknown).
    """

    name: str
    op_class: Optional[str]
    flops: Optional[float]
    bytes: Optional[float]
    compute_ms: Optional[float]
    memory_ms: Optional[float]
    depth_ms: Optional[float]
    launch_ms: Optional[float]
    fusion: Optional[str]
    ms: Optional[float]

    @property
    def bound(self) -> Optional[str]:
        """``"launch"``, ``"compute"``, ``"memory"`` or ``"depth"``: the largest term."""
        if self.ms is None or self.compute_ms is None:
            return None
        terms = {"launch": self.launch_ms, "compute": self.compute_ms,
                 "memory": self.memory_ms, "depth": self.depth_ms}
        return max(terms, key=terms.get)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {**dataclasses.asdict(self), "bound": self.bound}


def class_figures(profile: Profile, work: Work) -> tuple:
    """``(η_F, η_B, depth_rate, launch_ms)`` of ``work``'s class on ``profile``, with the
    conv kernel-size scaling applied (``depth_rate = inf`` when the class has none)."""
    p = profile.params(work.op_class)
    scale, depth_scale = kernel_scales(p, work.taps, work.kernel)
    tiles = float(tile_scale(work.lanes, p.channel_tile or 0))
    rate = np.inf if p.depth_rate is None else p.depth_rate * depth_scale
    return p.compute_efficiency * scale * tiles, p.memory_efficiency, rate, p.launch_ms


def predict_node(node: Node, profile: Profile, batch: int = 1,
                 fusion: Optional[str] = None) -> NodeTime:
    """The predicted time of one node at ``batch`` on ``profile``.

    Args:
        fusion: its fusion role (see :func:`fusion_roles`), if it is fused.
    """
    return _work_time(node.name, node_work(node, batch, profile.dtype_bytes), profile,
                      fusion)


def _work_time(name: str, work: Work, profile: Profile, fusion: Optional[str]) -> NodeTime:
    if not work.known:
        return NodeTime(name, work.op_class, work.flops, work.bytes, None, None, None, None,
                        None, None)
    if work.op_class == "none":
        return NodeTime(name, "none", work.flops, work.bytes, 0.0, 0.0, 0.0, 0.0, None, 0.0)
    eff_f, eff_b, rate, launch = class_figures(profile, work)
    terms = roofline_terms(work.flops, work.bytes, work.depth, profile.peak_flops,
                           profile.bandwidth, eff_f, eff_b, rate)
    ms = float(kernel_ms(work.flops, work.bytes, work.depth, profile.peak_flops,
                         profile.bandwidth, eff_f, eff_b, rate, launch, profile.depth_norm))
    if fusion is not None:
        ms *= profile.fusion[fusion]
    return NodeTime(name, work.op_class, work.flops, work.bytes, float(terms[0]),
                    float(terms[1]), float(terms[2]), launch, fusion, ms)


def passthrough_output(nodes: Sequence[Node]) -> Optional[Node]:
    """The last node of ``nodes`` when no kernel of ``nodes`` computes its value (it is
    an input of the fragment, through views only); else ``None``.

    A program compiled on its own (XLA) cannot return an input buffer it does not own:
    it copies it, so such an output costs a copy when the fragment is timed standalone.
    """
    if not nodes:
        return None
    by_name = {n.name: n for n in nodes}
    name = nodes[-1].name
    while name in by_name:
        node = by_name[name]
        if op_class(node) != "none" or len(node.inputs) != 1:
            return None
        name = node.inputs[0]
    return nodes[-1]


def copy_work(node: Node, batch: int, dtype_bytes: int) -> Work:
    """The work of copying ``node``'s output (a read and a write of every element)."""
    elements = (node_cost(node).activation_bytes or 0) / node.attrs.get("dtype_bytes", 4)
    return Work("movement", 0.0, float(2 * batch * elements * dtype_bytes), 0.0, 1)


@dataclasses.dataclass(frozen=True)
class FragmentTime:
    """A fragment's (or a whole model's) predicted time on one profile.

    Attributes:
        profile: the profile's name; every prediction carries it.
        batch: the batch size.
        ms: the predicted time (``None`` when a node's time is unknown).
        call_overhead_ms: the share of ``ms`` that is the standalone call's overhead
            (0 when predicted as part of a larger program).
        nodes: one :class:`NodeTime` per node.
        unknown: names of the nodes whose time is unknown.
    """

    profile: str
    batch: int
    ms: Optional[float]
    call_overhead_ms: float
    nodes: tuple
    unknown: tuple

    @property
    def known(self) -> bool:
        """True when every node's time is known."""
        return not self.unknown

    def to_dict(self, per_node: bool = False) -> dict:
        """JSON-ready fields (``per_node`` adds the node rows)."""
        out = {"profile": self.profile, "batch": self.batch, "ms": self.ms,
               "call_overhead_ms": self.call_overhead_ms, "unknown": list(self.unknown)}
        if per_node:
            out["nodes"] = [n.to_dict() for n in self.nodes]
        return out


def predict_nodes(nodes: Iterable[Node], profile: Profile, batch: int = 1,
                  standalone: bool = True,
                  consumers: Optional[Callable[[str], int]] = None) -> FragmentTime:
    """The predicted time of ``nodes`` (a fragment, topological order) at ``batch``.

    Args:
        standalone: the fragment is timed as a compiled program of its own, as
            ``--benchmark`` times it: add the profile's per-call overhead, and the copy
            of an output that no kernel computes (:func:`passthrough_output`).
        consumers: see :func:`fusion_roles`.
    """
    nodes = list(nodes)
    roles = fusion_roles(nodes, consumers)
    times = tuple(predict_node(n, profile, batch, roles.get(n.name)) for n in nodes)
    copied = passthrough_output(nodes) if standalone else None
    if copied is not None:
        times += (_work_time(f"{copied.name} (copy)",
                             copy_work(copied, batch, profile.dtype_bytes), profile, None),)
    unknown = tuple(t.name for t in times if t.ms is None)
    overhead = profile.call_overhead_ms if standalone else 0.0
    ms = None if unknown else overhead + sum(t.ms for t in times)
    return FragmentTime(profile.name, batch, ms, overhead, times, unknown)


def predict_graph(graph: Graph, profile: Profile, batch: int = 1) -> FragmentTime:
    """The predicted time of a whole model's forward pass (one compiled call)."""
    return predict_nodes(list(graph), profile, batch, standalone=True,
                         consumers=lambda name: len(graph.consumers(graph[name])))


@dataclasses.dataclass(frozen=True)
class Speedup:
    """A predicted before/after comparison.

    Attributes:
        profile: the profile's name (a prediction is only as good as its profile).
        batch: the batch size.
        before_ms / after_ms: the predicted times (``None``: unknown).
        speedup: ``before_ms / after_ms`` (above 1: the replacement is faster).
        error: the profile's held-out error figures, as one line.
    """

    profile: str
    batch: int
    before_ms: Optional[float]
    after_ms: Optional[float]
    error: str = ""

    @property
    def speedup(self) -> Optional[float]:
        """``before / after`` (``None`` when either is unknown or ``after`` is 0)."""
        if self.before_ms is None or not self.after_ms:
            return None
        return self.before_ms / self.after_ms

    @property
    def ratio(self) -> Optional[float]:
        """``after / before``: the time ratio the benchmarks tabulate."""
        if self.after_ms is None or not self.before_ms:
            return None
        return self.after_ms / self.before_ms

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"profile": self.profile, "batch": self.batch, "before_ms": self.before_ms,
                "after_ms": self.after_ms, "predicted_speedup": self.speedup,
                "error": self.error}


def predict_speedup(before_nodes: Iterable[Node], after_nodes: Iterable[Node],
                    profile: Profile, batch: int = 1, standalone: bool = True) -> Speedup:
    """The predicted time of ``before_nodes`` against ``after_nodes`` at ``batch``.

    With ``standalone`` (the default) each side is predicted as its own compiled call,
    as ``--benchmark`` measures it; without, as part of a larger program (no call
    overhead), which is what the fix saves inside the model.
    """
    before = predict_nodes(before_nodes, profile, batch, standalone)
    after = predict_nodes(after_nodes, profile, batch, standalone)
    return Speedup(profile.name, batch, before.ms, after.ms, profile.error_summary())


def replacement_sides(graph: Graph, replacement) -> tuple:
    """``(before, after)`` node lists of a finding's ``replacement``: the graph nodes it
    removes, and its fragment.  When the fragment's output is one of its inputs (a fix
    that only removes nodes), ``after`` ends with an identity node reading it, as the
    benchmark's model of the fragment does."""
    before = [graph[name] for name in replacement.removed]
    after = list(replacement.nodes)
    if replacement.output not in {n.name for n in after}:
        shape = graph[replacement.output].output_shape
        after.append(Node(name=f"{replacement.output}_identity", op=OpKind.IDENTITY,
                          inputs=[replacement.output], input_shapes=[shape],
                          output_shape=shape, layer=f"{replacement.output}_identity",
                          source_class="Identity"))
    return before, after


def predict_replacement(graph: Graph, replacement, profile: Profile,
                        batches: Sequence[int] = (1, 32), standalone: bool = True) -> dict:
    """Batch → :class:`Speedup` of a finding's ``replacement`` (``Finding.replacement``)
    against the graph nodes it removes."""
    before, after = replacement_sides(graph, replacement)
    return {b: predict_speedup(before, after, profile, b, standalone) for b in batches}
