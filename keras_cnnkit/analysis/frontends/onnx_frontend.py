"""ONNX model → graph IR, so that the same rules and cost model lint ONNX CNNs.

:func:`load_onnx_graph` reads an ``.onnx`` file (or an ``onnx.ModelProto``) exported by
any framework, in NCHW or NHWC layout, and produces a :class:`~keras_cnnkit.analysis.ir.Graph`
whose node names (and ``Node.layer``) are the ONNX node names.

Shapes
    ``onnx.shape_inference.infer_shapes`` (with data propagation) runs on a copy of the
    graph whose large initializers carry only their dimensions, with a symbolic batch
    dimension fixed to 1 and ``input_shape`` (if given) applied.  Shape computations
    (``Shape → Gather → Concat → Reshape`` chains, as tf2onnx writes for ``Flatten``) are
    folded with numpy, so their targets are known even where ONNX's inference stops.
    Ops that only compute shapes or constants become no IR node.

Layouts
    Every activation tensor carries the position of its channel axis.  ONNX's own ops
    (Conv, pooling, BatchNormalization) put channels on axis 1; a ``Transpose`` that only
    moves the channel axis (tf2onnx wraps NHWC convolutions in them) becomes no node and
    moves the channel position instead, so a ``Flatten`` of an NHWC map reads
    ``channels_last`` as in Keras.  Each node's ``data_format`` is its input's layout.
    Singleton axes added by ``Unsqueeze`` (tf2onnx runs ``Conv1D`` as a 1×k 2D conv) and
    the spatial axes of a global pooling that a later ``Squeeze``/``Flatten`` removes are
    not part of the logical shape: a 1×k conv over such an axis is a rank-1 conv.

Op mapping (everything else, and any op whose weights are not constants, becomes an
:data:`~keras_cnnkit.analysis.ir.OpKind.OPAQUE` node: its cost is unknown and listed,
never counted as 0; its constant inputs count as its parameters)
    ========================================  ==========================================
    ONNX                                      IR
    ========================================  ==========================================
    Conv (group, dilations, pads, auto_pad)   conv; ``group == C_in > 1``: depthwise_conv
    ConvTranspose                             conv_transpose
    Gemm, MatMul with constant weights        dense (a following per-channel Add is its
                                              bias: ``use_bias``)
    Add of a per-channel constant after a     the conv's / dense's bias (``use_bias``)
    bias-free conv, conv_transpose or dense
    BatchNormalization                        batchnorm
    Mul/Div by a per-channel constant, with   batchnorm (``attrs["folded"]``): the
    Add/Sub of one after it                   inference form of a BN; ``Node.params``
                                              holds the 2·C numbers stored, the cost
                                              model its Keras-convention 4·C
    Add/Sub/Mul/Div by a scalar constant      rescale
    Add/Sub/Mul/Max/Min/Mean/Sum of tensors   add/subtract/multiply/maximum/minimum/...
    Split + one Conv per part + Concat        one grouped conv (the split form of a
                                              group conv, as ``cnnkit-export`` writes it)
    x · Sigmoid(x)                            activation ``silu``
    MaxPool, AveragePool                      pool
    GlobalAveragePool/GlobalMaxPool,          global_pool
    ReduceMean/ReduceMax over all spatial
    axes
    Flatten, Reshape, Squeeze, Unsqueeze      flatten/reshape, or nothing when only
                                              singleton axes change
    Transpose                                 nothing for a layout change, else transpose
    Concat, Split/Slice on channels           concat, slice (Slice on spatial axes: crop)
    Relu, Clip(0, 6) → relu6, Clip(0, ∞) →    activation
    relu, LeakyRelu, PRelu, Sigmoid, Tanh,
    Softmax, Elu, Selu, HardSigmoid,
    HardSwish, Softplus, Softsign, Gelu, Mish
    Pad, Resize/Upsample, Dropout             pad, upsample, dropout
    Identity, Cast                            nothing
    ========================================  ==========================================

What an export already removed cannot be recovered: tf2onnx (through TensorFlow's
constant folding) folds a BatchNormalization that follows a bias-free convolution into
that convolution's weights and bias, and drops ``Dropout`` at inference.  Such a model
has fewer parameters in its ONNX file than in Keras, and rules about those layers
(``bias-before-batchnorm``, ``dropout-before-batchnorm``) cannot see them.

Imports ``onnx`` and ``numpy`` only when called.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional, Sequence

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.shapes import ShapeError, infer_shape
from keras_cnnkit.errors import ModelFileError

#: Initializers with more elements than this are stripped to their dimensions before
#: shape inference (their values are never needed).
_KEEP_VALUES = 4096

_ACTIVATIONS = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softmax": "softmax",
    "LogSoftmax": "log_softmax", "Elu": "elu", "Selu": "selu", "HardSigmoid": "hard_sigmoid",
    "HardSwish": "hard_silu", "Softplus": "softplus", "Softsign": "softsign", "Gelu": "gelu",
    "Mish": "mish", "LeakyRelu": "leaky_relu", "Exp": "exponential",
}

_MERGES = {"Add": OpKind.ADD, "Sum": OpKind.ADD, "Sub": OpKind.SUBTRACT,
           "Mul": OpKind.MULTIPLY, "Max": OpKind.MAXIMUM, "Min": OpKind.MINIMUM,
           "Mean": OpKind.AVERAGE}

_WEIGHTED = (OpKind.CONV, OpKind.DEPTHWISE_CONV, OpKind.CONV_TRANSPOSE, OpKind.DENSE)

#: ONNX ops whose layout is fixed: channels on axis 1, spatial axes after.
_NCHW_OPS = ("Conv", "ConvTranspose", "BatchNormalization", "MaxPool", "AveragePool",
             "GlobalAveragePool", "GlobalMaxPool")

#: Ops whose output keeps the axis positions of their (first) input.
_AXIS_KEEPING = frozenset(set(_ACTIVATIONS) | set(_MERGES) | {
    "Identity", "Cast", "Clip", "PRelu", "Dropout", "Div", "Split", "Slice", "Pad",
    "Concat", "Resize", "Upsample"})


def load_onnx_graph(path_or_model: Any, input_shape: Any = None) -> Graph:
    """The IR graph of an ONNX model.

    Args:
        path_or_model: an ``.onnx`` file path, its bytes, or an ``onnx.ModelProto`` (not
            modified).
        input_shape: shape of the input without the batch dimension, in the input's own
            layout (e.g. ``(3, 224, 224)`` for NCHW), for models with symbolic dimensions;
            a dict ``{input name: shape}`` for several inputs.  ``None`` keeps the
            model's dimensions (unknown ones leave costs unknown).

    Raises:
        ModelFileError: the file is missing or not a valid ONNX model, or its graph is
            inconsistent.
    """
    proto, source = _load(path_or_model)
    try:
        return _Converter(proto, source, input_shape).run()
    except ModelFileError:
        raise
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ModelFileError(source, f"cannot analyse the ONNX graph: "
                                     f"{type(exc).__name__}: {exc}") from exc


def _load(path_or_model: Any) -> tuple:
    import onnx
    from google.protobuf.message import DecodeError

    if isinstance(path_or_model, onnx.ModelProto):
        proto, source = path_or_model, "<onnx model>"
    else:
        if isinstance(path_or_model, (bytes, bytearray)):
            data, source = bytes(path_or_model), "<onnx bytes>"
        else:
            source = os.fspath(path_or_model)
            if not os.path.exists(source):
                raise ModelFileError(source, "no such file")
            if not os.path.isfile(source):
                raise ModelFileError(source, "not a file")
            try:
                with open(source, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                raise ModelFileError(source, f"cannot read: {exc.strerror or exc}") from exc
        proto = onnx.ModelProto()
        try:
            proto.ParseFromString(data)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(source, f"not a valid ONNX model ({exc})") from exc
    if not proto.HasField("graph") or not proto.graph.output:
        raise ModelFileError(source, "not a valid ONNX model (no graph or no outputs)")
    return proto, source


@dataclasses.dataclass
class _Tensor:
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


def _identity_order(shape: Optional[tuple]) -> tuple:
    return tuple(range(1, len(shape))) if shape else ()


class _Const:
    """A constant: an initializer, a ``Constant`` output or a folded value."""

    def __init__(self, dims: Sequence[int], proto=None, value=None):
        self.dims = tuple(int(d) for d in dims)
        self._proto = proto
        self._value = value

    @property
    def size(self) -> int:
        """Number of elements."""
        out = 1
        for d in self.dims:
            out *= d
        return out

    def value(self):
        """The numpy value (read from the proto on first use)."""
        if self._value is None and self._proto is not None:
            from onnx import numpy_helper
            self._value = numpy_helper.to_array(self._proto)
        return self._value


class _Converter:
    """One conversion: the ONNX graph walked once, in its (topological) order."""

    def __init__(self, proto, source: str, input_shape: Any):
        self.proto = proto
        self.source = source
        self.graph = Graph(name=proto.graph.name or "onnx_model", source=source,
                           frontend="onnx")
        self.consts: dict = {}
        self.tensors: dict = {}
        self.uses: dict = {}
        self.consumers: dict = {}
        self.outputs = {o.name for o in proto.graph.output}
        self.inferred: dict = {}
        self.input_shape = input_shape
        self.node_index = 0

    # --- setup -------------------------------------------------------------------------

    def run(self) -> Graph:
        """Convert the whole graph."""
        graph = self.proto.graph
        for init in graph.initializer:
            self.consts[init.name] = _Const(init.dims, proto=init)
        for node in graph.node:
            for name in node.input:
                if name:
                    self.uses[name] = self.uses.get(name, 0) + 1
                    self.consumers.setdefault(name, []).append(node)
        self.inferred = self._infer_shapes()
        for value in graph.input:
            if value.name not in self.consts:
                self._add_input(value)
        for node in graph.node:
            self.node_index += 1
            self._convert(node)
        outs = []
        for out in graph.output:
            tensor = self.tensors.get(out.name)
            if tensor is not None and tensor.node not in outs:
                outs.append(tensor.node)
        self.graph.outputs = outs
        return self.graph

    def _infer_shapes(self) -> dict:
        """ONNX shape inference on a light copy (see the module docstring)."""
        import onnx

        light = onnx.ModelProto()
        light.ir_version = self.proto.ir_version
        light.opset_import.extend(self.proto.opset_import)
        graph = light.graph
        graph.node.extend(self.proto.graph.node)
        graph.output.extend(self.proto.graph.output)
        graph.value_info.extend(self.proto.graph.value_info)
        for init in self.proto.graph.initializer:
            size = 1
            for d in init.dims:
                size *= d
            if size <= _KEEP_VALUES:
                graph.initializer.append(init)
            else:
                graph.initializer.append(onnx.TensorProto(name=init.name, dims=init.dims,
                                                          data_type=init.data_type))
        real_inputs = [v for v in self.proto.graph.input if v.name not in self.consts]
        for value in self.proto.graph.input:
            copy = graph.input.add()
            copy.CopyFrom(value)
            if value.name in self.consts:
                continue
            dims = copy.type.tensor_type.shape.dim
            given = self._given_shape(value.name, len(real_inputs))
            if given is not None:
                if len(given) + 1 != len(dims):
                    raise ModelFileError(self.source, f"input_shape {tuple(given)} does not "
                                         f"fit input {value.name!r} of rank {len(dims)}")
                for dim, size in zip(list(dims)[1:], given):
                    if size is not None:
                        dim.Clear()
                        dim.dim_value = int(size)
            if dims and not dims[0].HasField("dim_value"):
                dims[0].Clear()
                dims[0].dim_value = 1
        self._given = {v.name: _value_shape(v) for v in graph.input}
        try:
            light = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
        except Exception:  # pylint: disable=broad-exception-caught
            # onnx raises its own error types; fall back to the shapes computed here.
            pass
        shapes = {}
        for value in list(light.graph.value_info) + list(light.graph.output) + list(
                light.graph.input):
            shape = _value_shape(value)
            if shape is not None:
                shapes[value.name] = shape
        return shapes

    def _given_shape(self, name: str, count: int) -> Optional[tuple]:
        given = self.input_shape
        if given is None:
            return None
        if isinstance(given, dict):
            shape = given.get(name)
            return None if shape is None else tuple(shape)
        if count != 1:
            raise ModelFileError(self.source, "the model has several inputs: give "
                                 "input_shape as {name: shape}")
        return tuple(given)

    def _add_input(self, value) -> None:
        shape = self._shape_of(value.name) or self._given.get(value.name)
        if shape is not None and shape and shape[0] is None:
            shape = (1,) + shape[1:]
        name = self._unique(value.name)
        channel = self._input_channel_axis(value.name, shape)
        fmt = "channels_first" if channel == 1 and shape and len(shape) > 2 else "channels_last"
        tensor = _Tensor(name, shape, _identity_order(shape), channel, fmt,
                         sole=self._single_use(value.name))
        logical = tensor.logical()
        self.graph.add(Node(name=name, op=OpKind.INPUT, output_shape=logical,
                            attrs={"shape": logical, "data_format": tensor.data_format()},
                            layer=value.name, source_class="Input"))
        self.tensors[value.name] = tensor

    def _input_channel_axis(self, name: str, shape: Optional[tuple]) -> Optional[int]:
        """Where the channels of graph input ``name`` are: found by following it forward
        (through transposes, unsqueezes and ops that keep axis positions) to the first
        op with a fixed layout; the last axis when none is reached."""
        if shape is None or len(shape) < 2:
            return None
        queue = [(name, list(range(len(shape))))]   # (tensor, position → input axis)
        seen = set()
        while queue and len(seen) < 256:
            current, axes = queue.pop(0)
            if current in seen:
                continue
            seen.add(current)
            for user in self.consumers.get(current, []):
                if user.op_type in _NCHW_OPS:
                    if user.input[0] == current and len(axes) > 1 and axes[1] is not None:
                        return axes[1]
                    continue
                mapped = self._forward_axes(user, axes)
                if mapped is not None:
                    queue.extend((out, mapped) for out in user.output if out)
        return len(shape) - 1

    def _forward_axes(self, user, axes: list) -> Optional[list]:
        """``axes`` (position → input axis) after ``user``; ``None`` where it reshapes."""
        if user.op_type == "Transpose":
            perm = _attr(user, "perm", list(reversed(range(len(axes)))))
            return [axes[p] for p in perm]
        if user.op_type == "Unsqueeze":
            insert = self._axes_of(user, None)
            if insert is None:
                return None
            rank = len(axes) + len(insert)
            inserted = {a % rank for a in insert}
            it = iter(axes)
            return [None if i in inserted else next(it) for i in range(rank)]
        if user.op_type in _AXIS_KEEPING:
            return axes
        return None

    # --- helpers ------------------------------------------------------------------------

    def _unique(self, name: str, op_type: str = "node") -> str:
        base = name or f"{op_type}_{self.node_index}"
        out, k = base, 1
        while out in self.graph.nodes:
            k += 1
            out = f"{base}_{k}"
        return out

    def _single_use(self, tensor: str) -> bool:
        return self.uses.get(tensor, 0) == 1 and tensor not in self.outputs

    def _const(self, name: str) -> Optional[_Const]:
        return self.consts.get(name) if name else None

    def _const_value(self, name: str):
        const = self._const(name)
        return None if const is None else const.value()

    def _input(self, node, i: int) -> str:
        return node.input[i] if len(node.input) > i else ""

    def _axes_of(self, node, rank: Optional[int]) -> Optional[list]:
        """The ``axes`` of a Squeeze/Unsqueeze/Reduce op (attribute or second input)."""
        axes = _attr(node, "axes")
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

    def _out(self, node, like: _Tensor, shape: Optional[tuple] = None, **changes) -> _Tensor:
        """The output tensor of ``node``, laid out like ``like`` unless ``changes`` say."""
        shape = shape or self._shape_of(node.output[0]) or like.shape
        return dataclasses.replace(like, node="", shape=shape, sole=False, **changes)

    def _emit(self, onnx_node, op: str, inputs: list, attrs: dict, out: _Tensor,
              params: Optional[int] = None, name: Optional[str] = None) -> Node:
        """Add an IR node fed by ``inputs`` (tensors) whose output is ``out``."""
        node_name = self._unique(name or onnx_node.name, onnx_node.op_type)
        first = inputs[0] if inputs else None
        fmt = attrs.get("data_format") or (first.data_format() if first else "channels_last")
        attrs = dict(attrs, data_format=fmt)
        in_shapes = [t.logical() for t in inputs]
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

    def _view(self, onnx_node, tensor: _Tensor, shape: Optional[tuple], order: tuple,
              channel: Optional[int]) -> None:
        """Map the node's output to ``tensor``'s IR node (no computation)."""
        out = onnx_node.output[0]
        self.tensors[out] = dataclasses.replace(
            tensor, shape=shape, order=tuple(order), channel=channel,
            fmt=tensor.data_format(), sole=tensor.sole and self._single_use(out))

    def _opaque(self, onnx_node, data: list, reason: str) -> None:
        params = sum(self.consts[n].size for n in onnx_node.input if n in self.consts)
        shape = self._shape_of(onnx_node.output[0]) if onnx_node.output else None
        out = _Tensor("", shape, _identity_order(shape))
        self._emit(onnx_node, OpKind.OPAQUE, data,
                   {"class_name": onnx_node.op_type, "reason": reason,
                    "data_format": "channels_last"}, out, params=params or None)
        for extra in onnx_node.output[1:]:
            extra_shape = self._shape_of(extra)
            self.tensors[extra] = _Tensor(out.node, extra_shape, _identity_order(extra_shape))

    # --- dispatch ----------------------------------------------------------------------

    def _convert(self, node) -> None:
        data = [self.tensors[n] for n in node.input if n in self.tensors]
        if not data:
            self._fold(node)
            return
        if node.op_type in ("Shape", "Size"):
            self._fold_shape(node, data[0])
            return
        handler = getattr(self, f"_op_{node.op_type}", None)
        if handler is None:
            if node.op_type in _ACTIVATIONS:
                handler = self._activation
            elif node.op_type in _MERGES:
                handler = self._merge
            else:
                self._opaque(node, data, "unknown ONNX op")
                return
        handler(node, data)

    def _fold(self, node) -> None:
        """Evaluate a node whose inputs are all constants (or leave its outputs unknown)."""
        values = []
        for name in node.input:
            const = self._const(name)
            values.append(None if const is None else const.value())
        try:
            results = _evaluate(node, values)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, ArithmeticError):
            results = None
        for name, value in zip(node.output, results or ()):
            if value is not None:
                self.consts[name] = _Const(value.shape, value=value)

    def _fold_shape(self, node, tensor: _Tensor) -> None:
        import numpy as np
        shape = tensor.shape
        if shape is None or any(d is None for d in shape):
            return
        if node.op_type == "Size":
            value = np.array(int(np.prod(shape)), dtype=np.int64)
        else:
            start, end = _attr(node, "start", 0), _attr(node, "end", None)
            value = np.array(shape[start:end], dtype=np.int64)
        self.consts[node.output[0]] = _Const(value.shape, value=value)

    # --- convolutions and pooling (ONNX: channels on axis 1, spatial axes after) -------

    def _nchw_input(self, node, x: _Tensor, kernel: tuple) -> tuple:
        """``(x as the op reads it, spatial axes in logical order, dropped axes)``.

        Spatial axes that are dummies and that the window leaves alone (k = s = d = 1,
        no padding) are dropped: a 1×k conv over an unsqueezed axis is a rank-1 conv.
        Dummies it does use become logical again, through a reshape node.
        """
        rank = len(kernel)
        spatial = list(range(2, 2 + rank))
        strides = list(_attr(node, "strides", [1] * rank))
        dilation = list(_attr(node, "dilations", [1] * rank))
        pads = list(_attr(node, "pads", [0] * (2 * rank)))
        dropped = [a for a in spatial if a not in x.order and kernel[a - 2] == 1
                   and strides[a - 2] == 1 and dilation[a - 2] == 1
                   and pads[a - 2] == 0 and pads[a - 2 + rank] == 0]
        if len(dropped) == rank:
            dropped = []
        kept = [a for a in spatial if a not in dropped]
        order = [a for a in x.order if a in kept or a == 1]
        if sorted(order) != sorted(kept + [1]):
            order = [1] + kept if x.data_format() == "channels_first" else kept + [1]
        x = dataclasses.replace(x, channel=1)
        if tuple(order) != tuple(x.order):
            x = self._reshape_to(node, x, tuple(order))
        return x, [a for a in order if a != 1], dropped

    def _reshape_to(self, node, x: _Tensor, order: tuple) -> _Tensor:
        """A reshape node making ``x``'s dummies in ``order`` logical (e.g. (C,) → (1, 1, C)
        before a 1×1 conv, as Keras' squeeze-and-excite blocks do)."""
        out = dataclasses.replace(x, order=order, fmt=x.data_format())
        target = out.logical()
        fake = _Renamed(node, f"{node.name or node.op_type}/reshape", [])
        self._emit(fake, OpKind.RESHAPE, [x], {"target_shape": target,
                                               "data_format": out.data_format()}, out)
        out.sole = True
        return out

    def _window(self, node, x: _Tensor, spatial: list, kernel: tuple,
                transpose: bool = False) -> dict:
        """Kernel, strides, dilation and padding of a conv/pool, in logical axis order."""
        rank = len(kernel)
        strides = list(_attr(node, "strides", [1] * rank))
        dilation = list(_attr(node, "dilations", [1] * rank))
        pads = list(_attr(node, "pads", [0] * (2 * rank)))
        auto = _text(_attr(node, "auto_pad", "NOTSET"))
        idx = [a - 2 for a in spatial]
        return {
            "rank": len(idx),
            "kernel": tuple(kernel[i] for i in idx),
            "strides": tuple(strides[i] for i in idx),
            "dilation": tuple(dilation[i] for i in idx),
            "padding": _padding(auto, [(pads[i], pads[i + rank]) for i in idx],
                                [x.shape[2 + i] for i in idx], [kernel[i] for i in idx],
                                [strides[i] for i in idx], [dilation[i] for i in idx],
                                transpose),
        }

    def _weights(self, node) -> tuple:
        weight = self._const(self._input(node, 1))
        bias = self._const(self._input(node, 2))
        return weight, bias

    def _op_Conv(self, node, data: list) -> None:  # pylint: disable=invalid-name
        weight, bias = self._weights(node)
        if weight is None or len(weight.dims) < 3 or data[0].shape is None \
                or node.input[0] not in self.tensors:
            self._opaque(node, data, "convolution with non-constant weights or unknown rank")
            return
        kernel = tuple(weight.dims[2:])
        x, spatial, _ = self._nchw_input(node, data[0], kernel)
        groups = int(_attr(node, "group", 1))
        filters, in_channels = weight.dims[0], weight.dims[1] * groups
        attrs = dict(self._window(node, x, spatial, kernel), groups=groups,
                     in_channels=in_channels, filters=filters, use_bias=bias is not None,
                     activation=None)
        op = OpKind.CONV
        if 1 < groups == in_channels:
            op = OpKind.DEPTHWISE_CONV
            attrs["depth_multiplier"] = filters // in_channels
        self._emit(node, op, [x], attrs, self._out(node, x),
                   params=weight.size + (bias.size if bias is not None else 0))

    def _op_ConvTranspose(self, node, data: list) -> None:  # pylint: disable=invalid-name
        weight, bias = self._weights(node)
        if weight is None or len(weight.dims) < 3 or data[0].shape is None \
                or node.input[0] not in self.tensors:
            self._opaque(node, data, "transposed convolution with non-constant weights")
            return
        kernel = tuple(weight.dims[2:])
        x, spatial, _ = self._nchw_input(node, data[0], kernel)
        groups = int(_attr(node, "group", 1))
        out_pad = _attr(node, "output_padding")
        attrs = dict(self._window(node, x, spatial, kernel, transpose=True), groups=groups,
                     in_channels=weight.dims[0], filters=weight.dims[1] * groups,
                     use_bias=bias is not None, activation=None,
                     output_padding=None if out_pad is None
                     else tuple(out_pad[a - 2] for a in spatial))
        self._emit(node, OpKind.CONV_TRANSPOSE, [x], attrs, self._out(node, x),
                   params=weight.size + (bias.size if bias is not None else 0))

    def _pool(self, node, data: list, pool_type: str) -> None:
        kernel = tuple(_attr(node, "kernel_shape", []))
        if not kernel or data[0].shape is None:
            self._opaque(node, data, "pooling without kernel_shape")
            return
        x, spatial, _ = self._nchw_input(node, data[0], kernel)
        window = self._window(node, x, spatial, kernel)
        attrs = {"pool_type": pool_type, "rank": window["rank"], "pool_size": window["kernel"],
                 "strides": window["strides"], "padding": window["padding"]}
        if _attr(node, "ceil_mode", 0):
            attrs["ceil_mode"] = True
        self._emit(node, OpKind.POOL, [x], attrs, self._out(node, x))

    def _op_MaxPool(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._pool(node, data, "max")

    def _op_AveragePool(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._pool(node, data, "avg")

    def _global_pool(self, node, x: _Tensor, pool_type: str, axes: list,
                     keepdims: bool) -> None:
        """Pooling over all spatial (physical) ``axes`` of ``x``.  Kept axes that every
        consumer squeezes away become dummies (Keras' ``keepdims=False``)."""
        shape = self._shape_of(node.output[0])
        if shape is None and x.shape is not None:
            shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keepdims \
                else tuple(d for i, d in enumerate(x.shape) if i not in axes)
        fmt = x.data_format()
        if keepdims and self._squeezed_later(node.output[0]):
            keepdims = False
            order = tuple(a for a in x.order if a not in axes)
            channel = x.channel
        elif keepdims:
            order, channel = x.order, x.channel
        else:
            def renumber(a):
                return a - sum(1 for r in axes if r < a)
            order = tuple(renumber(a) for a in x.order if a not in axes)
            channel = None if x.channel is None else renumber(x.channel)
        attrs = {"pool_type": pool_type, "rank": len(axes), "keepdims": bool(keepdims),
                 "data_format": fmt}
        out = _Tensor("", shape, order, channel, fmt)
        self._emit(node, OpKind.GLOBAL_POOL, [x], attrs, out)

    def _squeezed_later(self, tensor: str) -> bool:
        users = self.consumers.get(tensor, [])
        return bool(users) and tensor not in self.outputs and all(
            u.op_type in ("Reshape", "Flatten", "Squeeze") for u in users)

    def _op_GlobalAveragePool(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._nchw_global(node, data, "avg")

    def _op_GlobalMaxPool(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._nchw_global(node, data, "max")

    def _nchw_global(self, node, data: list, pool_type: str) -> None:
        x = dataclasses.replace(data[0], channel=1)
        if x.shape is None:
            self._opaque(node, data, "global pooling of a tensor of unknown rank")
            return
        self._global_pool(node, x, pool_type, list(range(2, len(x.shape))), True)

    def _reduce(self, node, data: list, pool_type: str) -> None:
        x = data[0]
        rank = len(x.shape) if x.shape is not None else None
        axes = self._axes_of(node, rank)
        spatial = [a for a in x.order if a != x.channel] if x.channel in x.order else None
        if axes is None or not spatial or sorted(a for a in axes if a in x.order) != sorted(
                spatial) or 0 in axes:
            self._opaque(node, data, f"{node.op_type} over axes other than the spatial ones")
            return
        self._global_pool(node, x, pool_type, sorted(axes), bool(_attr(node, "keepdims", 1)))

    def _op_ReduceMean(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "avg")

    def _op_ReduceMax(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "max")

    # --- dense ----------------------------------------------------------------------------

    def _dense(self, node, x: _Tensor, weight: _Const, transposed: bool,
               bias: Optional[_Const]) -> None:
        in_features, units = (weight.dims[1], weight.dims[0]) if transposed else weight.dims
        shape = self._shape_of(node.output[0])
        if shape is None and x.shape is not None:
            shape = x.shape[:-1] + (units,)
        attrs = {"in_features": in_features, "units": units, "use_bias": bias is not None,
                 "activation": None, "data_format": "channels_last"}
        last = len(shape) - 1 if shape else None
        out = _Tensor("", shape, x.order, last, "channels_last")
        self._emit(node, OpKind.DENSE, [x], attrs, out,
                   params=weight.size + (bias.size if bias is not None else 0))

    def _op_MatMul(self, node, data: list) -> None:  # pylint: disable=invalid-name
        weight = self._const(self._input(node, 1))
        if len(data) != 1 or weight is None or len(weight.dims) != 2 \
                or node.input[0] not in self.tensors:
            self._opaque(node, data, "MatMul of two activations")
            return
        self._dense(node, data[0], weight, False, None)

    def _op_Gemm(self, node, data: list) -> None:  # pylint: disable=invalid-name
        weight, bias = self._weights(node)
        if (len(data) != 1 or weight is None or _attr(node, "transA", 0)
                or node.input[0] not in self.tensors):
            self._opaque(node, data, "Gemm of two activations")
            return
        self._dense(node, data[0], weight, bool(_attr(node, "transB", 0)), bias)

    # --- normalisation, activations ------------------------------------------------------

    def _op_BatchNormalization(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = dataclasses.replace(data[0], channel=1)
        params = sum(self.consts[n].size for n in node.input[1:5] if n in self.consts)
        attrs = {"axis": x.index(1) if x.index(1) is not None else -1,
                 "channels": x.channels(), "center": True, "scale": True,
                 "epsilon": float(_attr(node, "epsilon", 1e-5))}
        self._emit(node, OpKind.BATCHNORM, [x], attrs, self._out(node, x), params=params)

    def _activation(self, node, data: list, name: Optional[str] = None) -> None:
        x = data[0]
        attrs = {"activation": name or _ACTIVATIONS[node.op_type]}
        if node.op_type == "LeakyRelu":
            attrs["negative_slope"] = float(_attr(node, "alpha", 0.01))
        if node.op_type in ("Softmax", "LogSoftmax") and x.shape is not None:
            axis = x.index(int(_attr(node, "axis", -1)) % len(x.shape))
            if axis is not None:
                attrs["axis"] = axis
        self._emit(node, OpKind.ACTIVATION, [x], attrs, self._out(node, x))

    def _op_Clip(self, node, data: list) -> None:  # pylint: disable=invalid-name
        low, high = _attr(node, "min"), _attr(node, "max")
        if self._input(node, 1):
            value = self._const_value(node.input[1])
            low = None if value is None else float(value)
        if self._input(node, 2):
            value = self._const_value(node.input[2])
            high = None if value is None else float(value)
        if low is not None and float(low) == 0.0 and high is not None and float(high) == 6.0:
            self._activation(node, data, "relu6")
        elif low is not None and float(low) == 0.0 and (high is None or high >= 3.4e38):
            self._activation(node, data, "relu")
        else:
            self._activation(node, data, "clip")

    def _op_PRelu(self, node, data: list) -> None:  # pylint: disable=invalid-name
        slope = self._const(self._input(node, 1))
        size = slope.size if slope is not None else None
        self._emit(node, OpKind.ACTIVATION, [data[0]], {"activation": "prelu",
                                                        "alpha_size": size},
                   self._out(node, data[0]), params=size)

    def _op_Dropout(self, node, data: list) -> None:  # pylint: disable=invalid-name
        ratio = _attr(node, "ratio", 0.5)
        if self._input(node, 1):
            value = self._const_value(node.input[1])
            ratio = ratio if value is None else float(value)
        out = self._out(node, data[0])
        self._emit(node, OpKind.DROPOUT, [data[0]], {"rate": float(ratio), "kind": "dropout"},
                   out)
        for extra in node.output[1:]:
            self.tensors[extra] = dataclasses.replace(out)

    def _op_Identity(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        self._view(node, x, x.shape, x.order, x.channel)

    _op_Cast = _op_Identity

    # --- element-wise ---------------------------------------------------------------------

    def _merge(self, node, data: list) -> None:
        if len(data) == 1 and node.op_type in ("Add", "Sub", "Mul", "Div"):
            self._with_constant(node, data[0])
            return
        if len(data) != len([n for n in node.input if n]):
            self._opaque(node, data, f"{node.op_type} of an activation and a constant")
            return
        if node.op_type == "Mul" and self._fuse_silu(node, data):
            return
        x = max(data, key=lambda t: len(t.order))
        self._emit(node, _MERGES[node.op_type], data, {}, self._out(node, x))

    def _op_Div(self, node, data: list) -> None:  # pylint: disable=invalid-name
        if len(data) == 1:
            self._with_constant(node, data[0])
        else:
            self._opaque(node, data, "division of two activations")

    def _fuse_silu(self, node, data: list) -> bool:
        """``x · sigmoid(x)`` → the sigmoid node becomes a ``silu`` activation."""
        for a, b in (data, data[::-1]):
            sig = self.graph.nodes.get(b.node)
            if (sig is not None and sig.op == OpKind.ACTIVATION
                    and sig.attrs.get("activation") == "sigmoid" and b.sole
                    and sig.inputs == [a.node] and not self.graph.consumers(sig)):
                sig.attrs["activation"] = "silu"
                self._remap(node, b)
                return True
        return False

    def _with_constant(self, node, x: _Tensor) -> None:
        """An element-wise op between an activation and a constant (see the table)."""
        const_first = node.input[0] not in self.tensors
        const = self._const(node.input[0 if const_first else 1])
        op = node.op_type
        if const is None:
            self._opaque(node, [x], f"{op} with a computed operand")
            return
        kind = _broadcast_kind(const.dims, x)
        if const_first and op == "Div":
            kind = "other"
        shift = op in ("Add", "Sub")
        producer = self.graph.nodes.get(x.node)
        if kind == "channel" and x.sole and producer is not None:
            if (shift and producer.op in _WEIGHTED and not producer.attrs.get("use_bias")
                    and not self.graph.consumers(producer)
                    and const.size == producer.attrs.get(
                        "units" if producer.op == OpKind.DENSE else "filters")):
                producer.attrs["use_bias"] = True
                producer.params = (producer.params or 0) + const.size
                self._remap(node, x)
                return
            if producer.op == OpKind.BATCHNORM and producer.attrs.get("folded") \
                    and not self.graph.consumers(producer):
                producer.attrs["center"] = producer.attrs["center"] or shift
                producer.attrs["scale"] = producer.attrs["scale"] or not shift
                producer.params = (producer.params or 0) + const.size
                self._remap(node, x)
                return
        if kind == "scalar" and x.sole and producer is not None and \
                producer.op == OpKind.RESCALE and producer.attrs.get("mode") == "scalar" \
                and not self.graph.consumers(producer):
            self._remap(node, x)
            return
        out = self._out(node, x)
        if kind == "channel" and not shift:
            self._emit(node, OpKind.BATCHNORM, [x], {
                "axis": x.index(x.channel) if x.index(x.channel) is not None else -1,
                "channels": x.channels(), "center": False, "scale": True, "folded": True},
                out, params=const.size)
        elif kind == "scalar":
            self._emit(node, OpKind.RESCALE, [x], {"mode": "scalar", "params": 0}, out)
        else:
            self._emit(node, OpKind.RESCALE, [x], {"mode": kind, "params": const.size}, out,
                       params=const.size)

    def _remap(self, node, x: _Tensor) -> None:
        """The node's output is ``x``'s node's output (a folded op, no node of its own)."""
        out = node.output[0]
        self.tensors[out] = dataclasses.replace(x, shape=self._shape_of(out) or x.shape,
                                                sole=self._single_use(out))

    # --- data movement --------------------------------------------------------------------

    def _op_Concat(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        if len(data) != len([n for n in node.input if n]) or x.shape is None:
            self._opaque(node, data, "concatenation with a constant or of unknown rank")
            return
        axis = x.index(int(_attr(node, "axis", 1)) % len(x.shape))
        if axis is None or any(t.order != x.order for t in data):
            self._opaque(node, data, "concatenation over the batch or of mixed layouts")
            return
        shape = self._shape_of(node.output[0])
        if shape is None and all(t.shape is not None for t in data):
            dims = list(x.shape)
            physical = x.order[axis]
            dims[physical] = None if any(t.shape[physical] is None for t in data) else sum(
                t.shape[physical] for t in data)
            shape = tuple(dims)
        concat = self._emit(node, OpKind.CONCAT, data, {"axis": axis}, self._out(node, x, shape))
        _merge_split_group_conv(self.graph, concat)

    def _op_Transpose(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        if x.shape is None:
            self._opaque(node, data, "transpose of a tensor of unknown rank")
            return
        rank = len(x.shape)
        perm = list(_attr(node, "perm", list(reversed(range(rank)))))
        if perm[0] != 0:
            self._opaque(node, data, "transpose that moves the batch axis")
            return
        channel = x.channel
        if channel is None and rank > 2:
            if perm == [0] + list(range(2, rank)) + [1]:
                channel = 1
            elif perm == [0, rank - 1] + list(range(1, rank - 1)):
                channel = rank - 1
        self._view(node, x, tuple(x.shape[p] for p in perm),
                   tuple(perm.index(a) for a in x.order),
                   None if channel is None else perm.index(channel))

    def _reshape_like(self, node, x: _Tensor, shape: Optional[tuple]) -> None:
        """Flatten/Reshape/Squeeze: a view when only singleton axes change (and no
        logical axis is a singleton), else a flatten (to one dimension) or a reshape."""
        shape = shape or self._shape_of(node.output[0])
        if shape is None or x.shape is None:
            self._opaque(node, [x], f"{node.op_type} to an unknown shape")
            return
        old_axes = [a for a in range(1, len(x.shape)) if x.shape[a] != 1]
        new_axes = [a for a in range(1, len(shape)) if shape[a] != 1]
        logical = x.logical()
        if ([x.shape[a] for a in old_axes] == [shape[a] for a in new_axes]
                and None not in logical and 1 not in logical):
            mapping = dict(zip(old_axes, new_axes))
            self._view(node, x, shape, tuple(mapping[a] for a in x.order),
                       mapping.get(x.channel))
            return
        target = tuple(shape[1:])
        channels = x.channels()
        channel = (len(shape) - 1 if target and target[-1] == channels
                   else 1 if len(shape) > 2 and target[0] == channels else None)
        out = _Tensor("", shape, _identity_order(shape), channel,
                      "channels_first" if channel == 1 and len(shape) > 2 else "channels_last")
        if len(target) == 1 and len(logical) > 1:
            self._emit(node, OpKind.FLATTEN, [x], {}, out)
        else:
            self._emit(node, OpKind.RESHAPE, [x], {"target_shape": target}, out)

    def _op_Reshape(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        target = self._const_value(self._input(node, 1))
        shape = None
        if target is not None and x.shape is not None and None not in x.shape:
            shape = _reshape_target(x.shape, [int(t) for t in target.reshape(-1)],
                                    bool(_attr(node, "allowzero", 0)))
        self._reshape_like(node, x, shape)

    def _op_Flatten(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        shape = None
        if x.shape is not None and None not in x.shape:
            axis = int(_attr(node, "axis", 1)) % (len(x.shape) or 1)
            shape = (_product(x.shape[:axis]), _product(x.shape[axis:]))
        self._reshape_like(node, x, shape)

    def _op_Squeeze(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        shape = None
        if x.shape is not None:
            axes = self._axes_of(node, len(x.shape))
            if axes is None:
                axes = [i for i, d in enumerate(x.shape) if d == 1 and i > 0]
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        self._reshape_like(node, x, shape)

    def _op_Unsqueeze(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        axes = self._axes_of(node, None)
        if x.shape is None or axes is None:
            self._opaque(node, data, "unsqueeze of unknown rank or with computed axes")
            return
        new_rank = len(x.shape) + len(axes)
        inserted = {a % new_rank for a in axes}
        new_pos = [i for i in range(new_rank) if i not in inserted]   # old axis → new
        shape = tuple(1 if i in inserted else x.shape[new_pos.index(i)]
                      for i in range(new_rank))
        self._view(node, x, shape, tuple(new_pos[a] for a in x.order),
                   None if x.channel is None else new_pos[x.channel])

    def _op_Pad(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        pads = _attr(node, "pads")
        if self._input(node, 1):
            value = self._const_value(node.input[1])
            pads = None if value is None else [int(v) for v in value.reshape(-1)]
        if pads is None or x.shape is None or len(pads) != 2 * len(x.shape) \
                or x.channel not in x.order:
            self._opaque(node, data, "padding with computed pads or of unknown layout")
            return
        rank = len(x.shape)
        padded = [(pads[i], pads[i + rank]) for i in range(rank)]
        spatial = [a for a in x.order if a != x.channel]
        if any(padded[a] != (0, 0) for a in range(rank) if a not in spatial):
            self._opaque(node, data, "padding of the batch, channel or a dummy axis")
            return
        self._emit(node, OpKind.PAD, [x], {"padding": tuple(padded[a] for a in spatial),
                                           "mode": _text(_attr(node, "mode", "constant"))},
                   self._out(node, x))

    def _op_Split(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        if x.shape is None:
            self._opaque(node, data, "split of a tensor of unknown rank")
            return
        axis = int(_attr(node, "axis", 0)) % len(x.shape)
        sizes = _attr(node, "split")
        if sizes is None and self._input(node, 1):
            value = self._const_value(node.input[1])
            sizes = None if value is None else [int(v) for v in value.reshape(-1)]
        total = x.shape[axis]
        if sizes is None and total is not None:
            parts = len(node.output)
            sizes = [-(-total // parts)] * (parts - 1)
            sizes.append(total - sum(sizes))
        if sizes is None or x.index(axis) is None:
            self._opaque(node, data, "split with unknown sizes or over the batch")
            return
        start = 0
        for i, (name, size) in enumerate(zip(node.output, sizes)):
            shape = tuple(size if j == axis else d for j, d in enumerate(x.shape))
            out = dataclasses.replace(x, node="", shape=shape, sole=False)
            attrs = {"axis": x.index(axis), "start": start, "stop": start + size}
            self._emit(_Renamed(node, f"{node.name or 'Split'}/{i}", [name]), OpKind.SLICE,
                       [x], attrs, out)
            start += size

    def _op_Slice(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        values = [self._const_value(n) for n in list(node.input[1:5])]
        if x.shape is None or len(values) < 2 or values[0] is None or values[1] is None:
            self._opaque(node, data, "slice with computed bounds")
            return
        rank = len(x.shape)
        starts = [int(v) for v in values[0].reshape(-1)]
        ends = [int(v) for v in values[1].reshape(-1)]
        axes = ([int(v) % rank for v in values[2].reshape(-1)]
                if len(values) > 2 and values[2] is not None else list(range(len(starts))))
        steps = ([int(v) for v in values[3].reshape(-1)]
                 if len(values) > 3 and values[3] is not None else [1] * len(starts))
        bounds = {}
        for axis, start, end, step in zip(axes, starts, ends, steps):
            size = x.shape[axis]
            if size is None or step != 1:
                self._opaque(node, data, "strided slice or slice of an unknown dimension")
                return
            start = min(max(start + size if start < 0 else start, 0), size)
            end = min(max(end + size if end < 0 else end, 0), size)
            if (start, end) != (0, size):
                bounds[axis] = (start, end)
        shape = tuple(bounds[i][1] - bounds[i][0] if i in bounds else d
                      for i, d in enumerate(x.shape))
        out = self._out(node, x, shape)
        if not bounds:
            self._view(node, x, x.shape, x.order, x.channel)
        elif list(bounds) == [x.channel] and x.index(x.channel) is not None:
            start, end = bounds[x.channel]
            self._emit(node, OpKind.SLICE, [x], {"axis": x.index(x.channel), "start": start,
                                                 "stop": end}, out)
        elif x.channel in x.order and all(a in x.order and a != x.channel for a in bounds):
            cropping = tuple((bounds[a][0], x.shape[a] - bounds[a][1]) if a in bounds
                             else (0, 0) for a in x.order if a != x.channel)
            self._emit(node, OpKind.CROP, [x], {"cropping": cropping}, out)
        else:
            self._opaque(node, data, "slice over several kinds of axes")

    def _op_Resize(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        shape = self._shape_of(node.output[0])
        mode = _text(_attr(node, "mode", "nearest"))
        spatial = [a for a in x.order if a != x.channel]
        if shape is None or x.shape is None or x.channel not in x.order or any(
                not x.shape[a] or shape[a] is None or shape[a] % x.shape[a] for a in spatial):
            self._opaque(node, data, "resize by a non-integer or unknown factor")
            return
        self._emit(node, OpKind.UPSAMPLE, [x], {
            "size": tuple(shape[a] // x.shape[a] for a in spatial),
            "interpolation": "bilinear" if mode == "linear" else mode},
            self._out(node, x, shape))

    _op_Upsample = _op_Resize


class _Renamed:
    """A stand-in ONNX node with another name and outputs (one IR node per Split output)."""

    def __init__(self, node, name: str, outputs: list):
        self.name = name
        self.op_type = node.op_type
        self.output = outputs
        self.input = node.input


# --- pure helpers ------------------------------------------------------------------------

def _attr(node, name: str, default: Any = None) -> Any:
    from onnx import helper
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _value_shape(value) -> Optional[tuple]:
    """The shape of a ``ValueInfoProto`` (``None`` for unknown dims), or ``None``."""
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None
                 for d in tensor_type.shape.dim)


def _broadcast_kind(dims: tuple, x: _Tensor) -> str:
    """How a constant of ``dims`` broadcasts against ``x``: ``"scalar"``, ``"channel"``
    (one value per channel, along the channel axis) or ``"other"``."""
    size = 1
    for d in dims:
        size *= d
    if size == 1:
        return "scalar"
    if x.shape is None or x.channel is None or len(dims) > len(x.shape):
        return "other"
    offset = len(x.shape) - len(dims)
    big = [offset + i for i, d in enumerate(dims) if d != 1]
    if big == [x.channel] and size == x.channels():
        return "channel"
    return "other"


def _padding(auto: str, pads: list, sizes: list, kernel: list, strides: list,
             dilation: list, transpose: bool):
    """ONNX padding → ``"same"``, ``"valid"`` or explicit ``((begin, end), ...)``."""
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        return "same"
    if auto == "VALID" or all(p == (0, 0) for p in pads):
        return "valid"
    if transpose:
        return tuple(pads)
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


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _product(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out


def _reshape_target(shape: tuple, target: list, allowzero: bool) -> Optional[tuple]:
    """ONNX Reshape semantics (0 copies a dimension, -1 is inferred)."""
    out = []
    for i, t in enumerate(target):
        if t == 0 and not allowzero:
            if i >= len(shape):
                return None
            out.append(shape[i])
        else:
            out.append(t)
    total = 1
    for d in shape:
        total *= d
    if out.count(-1) == 1:
        known = 1
        for d in out:
            if d != -1:
                known *= d
        if known == 0 or total % known:
            return None
        out[out.index(-1)] = total // known
    elif -1 in out:
        return None
    return tuple(out)


def _evaluate(node, values: list) -> Optional[list]:
    """numpy evaluation of the constant ops shape computations use; ``None`` if the op
    is not one of them or an input is unknown."""
    import numpy as np
    op = node.op_type
    if op == "Constant":
        from onnx import numpy_helper
        for attribute in node.attribute:
            if attribute.name == "value":
                return [numpy_helper.to_array(attribute.t)]
            if attribute.name in ("value_int", "value_float"):
                return [np.array(_attr(node, attribute.name))]
            if attribute.name in ("value_ints", "value_floats"):
                return [np.array(_attr(node, attribute.name))]
        return None
    if any(v is None for v in values[:1]) or op not in _EVALUATORS:
        return None
    return [_EVALUATORS[op](node, values)]


def _slice_value(node, values: list):
    import numpy as np
    data = values[0]
    if len(values) > 1:
        starts, ends = values[1], values[2]
        axes = values[3] if len(values) > 3 and values[3] is not None else range(len(starts))
        steps = values[4] if len(values) > 4 and values[4] is not None else [1] * len(starts)
    else:
        starts, ends = _attr(node, "starts"), _attr(node, "ends")
        axes = _attr(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return np.asarray(data[tuple(index)])


def _squeeze_value(node, values: list):
    import numpy as np
    axes = _attr(node, "axes")
    if axes is None and len(values) > 1 and values[1] is not None:
        axes = [int(a) for a in values[1].reshape(-1)]
    return np.squeeze(values[0], axis=None if axes is None else tuple(axes))


def _unsqueeze_value(node, values: list):
    import numpy as np
    axes = _attr(node, "axes")
    if axes is None:
        axes = [int(a) for a in values[1].reshape(-1)]
    out = values[0]
    rank = out.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        out = np.expand_dims(out, axis)
    return out


def _binary(fn):
    def evaluate(_node, values):
        import numpy as np
        a, b = values[0], values[1]
        if b is None:
            raise ValueError("unknown operand")
        out = fn(a, b)
        return np.asarray(out).astype(np.result_type(a, b))
    return evaluate


def _divide(a, b):
    import numpy as np
    if np.issubdtype(np.result_type(a, b), np.integer):
        return np.trunc(a / b)
    return a / b


def _cast_value(node, values: list):
    from onnx import helper
    return values[0].astype(helper.tensor_dtype_to_np_dtype(_attr(node, "to")))


def _gather_value(node, values: list):
    import numpy as np
    return np.take(values[0], values[1].astype(np.int64), axis=int(_attr(node, "axis", 0)))


def _concat_value(node, values: list):
    import numpy as np
    if any(v is None for v in values):
        raise ValueError("unknown operand")
    return np.concatenate([np.atleast_1d(v) for v in values], axis=int(_attr(node, "axis", 0)))


def _reshape_value(_node, values: list):
    target = [int(t) for t in values[1].reshape(-1)]
    shape = _reshape_target(values[0].shape, target, False)
    if shape is None:
        raise ValueError("bad reshape")
    return values[0].reshape(shape)


def _constant_of_shape(node, values: list):
    import numpy as np
    from onnx import numpy_helper
    fill = _attr(node, "value")
    value = numpy_helper.to_array(fill) if fill is not None else np.zeros(1, np.float32)
    return np.full([int(d) for d in values[0].reshape(-1)], value.reshape(-1)[0],
                   dtype=value.dtype)


def _range_value(_node, values: list):
    import numpy as np
    return np.arange(values[0], values[1], values[2])


def _reduce_prod(node, values: list):
    import numpy as np
    axes = _attr(node, "axes")
    keep = bool(_attr(node, "keepdims", 1))
    return np.prod(values[0], axis=None if axes is None else tuple(axes), keepdims=keep)


def _transpose_value(node, values: list):
    import numpy as np
    return np.transpose(values[0], _attr(node, "perm"))


def _evaluators() -> dict:
    import operator
    return {
        "Identity": lambda _n, v: v[0], "Cast": _cast_value, "Gather": _gather_value,
        "Slice": _slice_value, "Concat": _concat_value, "Squeeze": _squeeze_value,
        "Unsqueeze": _unsqueeze_value, "Reshape": _reshape_value,
        "Add": _binary(operator.add), "Sub": _binary(operator.sub),
        "Mul": _binary(operator.mul), "Div": _binary(_divide),
        "Max": _binary(lambda a, b: a if (a >= b).all() else b),
        "Min": _binary(lambda a, b: a if (a <= b).all() else b),
        "ConstantOfShape": _constant_of_shape, "Range": _range_value,
        "ReduceProd": _reduce_prod, "Transpose": _transpose_value,
    }


_EVALUATORS = _evaluators()


# --- graph rewrites ----------------------------------------------------------------------

def _merge_split_group_conv(graph: Graph, concat: Node) -> None:
    """Split → one Conv per part → Concat, over the channels, becomes one grouped conv
    (named after the Concat), so that rules see the group conv Keras had."""
    convs = [graph.nodes[n] for n in concat.inputs]
    if len(convs) < 2 or any(c.op != OpKind.CONV or c.attrs.get("groups", 1) != 1
                             or c.output_shape is None
                             or graph.single_consumer(c) is not concat for c in convs):
        return
    slices = [graph.nodes[c.inputs[0]] for c in convs]
    if any(s.op != OpKind.SLICE or graph.single_consumer(s) is None for s in slices):
        return
    source = slices[0].inputs[0]
    first = convs[0]
    same = ("rank", "kernel", "strides", "dilation", "padding", "use_bias", "filters",
            "in_channels", "data_format")
    width = first.attrs["in_channels"]
    if (any(s.inputs[0] != source for s in slices)
            or any(c.attrs.get(k) != first.attrs.get(k) for c in convs for k in same)
            or [s.attrs["start"] for s in slices] != [i * width for i in range(len(convs))]
            or any(s.attrs.get("stop") != s.attrs["start"] + width for s in slices)
            or concat.attrs.get("axis") != _channel_index(concat)
            or slices[0].attrs.get("axis") != _channel_index(slices[0])
            or graph.nodes[source].output_shape is None):
        return
    groups = len(convs)
    attrs = dict(first.attrs, groups=groups, in_channels=width * groups,
                 filters=first.attrs["filters"] * groups)
    params = None if any(c.params is None for c in convs) else sum(c.params for c in convs)
    in_shape = list(first.input_shapes[0])
    in_shape[_channel_index(first)] = width * groups
    merged = Node(name=concat.name, op=OpKind.CONV, inputs=[source],
                  input_shapes=[tuple(in_shape)],
                  output_shape=concat.output_shape, attrs=attrs, params=params,
                  layer=concat.layer, source_class="Conv(split groups)")
    _replace(graph, [s.name for s in slices] + [c.name for c in convs] + [concat.name],
             merged)


def _channel_index(node: Node) -> Optional[int]:
    """The channel position in ``node``'s (first) input shape."""
    shape = node.input_shapes[0] if node.input_shapes else None
    if not shape:
        return None
    return 0 if node.data_format == "channels_first" else len(shape) - 1


def _replace(graph: Graph, removed: list, node: Node) -> None:
    """Put ``node`` (named like the last of ``removed``) in the place of ``removed``."""
    gone = set(removed)
    nodes = {}
    for name, current in graph.nodes.items():
        if name == node.name:
            nodes[name] = node
        elif name not in gone:
            nodes[name] = current
    graph.nodes = nodes
    graph.__post_init__()
