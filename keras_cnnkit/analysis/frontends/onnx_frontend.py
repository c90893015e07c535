"""ONNX model → graph IR, so that the same rules and cost model lint ONNX CNNs.

:func:`load_onnx_graph` reads an ``.onnx`` file (or an ``onnx.ModelProto``) exported by
any framework, in NCHW or NHWC layout, and produces a :class:`~keras_cnnkit.analysis.ir.Graph`
whose node names (and ``Node.layer``) are the ONNX node names.

Shapes
    A symbolic batch dimension is 1.  The other unknown input dimensions take
    ``input_shape`` where given, else :data:`DEFAULT_SPATIAL` (224), as for Keras files,
    and a line in ``Graph.notes`` says so (the usual export has dynamic height and
    width); an input with no known dimension but the batch keeps them unknown, with a
    note asking for ``input_shape``.  Every node's output shape comes from its op kind's
    own shape rule (:mod:`keras_cnnkit.analysis.ops`); ``onnx.shape_inference`` (with
    data propagation, on a copy of the graph whose large initializers carry only their
    dimensions) fills only what that rule cannot know (opaque ops) — ONNX's inference
    loses dimensions for good wherever it gives up, e.g. after a ``Slice`` whose bounds
    are computed.  Shape computations (``Shape → Gather → Concat → Reshape`` chains, as
    exporters write for ``Flatten``, ``view`` and ``chunk``) are folded with numpy, so
    their targets are known.  Ops that only compute shapes or constants become no IR node,
    and constants are parameters only where they can be: never integer (32/64-bit) or
    boolean constants (shapes, bounds, indices), scalars, ``Resize`` scales, or the
    stride/anchor tables (multiples of ½) a detection head adds or multiplies.

Layouts
    Every activation tensor records its physical ONNX shape, its channel axis, and the
    *logical order* of its axes: the physical axes that make up its IR shape, in IR order.
    Views — transposes, reshapes that only add or drop singleton axes, Identity, Cast —
    change the physical shape and the order but not the logical shape, and make no node,
    so every node's input shapes equal its producers' output shapes.  A graph input's
    logical order is its own; its channel axis is found by following it to the first op
    with a fixed layout (ONNX's Conv, pooling and BatchNormalization read channels on
    axis 1).  Thus a tf2onnx export of an NHWC Keras model, with its transposes around
    every conv, reads ``channels_last`` throughout as Keras does, and a PyTorch export
    ``channels_first``.  Singleton axes added by ``Unsqueeze`` (tf2onnx runs ``Conv1D`` as
    a 1×k 2D conv) and the pooled axes of a global pooling that a later
    ``Squeeze``/``Flatten`` removes are not logical: a 1×k conv over such an axis is a
    rank-1 conv, and ``GlobalAveragePool`` + ``Flatten`` is Keras'
    ``GlobalAveragePooling2D``.

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
    MatMul over the channels of a tensor      dense with ``axis`` (PyTorch's ConvNeXt:
    read channels-first                       permute → Linear → permute)
    Add of a per-channel constant after a     the conv's / dense's bias (``use_bias``)
    bias-free conv, conv_transpose or dense
    BatchNormalization                        batchnorm
    Mul/Div by a per-channel constant         layer_scale (ConvNeXt's ``γ · x``)
    the same with Add/Sub of a per-channel    batchnorm (``attrs["folded"]``): the
    constant after it                         inference form of a BN; ``Node.params``
                                              holds the 2·C numbers stored, the cost
                                              model its Keras-convention 4·C
    LayerNormalization (opset 17)             norm (``kind="layer"``)
    GroupNormalization,                       norm (``kind="group"``; instance norm:
    InstanceNormalization                     one group per channel)
    Add/Sub/Mul/Div by a scalar constant      rescale
    Add/Sub/Mul/Max/Min/Mean/Sum of tensors   add/subtract/multiply/maximum/minimum/...
    Split + one Conv per part + Concat        one grouped conv (the split form of a
                                              group conv, as ``cnnkit-export`` writes it)
    x · Sigmoid(x)                            activation ``silu``
    x · ½(1 + Erf(x / √2))                    activation ``gelu`` (named after the Erf)
    MaxPool, AveragePool                      pool
    GlobalAveragePool/GlobalMaxPool,          global_pool
    ReduceMean/ReduceMax over all spatial
    axes
    ReduceSum/Mean/Max/Min/Prod over other    reduce (ResNeSt's sum over its radix)
    axes
    Flatten, Reshape, Squeeze, Unsqueeze      flatten/reshape, or nothing when only
                                              singleton axes change
    Transpose                                 nothing (only the logical axis order
                                              of the tensor is tracked)
    Reshape splitting the channels into       channel_shuffle (``groups = g``), in any
    (g, C/g) + Transpose putting C/g before   layout (NCHW, NHWC, NCHW between
    g + Reshape merging them back             transposes; see ``shuffle_axes``)
    Concat, Split/Slice on channels, Gather   concat, slice (Slice or Gather on spatial
    of consecutive channels                   axes: crop)
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

import os
from typing import Any, Optional

from keras_cnnkit.analysis.frontends.budget_checks import check_onnx_model
from keras_cnnkit.analysis.frontends.config_graph import DEFAULT_SPATIAL
from keras_cnnkit.analysis.frontends.onnx_base import (
    ACTIVATIONS,
    AXIS_KEEPING,
    ELEMENTWISE_OPS,
    NCHW_OPS,
    Const,
    Tensor,
    attr,
    identity_order,
    is_external,
    value_shape,
)
from keras_cnnkit.analysis.frontends.onnx_budget import check_shape_inference
from keras_cnnkit.analysis.frontends.onnx_eval import evaluate
from keras_cnnkit.analysis.frontends.onnx_movement import MovementOps
from keras_cnnkit.analysis.frontends.onnx_ops import ComputeOps
from keras_cnnkit.analysis.input_shape import InputShape, as_input_shape, fill_unknown
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.errors import ModelFileError

#: Initializers with more elements than this are stripped to their dimensions before
#: shape inference (their values are never needed).
KEEP_VALUES = 4096


def load_onnx_graph(path_or_model: Any, input_shape: Any = None) -> Graph:
    """The IR graph of an ONNX model.

    Args:
        path_or_model: an ``.onnx`` file path, its bytes, or an ``onnx.ModelProto`` (not
            modified).
        input_shape: shape of the input without the batch dimension, in the input's own
            layout (e.g. ``(3, 224, 224)`` for NCHW), or one value per unknown dim
            (``(224, 224)``), for models with symbolic dimensions; a dict ``{input
            name: shape}`` for several inputs.  ``None``: a symbolic batch is 1 and every
            other unknown dim is :data:`DEFAULT_SPATIAL` (224), as for Keras files, with a
            line in ``Graph.notes`` saying so (an input with no known dim but the batch
            keeps them unknown, and its note asks for ``input_shape``).

    Raises:
        ModelFileError: the file is missing or not a valid ONNX model, or its graph is
            inconsistent.
    """
    proto, source = _load(path_or_model)
    check_onnx_model(source, proto)   # node count and kernel sizes, before converting
    from onnx.checker import ValidationError
    from onnx.shape_inference import InferenceError
    try:
        return _Converter(proto, source, input_shape).run()
    except ModelFileError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, ArithmeticError, AttributeError,
            ValidationError, InferenceError) as exc:
        raise ModelFileError(source, f"cannot analyse the ONNX graph: "
                                     f"{type(exc).__name__}: {exc}") from exc


def _dims_text(dims) -> str:
    """``(batch, 3, height, width)``: an ONNX shape as written, symbols by name."""
    return "(" + ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
                           for d in dims) + ")"


#: Protobuf tags of ``ModelProto`` fields 2-8 and 14 (length-delimited), one of which
#: follows ``ir_version`` (field 1, tag 0x08) at the start of every serialised model.
_SECOND_TAGS = frozenset({0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0x72})


def looks_like_onnx(head: bytes) -> bool:
    """True when ``head`` (a file's first bytes) starts like a serialised ONNX model.

    ONNX files have no magic number; every exporter writes ``ir_version`` first (tag
    0x08, a small varint), then another ``ModelProto`` field.  HDF5, zip and JSON files
    never start this way.
    """
    return (len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] < 0x80
            and head[2] in _SECOND_TAGS)


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


class _Converter(ComputeOps, MovementOps):
    """One conversion: the ONNX graph walked once, in its (topological) order."""

    # --- setup -------------------------------------------------------------------------

    def run(self) -> Graph:
        """Convert the whole graph."""
        graph = self.proto.graph
        for init in graph.initializer:
            self.consts[init.name] = Const(init.dims, proto=init)
        for node in graph.node:
            for name in node.output:
                self.producers[name] = node
            for name in node.input:
                if name:
                    self.uses[name] = self.uses.get(name, 0) + 1
                    self.consumers.setdefault(name, []).append(node)
        for node in graph.node:
            if node.op_type == "Constant":   # patterns look ahead at later constants
                self._fold(node)
        self.inferred = self._infer_shapes()
        for value in graph.input:
            if value.name not in self.consts:
                self._add_input(value)
        for node in graph.node:
            self.node_index += 1
            self._convert(node)
        self._check_sizes()
        outs = []
        for out in graph.output:
            tensor = self.tensors.get(out.name)
            if tensor is not None and tensor.node not in outs:
                outs.append(tensor.node)
        if not outs:
            raise ModelFileError(self.source, "no output of the graph is computed from its "
                                 "inputs (nodes out of topological order, or a cycle)")
        self.graph.outputs = outs
        return self.graph

    def _check_sizes(self) -> None:
        """No tensor of the IR may be empty: a dimension of 0 (or less) is no model to
        lint (and would divide by zero in the rules' arithmetic)."""
        for node in self.graph:
            for shape in (node.output_shape, *node.input_shapes):
                if shape and any(d is not None and d < 1 for d in shape):
                    raise ModelFileError(self.source, f"node {node.layer!r} "
                                         f"({node.source_class}) has a tensor of shape "
                                         f"{tuple(shape)}: an empty tensor, not a model "
                                         "to lint")

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
            size = prod(init.dims)
            if size <= KEEP_VALUES and not is_external(init):
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
            tensor_type = copy.type.tensor_type
            given = self._given_shape(value.name, len(real_inputs))
            if given is not None and not tensor_type.HasField("shape"):
                tensor_type.shape.dim.add().dim_value = 1
                tensor_type.shape.dim.extend(
                    [onnx.TensorShapeProto.Dimension(dim_value=int(d)) for d in given])
            dims = tensor_type.shape.dim
            if given is not None:
                self._apply_shape(value.name, list(dims)[1:], given)
            else:
                self._default_shape(value.name, tensor_type)
            if dims and not dims[0].HasField("dim_value"):
                dims[0].Clear()
                dims[0].dim_value = 1
        self.given = {v.name: value_shape(v) for v in graph.input}
        check_shape_inference(self.source, light)   # what inference may record, first
        try:
            light = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
        except Exception:  # pylint: disable=broad-exception-caught
            # onnx raises its own error types; fall back to the shapes computed here.
            pass
        shapes = {}
        for value in list(light.graph.value_info) + list(light.graph.output) + list(
                light.graph.input):
            shape = value_shape(value)
            if shape is not None:
                shapes[value.name] = shape
        return shapes

    def _apply_shape(self, name: str, dims: list, given: InputShape) -> None:
        """Set the non-batch ``dims`` of input ``name`` from ``given``: the full shape,
        or one value per unknown dimension (a configuration default fills the unknown
        ones only, see :mod:`keras_cnnkit.analysis.input_shape`)."""
        declared = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        shape = fill_unknown(declared, given)
        if shape is None:
            raise ModelFileError(self.source, f"{given.describe()} does not fit input "
                                 f"{name!r} of rank {len(dims) + 1}")
        for dim, size in zip(dims, shape):
            if size is not None:
                dim.Clear()
                dim.dim_value = int(size)

    def _default_shape(self, name: str, tensor_type) -> None:
        """Give the unknown non-batch dims of input ``name`` the default size
        (:data:`DEFAULT_SPATIAL`, as for Keras files), with a note saying so; an input
        whose every dim is unknown keeps them, with a note asking for ``--input-shape``."""
        dims = list(tensor_type.shape.dim)[1:]
        unknown = [d for d in dims if not d.HasField("dim_value")]
        if tensor_type.HasField("shape") and not unknown:
            return
        if not unknown or len(unknown) == len(dims):
            what = "no shape" if not tensor_type.HasField("shape") else (
                f"no known dimension besides the batch ({_dims_text(tensor_type.shape.dim)})")
            self.graph.notes.append(f"input {name!r} has {what}: costs that depend on "
                                    "it are unknown; give its size with --input-shape "
                                    "(input_shape=...)")
            return
        before = _dims_text(tensor_type.shape.dim)
        for dim in unknown:
            dim.Clear()
            dim.dim_value = DEFAULT_SPATIAL
        after = "x".join(["1"] + [str(d.dim_value) for d in dims])
        self.graph.notes.append(f"input {name!r} {before}: unknown dims taken as "
                                f"{DEFAULT_SPATIAL} (the default), linted as {after}; "
                                "--input-shape (input_shape=...) sets them")

    def _given_shape(self, name: str, count: int) -> Optional[InputShape]:
        given = self.input_shape
        if given is None:
            return None
        if isinstance(given, dict):
            shape = given.get(name)
            return None if shape is None else as_input_shape(shape)
        if count != 1:
            raise ModelFileError(self.source, "the model has several inputs: give "
                                 "input_shape as {name: shape}")
        return as_input_shape(given)

    def _add_input(self, value) -> None:
        shape = self._shape_of(value.name) or self.given.get(value.name)
        if shape is not None and shape and shape[0] is None:
            shape = (1,) + shape[1:]
        name = self._unique(value.name)
        channel = self._input_channel_axis(value.name, shape)
        fmt = "channels_first" if channel == 1 and shape and len(shape) > 2 else "channels_last"
        tensor = Tensor(name, shape, identity_order(shape), channel, fmt,
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
                if user.op_type in NCHW_OPS:
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
            perm = attr(user, "perm", list(reversed(range(len(axes)))))
            return [axes[p] for p in perm]
        if user.op_type == "Unsqueeze":
            insert = self._axes_of(user, None)
            if insert is None:
                return None
            rank = len(axes) + len(insert)
            inserted = {a % rank for a in insert}
            it = iter(axes)
            return [None if i in inserted else next(it) for i in range(rank)]
        if user.op_type in AXIS_KEEPING:
            return axes
        return None

    # --- dispatch ----------------------------------------------------------------------

    def _convert(self, node) -> None:
        if node.output and node.output[0] in self.absorbed:
            # Part of a pattern an earlier node already converted (the GELU of an Erf).
            self.tensors[node.output[0]] = self.absorbed.pop(node.output[0])
            return
        data = [self.tensors[n] for n in node.input if n in self.tensors]
        if not data:
            if node.op_type != "Constant":
                self._fold(node)
            return
        if node.op_type in ("Shape", "Size"):
            self._fold_shape(node, data[0])
            return
        handler = getattr(self, f"_op_{node.op_type}", None)
        if handler is None:
            if node.op_type in ACTIVATIONS:
                handler = self._activation
            elif node.op_type in ELEMENTWISE_OPS:
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
            results = evaluate(node, values, self.source)
        except ModelFileError:   # over a budget
            raise
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, ArithmeticError):
            results = None
        for name, value in zip(node.output, results or ()):
            if value is not None:
                self.consts[name] = Const(value.shape, value=value)

    def _fold_shape(self, node, tensor: Tensor) -> None:
        import numpy as np
        shape = tensor.shape
        if shape is None or any(d is None for d in shape):
            return
        if node.op_type == "Size":
            value = np.array(int(np.prod(shape)), dtype=np.int64)
        else:
            start, end = attr(node, "start", 0), attr(node, "end", None)
            value = np.array(shape[start:end], dtype=np.int64)
        self.consts[node.output[0]] = Const(value.shape, value=value)
