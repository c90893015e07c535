"""ONNX shape inference within the budgets (:mod:`keras_cnnkit.budgets`).

``onnx.shape_inference.infer_shapes`` is C++ that records a shape for every tensor and,
with data propagation, one entry per element of 1-D tensors: a graph of a few hundred
bytes can make it allocate gigabytes (ranks that grow along an ``Unsqueeze`` chain, a
``Concat`` of a declared ``[10⁸]`` input).  :func:`check_shape_inference` bounds what it
may record (``max-shape-dims``) and what constant folding may create
(``max-const-elements``) with one pass over the nodes in Python, before the library runs.
"""
from __future__ import annotations

from typing import Optional

from keras_cnnkit.analysis.frontends.budget_checks import element_count
from keras_cnnkit.analysis.frontends.onnx_base import attr, reshape_target, value_shape
from keras_cnnkit.analysis.frontends.onnx_eval import evaluate
from keras_cnnkit.budgets import BudgetError, check, check_int64, current
from keras_cnnkit.errors import ModelFileError

#: Unary element-wise ops: the output has the input's shape.
_SAME_SHAPE = frozenset({
    "Identity", "Cast", "CastLike", "Relu", "Sigmoid", "Tanh", "Clip", "Softmax",
    "LogSoftmax", "LeakyRelu", "PRelu", "Elu", "Selu", "HardSigmoid", "HardSwish",
    "Softplus", "Softsign", "Gelu", "Mish", "Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal",
    "Floor", "Ceil", "Round", "Not", "Sign", "Erf", "Dropout", "CumSum", "Trilu",
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "LRN"})
#: Element-wise ops of several tensors: the broadcast shape.
_BROADCAST = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Pow",
                        "Where", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
                        "And", "Or", "Xor", "Mod", "BitShift"})
#: Ops whose output keeps the rank of their first input (its dims may change).
_RANK_KEEPING = frozenset({
    "Slice", "Transpose", "Tile", "Squeeze", "Pad", "Resize", "Upsample", "Conv",
    "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceProd", "ReduceL2", "ArgMax",
    "ArgMin", "TopK", "Split", "DepthToSpace", "SpaceToDepth", "MatMul", "Gemm", "Concat"})
#: Constant-folding ops whose output elements count against ``max-const-elements``.
_CREATING = frozenset({"ConstantOfShape", "Range", "Concat", "Gather", "Expand", "Tile"}
                      | _BROADCAST)
#: Ops whose 1-D outputs ONNX's data propagation writes element by element (measured:
#: ``Concat``, ``Add`` and ``Slice`` do; unary element-wise ops, ``Identity``, ``Cast``,
#: ``ConstantOfShape`` and ``Range`` do not; the others here are assumed to).
_PROPAGATING = frozenset({"Concat", "Add", "Sub", "Mul", "Div", "Slice", "Gather",
                          "Squeeze", "Unsqueeze", "Expand", "Tile", "Reshape", "Shape",
                          "Size", "Max", "Min"})
_SMALL = 4096
_GRAPH, _GRAPHS = 5, 10   # AttributeProto types of subgraphs


class _Tensor:
    """What the pre-pass knows of a tensor: its shape (dims may be ``None``) or only its
    rank, whether it is a constant, and its value when small."""

    __slots__ = ("shape", "rank", "value", "const")

    def __init__(self, shape=None, rank=None, value=None, const=False):
        self.shape = None if shape is None else tuple(
            d if isinstance(d, int) and d >= 0 else None for d in shape)
        self.rank = len(self.shape) if self.shape is not None else rank
        self.value = value
        self.const = const

    @property
    def static(self) -> bool:
        """Whether every dimension is known."""
        return self.shape is not None and None not in self.shape

    @property
    def size(self) -> Optional[int]:
        """Elements, when the shape is static."""
        return element_count(self.shape) if self.static else None

    @property
    def length(self) -> Optional[int]:
        """Elements of a 1-D tensor of known length (what data propagation writes)."""
        return self.shape[0] if self.rank == 1 and self.static else None


def check_shape_inference(source: str, model) -> None:
    """Before ``onnx.shape_inference.infer_shapes`` runs on ``model``: bound what it may
    record (``max-shape-dims``) and what constant folding may create
    (``max-const-elements``).

    ONNX records a shape per tensor, so ranks that grow along the graph (an
    ``Unsqueeze`` chain, a ``ConstantOfShape`` of a long constant) cost memory per node;
    its data propagation writes one entry per element of 1-D tensors (a ``Concat`` of a
    declared ``[10⁸]`` input or of a ``Range``).  One pass over the nodes, in order,
    tracks shapes where they are static (declared, constant, or through the shape ops),
    ranks otherwise, and the small constant values shape computations fold to, and
    refuses the model before the library allocates.  (What only ONNX's inference could
    know — the static shape of a convolution's output — is not tracked.)
    """
    _ShapePass(source, model).run()


