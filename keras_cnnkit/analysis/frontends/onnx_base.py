"""Internals of the ONNX frontend: tensors, constants, and the helpers op handlers share.

See :mod:`keras_cnnkit.analysis.frontends.onnx_frontend` for what the frontend does.  An
activation tensor (:class:`Tensor`) knows the IR node holding it and how its physical
ONNX axes map to the logical (IR) shape; :class:`ConverterBase` holds one conversion's
state and emits IR nodes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.ops.activation_table import onnx_activations
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.shapes import ShapeError, infer_shape

#: ONNX activation op → canonical activation name (from the activation table).
ACTIVATIONS = onnx_activations()

#: ONNX element-wise op of several tensors → IR kind.
ELEMENTWISE_OPS = {"Add": OpKind.ADD, "Sum": OpKind.ADD, "Sub": OpKind.SUBTRACT,
                   "Mul": OpKind.MULTIPLY, "Max": OpKind.MAXIMUM, "Min": OpKind.MINIMUM,
                   "Mean": OpKind.AVERAGE}

#: ONNX ops whose layout is fixed: channels on axis 1, spatial axes after.
NCHW_OPS = ("Conv", "ConvTranspose", "BatchNormalization", "MaxPool", "AveragePool",
             "GlobalAveragePool", "GlobalMaxPool")

#: Ops whose output keeps the axis positions of their (first) input.
AXIS_KEEPING = frozenset(set(ACTIVATIONS) | set(ELEMENTWISE_OPS) | {
    "Identity", "Cast", "Clip", "PRelu", "Dropout", "Div", "Split", "Slice", "Pad",
    "Concat", "Resize", "Upsample"})


@dataclasses.dataclass
class Tensor:
    """An activation tensor: the IR node holding it and how its axes read.

    Attributes:
        node: the IR node whose output this is (possibly through views).
        shape: the physical ONNX shape, batch included (a symbolic batch reads 1);
            ``None`` when even the rank is unknown.
        order: the physical axes that make the logical (IR) shape, in logical order —
            batch and dummy singleton axes left out.  Views (transposes, singleton
            reshapes) change ``shape`` and ``order`` but not the logical shape, so a
            node's input shapes always equal its producers' output shapes.
        channel: the physical channel axis (``None`` if unknown).
        fmt: the layout to use where the order cannot tell (one logical axis).
        sole: this tensor is the only path out of its node (every tensor from the
            node's output to here has one consumer and none is a graph output).
    """

    node: str
    shape: Optional[tuple]
    order: tuple = ()
    channel: Optional[int] = None
    fmt: str = "channels_last"
    sole: bool = False

    def logical(self) -> Optional[tuple]:
        """The IR shape: batch-excluded, dummies dropped, in logical order."""
        if self.shape is None:
            return None
        return tuple(self.shape[a] for a in self.order)

    def data_format(self) -> str:
        """``channels_first`` when the channel axis leads the logical shape."""
        if self.channel in self.order and len(self.order) > 1:
            return "channels_first" if self.order[0] == self.channel else "channels_last"
        return self.fmt

    def channels(self) -> Optional[int]:
        """The channel count, where the channel axis is known."""
        if self.shape is None or self.channel is None or self.channel >= len(self.shape):
            return None
        return self.shape[self.channel]

    def index(self, axis: int) -> Optional[int]:
        """The logical position of physical ``axis`` (``None`` for batch or a dummy)."""
        return self.order.index(axis) if axis in self.order else None


def identity_order(shape: Optional[tuple]) -> tuple:
    """The logical order of a tensor whose physical axes are its logical ones."""
    return tuple(range(1, len(shape))) if shape else ()


#: ONNX element types of indices, shapes, bounds and masks (``TensorProto`` INT32,
#: INT64, UINT32, UINT64, BOOL): never parameters.  8- and 16-bit integers are not
#: among them: quantised weights are stored so.
_INDEX_TYPES = frozenset({6, 7, 12, 13, 9})


class Const:
    """A constant: an initializer, a ``Constant`` output or a folded value."""

    def __init__(self, dims: Sequence[int], proto=None, value=None):
        self.dims = tuple(int(d) for d in dims)
        self._proto = proto
        self._value = value
        self._index_type = (proto.data_type in _INDEX_TYPES if proto is not None else
                            value is not None and (value.dtype.kind == "b" or (
                                value.dtype.kind in "iu" and value.dtype.itemsize >= 4)))

    def is_parameter(self, tables: bool = True) -> bool:
        """Whether the constant holds parameters (learned numbers) rather than data.

        Not parameters: integer (32/64-bit) and boolean constants — shapes, slice
        bounds, indices, masks — and scalars (an exponent, an epsilon, a fill value;
        Keras' ``Rescaling`` has none either).  ``tables=False`` also excludes float
        constants whose every value is a multiple of ½: the stride, grid and anchor
        tables (``i + ½``) a detection head multiplies or adds (YOLOv8's ``strides`` and
        ``anchors``), not weights.
        """
        if self._index_type or self.size <= 1:
            return False
        if tables:
            return True
        value = self.value()
        if value is None or value.dtype.kind != "f":
            return True
        import numpy as np
        doubled = 2 * value.astype(np.float64)
        return not bool(np.all(np.isfinite(doubled)) and np.all(doubled == np.round(doubled)))

    @property
    def size(self) -> int:
        """Number of elements."""
        return prod(self.dims)

    def value(self):
        """The numpy value (read from the proto on first use); ``None`` when the data is
        not in the model.  External data is never read: a model file must not make the
        linter open other files."""
        if self._value is None and self._proto is not None:
            proto, self._proto = self._proto, None
            try:
                self._value = tensor_value(proto)
            except (ValueError, TypeError):
                self._value = None
        return self._value


class Renamed:
    """A stand-in ONNX node with another name and outputs (one IR node per Split output)."""

    def __init__(self, node, name: str, outputs: list):
        self.name = name
        self.op_type = node.op_type
        self.output = outputs
        self.input = node.input



#: Ops whose operands after the first are sizes or scales, never parameters.
_SIZE_OPERANDS = frozenset({"Resize", "Upsample", "Pad", "Reshape", "Expand", "Tile",
                            "Slice", "Clip", "TopK", "OneHot", "Range"})


class ConverterBase:
    """The state of one conversion and the helpers that emit IR nodes."""


    def __init__(self, proto, source: str, input_shape: Any):
        self.proto = proto
        self.source = source
        self.graph = Graph(name=proto.graph.name or "onnx_model", source=source,
                           frontend="onnx")
        self.consts: dict = {}
        self.tensors: dict = {}
        self.uses: dict = {}
        self.consumers: dict = {}
        self.producers: dict = {}
        self.absorbed: dict = {}
        self.outputs = {o.name for o in proto.graph.output}
        self.inferred: dict = {}
        self.input_shape = input_shape
        self.node_index = 0
        self.given: dict = {}
        #: IR reshape node → (its input tensor, its physical output shape): what a
        #: channel-shuffle match needs to see through the reshape (see
        #: ``MovementOps._shuffle_back``).
        self.reshape_sources: dict = {}


    def _unique(self, name: str, op_type: str = "node") -> str:
        base = name or f"{op_type}_{self.node_index}"
        out, k = base, 1
        while out in self.graph.nodes:
            k += 1
            out = f"{base}_{k}"
        return out

    def _single_use(self, tensor: str) -> bool:
        return self.uses.get(tensor, 0) == 1 and tensor not in self.outputs

    def _const(self, name: str) -> Optional[Const]:
        return self.consts.get(name) if name else None

    def _const_value(self, name: str):
        const = self._const(name)
        return None if const is None else const.value()

    def _input(self, node, i: int) -> str:
        return node.input[i] if len(node.input) > i else ""

    def _axes_of(self, node, rank: Optional[int]) -> Optional[list]:
        """The ``axes`` of a Squeeze/Unsqueeze/Reduce op (attribute or second input)."""
        axes = attr(node, "axes")
        if axes is None and self._input(node, 1):
            value = self._const_value(node.input[1])
            axes = None if value is None else [int(a) for a in value.reshape(-1)]
        if axes is None or rank is None:
            return axes
        return [a % rank for a in axes]

    def _shape_of(self, name: str) -> Optional[tuple]:
        shape = self.inferred.get(name)
        if shape is not None and shape and shape[0] is None:
            shape = (1,) + shape[1:]
        return shape

    def _out(self, node, like: Tensor, shape: Optional[tuple] = None, **changes) -> Tensor:
        """The output tensor of ``node``, laid out like ``like`` unless ``changes`` say."""
        shape = shape or self._shape_of(node.output[0]) or like.shape
        return dataclasses.replace(like, node="", shape=shape, sole=False, **changes)

    def _emit(self, onnx_node, op: str, inputs: list, attrs: dict, out: Tensor,
              params: Optional[int] = None, name: Optional[str] = None) -> Node:
        """Add an IR node fed by ``inputs`` (tensors) whose output is ``out``."""
        node_name = self._unique(name or onnx_node.name, onnx_node.op_type)
        first = inputs[0] if inputs else None
        fmt = attrs.get("data_format") or (first.data_format() if first else "channels_last")
        attrs = dict(attrs, data_format=fmt)
        in_shapes = [t.logical() for t in inputs]
        if op != OpKind.OPAQUE:
            _own_shape(out, op, attrs, in_shapes)
        out_shape = out.logical()
        if out_shape is None and op != OpKind.OPAQUE:
            try:
                out_shape = infer_shape(op, attrs, in_shapes)
            except ShapeError:
                out_shape = None
        node = Node(name=node_name, op=op, inputs=[t.node for t in inputs],
                    input_shapes=in_shapes, output_shape=out_shape, attrs=attrs, params=params,
                    layer=onnx_node.name or node_name, source_class=onnx_node.op_type)
        self.graph.add(node)
        out.node = node_name
        if onnx_node.output:
            out.sole = self._single_use(onnx_node.output[0])
            self.tensors[onnx_node.output[0]] = out
        return node

    def _view(self, onnx_node, tensor: Tensor, shape: Optional[tuple], order: tuple,
              channel: Optional[int]) -> None:
        """Map the node's output to ``tensor``'s IR node (no computation)."""
        out = onnx_node.output[0]
        self.tensors[out] = dataclasses.replace(
            tensor, shape=shape, order=tuple(order), channel=channel,
            fmt=tensor.data_format(), sole=tensor.sole and self._single_use(out))

    def _opaque(self, onnx_node, data: list, reason: str) -> None:
        params = sum(self.consts[n].size for i, n in enumerate(onnx_node.input)
                     if n in self.consts and self.consts[n].is_parameter()
                     and not (i and onnx_node.op_type in _SIZE_OPERANDS))
        shape = self._shape_of(onnx_node.output[0]) if onnx_node.output else None
        out = Tensor("", shape, identity_order(shape))
        self._emit(onnx_node, OpKind.OPAQUE, data,
                   {"class_name": onnx_node.op_type, "reason": reason,
                    "data_format": "channels_last"}, out, params=params or None)
        for extra in onnx_node.output[1:]:
            extra_shape = self._shape_of(extra)
            self.tensors[extra] = Tensor(out.node, extra_shape, identity_order(extra_shape))


# --- pure helpers ------------------------------------------------------------------------

def is_external(proto) -> bool:
    """Whether a ``TensorProto`` keeps its data in another file (``data_location`` or
    ``external_data`` says so)."""
    return proto.data_location == 1 or bool(proto.external_data)   # 1: EXTERNAL


def tensor_value(proto):
    """A ``TensorProto``'s numpy value; ``None`` for external data, which is never read
    (a model file must not make the linter open other files)."""
    if is_external(proto):
        return None
    from onnx import numpy_helper
    return numpy_helper.to_array(proto)


def _own_shape(out: Tensor, op: str, attrs: dict, in_shapes: list) -> None:
    """Put the op's own shape rule's output dims into ``out`` (its physical shape, at
    its logical axes).  Ours win over ONNX's inferred shapes, which lose dims wherever
    ONNX's inference gives up (a slice with computed bounds) and never recover them;
    a dim our rule cannot know keeps ONNX's value."""
    if out.shape is None:
        return
    try:
        ours = infer_shape(op, attrs, in_shapes)
    except ShapeError:
        return
    if ours is None or len(ours) != len(out.order):
        return
    dims = list(out.shape)
    for axis, dim in zip(out.order, ours):
        if dim is not None:
            dims[axis] = dim
    out.shape = tuple(dims)


def attr(node, name: str, default: Any = None) -> Any:
    """The value of attribute ``name`` of an ONNX node, or ``default``."""
    from onnx import helper
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def value_shape(value) -> Optional[tuple]:
    """The shape of a ``ValueInfoProto`` (``None`` for unknown dims), or ``None``."""
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None
                 for d in tensor_type.shape.dim)


def broadcast_kind(dims: tuple, x: Tensor) -> str:
    """How a constant of ``dims`` broadcasts against ``x``: ``"scalar"``, ``"channel"``
    (one value per channel, along the channel axis) or ``"other"``."""
    size = prod(dims)
    if size == 1:
        return "scalar"
    if x.shape is None or x.channel is None or len(dims) > len(x.shape):
        return "other"
    offset = len(x.shape) - len(dims)
    big = [offset + i for i, d in enumerate(dims) if d != 1]
    if big == [x.channel] and size == x.channels():
        return "channel"
    return "other"


def padding_of(auto: str, pads: list, sizes: list, kernel: list, strides: list,
             dilation: list, transpose: bool):
    """ONNX padding → ``"same"``, ``"valid"`` or explicit ``((begin, end), ...)``."""
    # A transposed conv whose kernel is shorter than its stride: ONNX's unpadded length
    # (n−1)s + d(k−1) + 1 is then neither Keras' "valid" n·s nor "same" n·s (whose
    # negative padding ONNX clamps to 0), so its pads stay explicit.
    short = transpose and any(d * (k - 1) + 1 < s for k, s, d in zip(kernel, strides,
                                                                       dilation))
    if auto in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        if not short:
            return "valid" if auto == "VALID" else "same"
        pads = [(0, 0)] * len(kernel)
    if transpose:
        return "valid" if all(p == (0, 0) for p in pads) and not short else tuple(pads)
    if all(p == (0, 0) for p in pads):
        return "valid"
    same = True
    for (begin, end), n, k, s, d in zip(pads, sizes, kernel, strides, dilation):
        extent = d * (k - 1) + 1
        if n is None:
            total = extent - 1 if s == 1 else None
        else:
            total = max((-(-n // s) - 1) * s + extent - n, 0)
        if total is None or begin + end != total or begin != total // 2:
            same = False
    return "same" if same else tuple(pads)


def text(value: Any) -> str:
    """A string attribute (ONNX stores bytes) as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def reshape_target(shape: tuple, target: list, allowzero: bool) -> Optional[tuple]:
    """ONNX Reshape semantics (0 copies a dimension, -1 is inferred)."""
    out = []
    for i, t in enumerate(target):
        if t == 0 and not allowzero:
            if i >= len(shape):
                return None
            out.append(shape[i])
        else:
            out.append(t)
    total = prod(shape)
    if out.count(-1) == 1:
        known = prod(d for d in out if d != -1)
        if known == 0 or total % known:
            return None
        out[out.index(-1)] = total // known
    elif -1 in out:
        return None
    return tuple(out)