class _ShapePass:
    def __init__(self, source: str, model):
        self.source = source
        self.model = model
        self.tensors: dict = {}
        self.dims = 0
        self.limit = current().max_shape_dims

    def run(self) -> None:
        """Walk the whole model: initializers, declared tensors, then the nodes."""
        graph = self.model.graph
        for init in graph.initializer:
            self.tensors[init.name] = _Tensor(tuple(init.dims), value=_small_value(init),
                                              const=True)
        for value in list(graph.input) + list(graph.value_info) + list(graph.output):
            shape = value_shape(value)
            if shape is not None and value.name not in self.tensors:
                tensor = _Tensor(shape)
                self.charge(tensor, f"tensor {value.name[:60]!r}", propagated=False)
                self.tensors[value.name] = tensor
        self.walk(graph.node)

    def walk(self, nodes) -> None:
        """Visit ``nodes`` in order (and the subgraphs of control-flow ops)."""
        for node in nodes:
            for attribute in node.attribute:   # Loop, If, Scan bodies are inferred too
                if attribute.type == _GRAPH:
                    self.walk(attribute.g.node)
                elif attribute.type == _GRAPHS:
                    for sub in attribute.graphs:
                        self.walk(sub.node)
            outputs = self.visit(node)
            for name, tensor in zip(node.output, outputs):
                if name:
                    self.charge(tensor, f"node {node.name or node.op_type!r} "
                                        f"({node.op_type})", node.op_type in _PROPAGATING)
                    self.tensors[name] = tensor

    def charge(self, tensor: _Tensor, what: str, propagated: bool = True) -> None:
        """Count a tensor's dims (and its elements, when data propagation writes them)."""
        self.dims += (tensor.rank or 0) + ((tensor.length or 0) if propagated else 0)
        if self.dims > self.limit:
            raise BudgetError(self.source, "max-shape-dims", self.dims, self.limit,
                              f"ONNX shape inference would record {self.dims:,} "
                              f"dimensions by {what}")

    def visit(self, node) -> list:
        """What the pass knows of each output of ``node``."""
        ins = [self.tensors.get(name) if name else None for name in node.input]
        op = node.op_type
        if op == "Constant":
            return [self.constant(node)]
        if op in ("Shape", "Size"):
            return [_shape_value(node, ins[0] if ins else None)]
        shape, rank = _infer(node, ins)
        const = bool(ins) and all(t is not None and t.const for t in ins if t is not None)
        first = _Tensor(shape, rank, const=const)
        if const and op in _CREATING and first.size is not None:
            size = first.size
            check_int64(self.source, size, f"node {node.name or op!r} ({op}) output")
            check(self.source, "max-const-elements", size,
                  f"node {node.name or op!r} ({op}) would create {size:,} elements")
        if const and (first.size is None or first.size <= _SMALL):
            first.value = self.evaluate(node, ins)
            if first.value is not None:
                first.shape, first.rank = tuple(first.value.shape), first.value.ndim
        return [first] + [_Tensor(rank=rank) for _ in node.output[1:]]

    def constant(self, node) -> _Tensor:
        """A ``Constant``: its dims, and its value when small."""
        for attribute in node.attribute:
            if attribute.name == "value":
                dims = tuple(attribute.t.dims)
                if element_count(dims) > _SMALL:
                    return _Tensor(dims, const=True)
            elif attribute.name == "sparse_value":
                return _Tensor(tuple(attribute.sparse_tensor.dims), const=True)
        value = self.evaluate(node, [])
        return _Tensor(None if value is None else value.shape, value=value, const=True)

    def evaluate(self, node, ins: list):
        """The frontend's own folding of a small constant op (``None`` if it cannot)."""
        values = [None if t is None else t.value for t in ins]
        if any(v is None and t is not None for v, t in zip(values, ins)):
            return None
        try:
            result = evaluate(node, values, self.source)
        except ModelFileError:
            raise
        except Exception:  # pylint: disable=broad-exception-caught
            return None    # the converter meets (and reports) the same problem
        value = result[0] if result else None
        return value if value is not None and getattr(value, "size", 0) <= _SMALL else None


def _small_value(init):
    if element_count(init.dims) > _SMALL or init.external_data or init.data_location == 1:
        return None
    from onnx import numpy_helper
    try:
        return numpy_helper.to_array(init)
    except Exception:  # pylint: disable=broad-exception-caught
        return None   # unreadable data: the converter says so


def _shape_value(node, source: Optional[_Tensor]) -> _Tensor:
    import numpy as np
    if node.op_type == "Size":
        size = source.size if source is not None else None
        return _Tensor((), value=None if size is None else np.array(size), const=True)
    if source is None or source.rank is None:
        return _Tensor(rank=1)
    dims = range(source.rank)[slice(attr(node, "start", 0), attr(node, "end", None))]
    if source.static:
        return _Tensor((len(dims),), value=np.array([source.shape[i] for i in dims],
                                                    dtype=np.int64), const=True)
    return _Tensor((len(dims),))


def _ints_of(tensor: Optional[_Tensor]) -> Optional[list]:
    if tensor is None or tensor.value is None:
        return None
    try:
        return [int(v) for v in tensor.value.reshape(-1)]
    except (TypeError, ValueError, OverflowError):
        return None


def _broadcast(shapes: list) -> Optional[tuple]:
    if any(s is None for s in shapes):
        return None
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        sizes = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        out.append(None if None in sizes else max(sizes))
    return tuple(out)


def _infer(node, ins: list) -> tuple:
    """``(shape or None, rank or None)`` of the first output, where this pass can tell;
    ranks are upper bounds."""
    op = node.op_type
    first = ins[0] if ins else None
    shapes = [t.shape if t is not None else None for t in ins if t is not None]
    ranks = [t.rank for t in ins if t is not None and t.rank is not None]
    longest = max(ranks, default=None)
    if op in _SAME_SHAPE and first is not None:
        return first.shape, first.rank
    if op in _BROADCAST:
        return _broadcast(shapes) if shapes else None, longest
    if op == "ConstantOfShape":
        dims = _ints_of(first)
        if dims is not None:
            return tuple(dims), len(dims)
        return None, first.length if first is not None else None
    if op == "Range":
        bounds = [_ints_of(t) for t in ins[:3]]
        if all(b is not None and len(b) == 1 for b in bounds) and len(bounds) == 3:
            start, limit, delta = (b[0] for b in bounds)
            count = max(-(-(limit - start) // delta), 0) if delta else 0
            return (count,), 1
        return None, 1
    if op == "Concat":
        axis = attr(node, "axis", 0)
        if shapes and all(s is not None for s in shapes) and len(set(map(len, shapes))) == 1 \
                and shapes[0]:
            axis %= len(shapes[0])
            sizes = [s[axis] for s in shapes]
            total = None if None in sizes else sum(sizes)
            return shapes[0][:axis] + (total,) + shapes[0][axis + 1:], len(shapes[0])
        return None, longest
    if op in ("Expand", "Tile"):
        values = _ints_of(ins[1]) if len(ins) > 1 else None
        if first is None or first.shape is None or values is None:
            return None, (max(longest or 0, len(values)) if values else longest)
        if op == "Tile":
            if len(values) != len(first.shape):
                return None, first.rank
            return tuple(None if d is None else d * r for d, r in zip(first.shape, values)), \
                first.rank
        return _broadcast([first.shape, tuple(values)]), max(first.rank, len(values))
    if op == "Gather" and len(ins) > 1 and first is not None and ins[1] is not None:
        if first.shape is not None and ins[1].shape is not None and first.shape:
            axis = attr(node, "axis", 0) % len(first.shape)
            return first.shape[:axis] + ins[1].shape + first.shape[axis + 1:], None
        if first.rank is not None and ins[1].rank is not None:
            return None, first.rank + ins[1].rank - 1
        return None, None
    if op == "Reshape":
        target = _ints_of(ins[1]) if len(ins) > 1 else None
        if target is not None:
            return (_reshaped(first, target), len(target))
        return None, (ins[1].length if len(ins) > 1 and ins[1] is not None else longest)
    if op == "Flatten" and first is not None:
        axis = attr(node, "axis", 1)
        if first.static and first.rank:
            axis %= first.rank + 1
            return (element_count(first.shape[:axis]), element_count(first.shape[axis:])), 2
        return None, 2
    if op in ("Unsqueeze", "Squeeze"):
        axes = attr(node, "axes")
        if axes is None and len(ins) > 1:
            axes = _ints_of(ins[1])
        return _squeezed(op, first, axes)
    if op in _RANK_KEEPING or longest is None:
        return None, longest
    return None, longest + 1   # an op not modelled here: at most one axis more


def _reshaped(first: Optional[_Tensor], target: list) -> Optional[tuple]:
    if first is None or not first.static:
        return tuple(t if t > 0 else None for t in target)
    return reshape_target(first.shape, target, False)


def _squeezed(op: str, first: Optional[_Tensor], axes) -> tuple:
    if first is None or first.rank is None:
        return None, None
    if axes is None:
        return None, first.rank if op == "Squeeze" else None
    if op == "Squeeze":
        if first.shape is None:
            return None, first.rank
        drop = {a % first.rank for a in axes} if first.rank else set()
        return tuple(d for i, d in enumerate(first.shape) if i not in drop), \
            first.rank - len(drop)
    rank = first.rank + len(axes)
    if first.shape is None:
        return None, rank
    inserted = {a % rank for a in axes}
    rest = iter(first.shape)
    return tuple(1 if i in inserted else next(rest, None) for i in range(rank)), rank
