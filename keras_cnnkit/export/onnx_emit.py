"""The graph IR and a model file's stored weights → an ONNX model, without Keras.

:func:`emit_onnx` walks a :class:`~keras_cnnkit.analysis.ir.Graph` (read statically from a
``.keras``/``.h5`` file) in topological order and writes one or a few ONNX nodes per IR
node, taking each weight from the file when its node is reached (one weight in memory
at a time besides the model being built).

Layout: the graph's inputs and outputs are NHWC (Keras' order, batch first, batch
dimension ``"batch"``); every tensor with spatial axes is kept NCHW inside, so a
``Transpose`` appears only after each input, before each spatial output and before a
``Flatten``/``Reshape`` (which must see Keras' element order).  IR axes (batch excluded,
channels last) are mapped to NCHW axes by :func:`nchw_axis`.

Every op kind used by keras.applications' CNNs and ``keras_cnnkit.models``' builders is
emitted: convolutions (grouped and depthwise ones as one ``Conv`` with ``group``; Keras'
``"same"`` padding padded at the end as TensorFlow does), dense (``Gemm``, or a 1×1
``Conv`` on a spatial tensor), batch norm (``BatchNormalization``), activations, merges,
concatenation, pools (average pools exclude the padding, ``count_include_pad=0``),
global pools, padding, cropping, flatten, reshape, permute, slices, channel shuffle,
up-sampling, rescaling/normalization layers, layer and group norms, layer scale, and
dropout/identity (no node).  Anything else — an opaque node, a kind or an attribute
without an ONNX form here — raises :class:`NotEmittable` naming the layer and the kind,
before anything is written.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.errors import CnnkitError

#: The ONNX opset written unless told otherwise.
DEFAULT_OPSET = 17
#: The oldest opset the emitter writes (``Softmax`` over one axis, ``Clip`` with inputs).
MIN_OPSET = 13

_SPATIAL_NAMES = ("height", "width", "depth")


class NotEmittable(CnnkitError, ValueError):
    """An IR node has no ONNX form here: ``layer`` and ``kind`` say which."""

    def __init__(self, node: Node, why: str = ""):
        self.layer = node.layer or node.name
        self.kind = node.op
        text = f"layer {self.layer!r} ({node.source_class or 'unknown class'}, op kind " \
               f"{node.op!r}) has no ONNX form in the IR exporter"
        super().__init__(text + (f": {why}" if why else ""))


def nchw_axis(axis: int, rank: int) -> int:
    """IR axis ``axis`` of a rank-``rank`` channels-last tensor (batch excluded) → its
    axis in the NCHW tensor (batch included)."""
    axis = axis % rank
    return 1 if axis == rank - 1 else axis + 2


def _to_nchw_perm(rank: int) -> list:
    """Batch-included NHWC → NCHW permutation for an IR rank (batch excluded)."""
    return [0, rank] + list(range(1, rank))


def _to_nhwc_perm(rank: int) -> list:
    return [0] + list(range(2, rank + 1)) + [1]


def same_pads(size: Optional[int], kernel: int, stride: int, dilation: int) -> tuple:
    """``(begin, end)`` padding of Keras/TensorFlow ``"same"``: the odd pixel at the end."""
    effective = (kernel - 1) * dilation + 1
    if size is None:
        raise ValueError("unknown size")
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class _Tensor:
    """An emitted tensor: its ONNX name, IR shape (batch excluded) and whether it is kept
    NCHW (``True`` for every tensor with spatial axes)."""

    __slots__ = ("name", "shape", "nchw")

    def __init__(self, name: str, shape: tuple, nchw: bool):
        self.name, self.shape, self.nchw = name, tuple(shape), nchw


class OnnxEmitter:
    """Builds the ONNX graph; see :func:`emit_onnx`."""

    def __init__(self, graph: Graph, weights: Callable, store, opset: int = DEFAULT_OPSET,
                 dynamic_spatial: bool = False):
        from onnx import helper
        self.helper = helper
        self.graph, self.weights, self.opset = graph, weights, opset
        self.store = store
        self.dynamic_spatial = dynamic_spatial
        self.nodes: list = []
        self.tensors: dict = {}
        self.used_names: set = set()
        self.consts: dict = {}
        self.current: Optional[Node] = None

    # --- building blocks ---------------------------------------------------------------

    def fresh(self, base: str) -> str:
        """A tensor/node name not used yet, from ``base``."""
        base = base.replace(":", "_") or "t"
        name, k = base, 1
        while name in self.used_names:
            name = f"{base}_{k}"
            k += 1
        self.used_names.add(name)
        return name

    def op(self, op_type: str, inputs: list, base: str = "", **attrs) -> str:
        """Append one ONNX node; returns its (single) output name."""
        base = base or f"{self.current.name if self.current else 'graph'}/{op_type}"
        out = self.fresh(base)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def init(self, array: np.ndarray, base: str) -> str:
        """A new initializer holding ``array`` (float64 → float32)."""
        array = np.asarray(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        name = self.fresh(base)
        self.store.add(name, array)
        return name

    def const(self, values, dtype=np.float32) -> str:
        """A small shared constant (int64 shapes, float scalars)."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self.consts:
            self.consts[key] = self.init(array, "const")
        return self.consts[key]

    def to_plain(self, t: _Tensor) -> str:
        """``t`` in Keras' (NHWC) order."""
        if not t.nchw:
            return t.name
        return self.op("Transpose", [t.name], perm=_to_nhwc_perm(len(t.shape)))

    def from_plain(self, name: str, shape: tuple) -> _Tensor:
        """A tensor in Keras' order → the layout kept inside (NCHW where spatial)."""
        if len(shape) >= 2:
            return _Tensor(self.op("Transpose", [name], perm=_to_nchw_perm(len(shape))),
                           shape, True)
        return _Tensor(name, shape, False)

    def axis(self, t: _Tensor, axis: int) -> int:
        """IR axis of ``t`` → ONNX axis."""
        return nchw_axis(axis, len(t.shape)) if t.nchw else axis % max(len(t.shape), 1) + 1

    def channel_vector(self, t: _Tensor, values: np.ndarray, base: str) -> str:
        """A per-channel vector shaped to broadcast over ``t`` (``(C, 1, 1)`` for NCHW)."""
        values = np.asarray(values, dtype=np.float32)
        if t.nchw and values.ndim == 1:
            values = values.reshape((-1,) + (1,) * (len(t.shape) - 1))
        return self.init(values, base)

    def weights_of(self, node: Node, count: Optional[int] = None) -> list:
        """The node's stored weights as arrays (float32)."""
        arrays = self.weights(node)
        if arrays is None:
            raise NotEmittable(node, "its weights are not in the file")
        if count is not None and len(arrays) < count:
            raise NotEmittable(node, f"expected {count} stored weights, found {len(arrays)}")
        return arrays

    def reduce(self, op_type: str, x: str, axes: list, keepdims: int = 1) -> str:
        """``Reduce*`` over ``axes`` (an attribute before opset 18, an input after)."""
        if self.opset >= 18:
            return self.op(op_type, [x, self.const(axes, np.int64)], keepdims=keepdims)
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)

    # --- the walk ----------------------------------------------------------------------

    def emit(self, name: str, producer: str):
        """The ONNX ``ModelProto`` of the whole graph, without its initializers (they
        are in the store)."""
        helper = self.helper
        from onnx import TensorProto
        inputs, outputs = [], []
        for node in self.graph:
            self.current = node
            if node.op == OpKind.INPUT:
                inputs.append(self._input(node))
                continue
            args = [self.tensors[src] for src in node.inputs]
            self.tensors[node.name] = self._node(node, args)
        self.current = None
        for out_name in self.graph.outputs:
            t = self.tensors[out_name]
            node = self.graph[out_name]
            final = self.fresh(node.layer or out_name)
            if t.nchw:
                self.nodes.append(helper.make_node("Transpose", [t.name], [final], name=final,
                                                   perm=_to_nhwc_perm(len(t.shape))))
            else:
                self.nodes.append(helper.make_node("Identity", [t.name], [final], name=final))
            outputs.append(helper.make_tensor_value_info(
                final, TensorProto.FLOAT, ["batch"] + self._dims(t.shape)))
        graph = helper.make_graph(self.nodes, name, inputs, outputs)
        model = helper.make_model(graph, producer_name=producer,
                                  opset_imports=[helper.make_opsetid("", self.opset)])
        # the oldest IR version that has the opset: what older runtimes can load
        model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))
        return model

    def _dims(self, shape: tuple) -> list:
        dims = []
        for i, d in enumerate(shape):
            spatial = len(shape) >= 2 and i < len(shape) - 1
            if d is None or (self.dynamic_spatial and spatial):
                dims.append(_SPATIAL_NAMES[i] if spatial and i < 3 else f"dim_{i}")
            else:
                dims.append(int(d))
        return dims

    def _input(self, node: Node) -> "object":
        from onnx import TensorProto
        shape = tuple(node.output_shape)
        name = self.fresh(node.layer or node.name)
        info = self.helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                  ["batch"] + self._dims(shape))
        self.tensors[node.name] = self.from_plain(name, shape)
        return info

    def _node(self, node: Node, args: list) -> _Tensor:
        handler = _HANDLERS.get(node.op)
        if handler is None or node.output_shape is None:
            raise NotEmittable(node)
        try:
            return handler(self, node, args)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            if isinstance(exc, CnnkitError):   # NotEmittable, a damaged file
                raise
            raise NotEmittable(node, str(exc)) from None


# --- op handlers ------------------------------------------------------------------------

def _window_pads(e: OnnxEmitter, node: Node, shape: tuple, kernel, strides, dilation,
                 padding) -> dict:
    """``pads``/``auto_pad`` attributes of a window op on input ``shape`` (IR)."""
    rank = len(kernel)
    spatial = shape[:-1]
    if padding == "valid":
        return {"pads": [0] * (2 * rank)}
    if padding == "same":
        if e.dynamic_spatial or any(s is None for s in spatial):
            return {"auto_pad": "SAME_UPPER"}
        begin, end = zip(*(same_pads(n, k, s, d) for n, k, s, d in
                           zip(spatial, kernel, strides, dilation)))
        return {"pads": list(begin) + list(end)}
    if padding == "causal" and rank == 1:
        return {"pads": [(kernel[0] - 1) * dilation[0], 0]}
    if isinstance(padding, (tuple, list)):
        flat = list(padding)
        if all(isinstance(p, (tuple, list)) for p in flat):
            return {"pads": [int(p[0]) for p in flat] + [int(p[1]) for p in flat]}
        if len(flat) == 2 * rank:
            return {"pads": [int(p) for p in flat]}
    raise NotEmittable(node, f"padding {padding!r}")


_ACTIVATIONS_SIMPLE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh",
                       "softplus": "Softplus", "softsign": "Softsign", "selu": "Selu",
                       "exponential": "Exp"}


def _activation(e: OnnxEmitter, node: Node, x: str, act: Optional[str], t: _Tensor,
                attrs: Optional[dict] = None) -> str:
    attrs = attrs or {}
    if act in (None, "linear"):
        return x
    if act == "relu" and attrs.get("max_value") is not None:
        return e.op("Clip", [x, e.const(0.0), e.const(float(attrs["max_value"]))])
    if act in _ACTIVATIONS_SIMPLE:
        return e.op(_ACTIVATIONS_SIMPLE[act], [x])
    if act == "relu6":
        return e.op("Clip", [x, e.const(0.0), e.const(6.0)])
    if act == "leaky_relu":
        slope = attrs.get("negative_slope")
        slope = 0.2 if slope is None else slope
        if attrs.get("max_value") is not None:
            raise NotEmittable(node, "a leaky ReLU with a max_value")
        return e.op("LeakyRelu", [x], alpha=float(slope))
    if act == "elu":
        return e.op("Elu", [x], alpha=1.0)
    if act == "silu":
        return e.op("Mul", [x, e.op("Sigmoid", [x])])
    if act == "hard_sigmoid":
        return e.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)
    if act == "hard_silu":
        if e.opset >= 14:
            return e.op("HardSwish", [x])
        return e.op("Mul", [x, e.op("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])
    if act == "gelu":
        # x·(1 + erf(x/√2))·½, op for op as PyTorch writes it (the ONNX frontend's pattern)
        erf = e.op("Erf", [e.op("Div", [x, e.const(math.sqrt(2.0))])])
        return e.op("Mul", [e.op("Mul", [x, e.op("Add", [erf, e.const(1.0)])]),
                            e.const(0.5)])
    if act == "mish":
        return e.op("Mul", [x, e.op("Tanh", [e.op("Softplus", [x])])])
    if act in ("softmax", "log_softmax"):
        axis = attrs.get("axis")
        axis = -1 if axis is None else axis
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise NotEmittable(node, f"softmax over axes {axis}")
            axis = axis[0]
        onnx_axis = e.axis(t, axis - 1 if axis > 0 else axis)   # Keras axes count batch
        return e.op("Softmax" if act == "softmax" else "LogSoftmax", [x], axis=onnx_axis)
    raise NotEmittable(node, f"activation {act!r}")


def _conv(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    a = node.attrs
    x = args[0]
    kernel = tuple(a["kernel"])
    rank = len(kernel)
    if not x.nchw or len(x.shape) != rank + 1:
        raise NotEmittable(node, "input is not a channels-last spatial tensor")
    if node.data_format != "channels_last":
        raise NotEmittable(node, "channels_first data format")
    strides = tuple(a.get("strides") or (1,) * rank)
    dilation = tuple(a.get("dilation") or (1,) * rank)
    groups = int(a.get("groups", 1))
    arrays = _conv_weights(e, node)
    kernel_w, bias = arrays[0], (arrays[1] if len(arrays) > 1 else None)
    in_channels, filters = int(a["in_channels"]), int(a["filters"])
    if bias is not None:
        _expect(node, bias, (filters,), "bias")
    if node.op == OpKind.DEPTHWISE_CONV:
        channels, mult = in_channels, filters // in_channels
        _expect(node, kernel_w, kernel + (channels, mult), "kernel")
        kernel_w = kernel_w.reshape(kernel + (1, channels * mult))
        groups = channels
    else:
        _expect(node, kernel_w, kernel + (in_channels // groups, filters), "kernel")
    # Keras (*k, C_in/g, C_out) → ONNX (C_out, C_in/g, *k)
    w = np.transpose(kernel_w, (rank + 1, rank) + tuple(range(rank)))
    inputs = [x.name, e.init(w, f"{node.name}/kernel")]
    del kernel_w, w
    if bias is not None:
        inputs.append(e.init(bias, f"{node.name}/bias"))
    pads = _window_pads(e, node, x.shape, kernel, strides, dilation, a.get("padding", "valid"))
    out = e.op("Conv", inputs, kernel_shape=list(kernel), strides=list(strides),
               dilations=list(dilation), group=groups, **pads)
    t = _Tensor(out, node.output_shape, True)
    t.name = _activation(e, node, out, a.get("activation"), t)
    return t


def _expect(node: Node, array: np.ndarray, shape: tuple, what: str) -> None:
    """Refuse a stored weight whose shape is not the one the node's attributes imply."""
    if tuple(array.shape) != tuple(shape):
        raise NotEmittable(node, f"its stored {what} has shape {tuple(array.shape)}, "
                                 f"expected {tuple(shape)}")


def _conv_weights(e: OnnxEmitter, node: Node) -> list:
    """``[kernel, bias?]`` of a conv node; a separable conv's halves share one layer."""
    arrays = e.weights_of(node)
    if node.source_class.startswith("SeparableConv"):
        if node.op == OpKind.DEPTHWISE_CONV:
            return arrays[:1]
        return arrays[1:]
    return arrays


def _dense(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    a = node.attrs
    x = args[0]
    arrays = e.weights_of(node, 1)
    kernel_w, bias = arrays[0], (arrays[1] if a.get("use_bias", True) and len(arrays) > 1
                                 else None)
    _expect(node, kernel_w, (int(a["in_features"]), int(a["units"])), "kernel")
    if bias is not None:
        _expect(node, bias, (int(a["units"]),), "bias")
    if x.nchw:
        if a.get("axis") not in (None, -1, len(x.shape) - 1):
            raise NotEmittable(node, "a dense layer over a non-channel axis")
        rank = len(x.shape) - 1
        w = kernel_w.T.reshape(kernel_w.shape[1], kernel_w.shape[0], *(1,) * rank)
        inputs = [x.name, e.init(w, f"{node.name}/kernel")]
        if bias is not None:
            inputs.append(e.init(bias, f"{node.name}/bias"))
        out = e.op("Conv", inputs, kernel_shape=[1] * rank)
        t = _Tensor(out, node.output_shape, True)
    elif len(x.shape) == 1:
        inputs = [x.name, e.init(kernel_w, f"{node.name}/kernel")]
        if bias is not None:
            inputs.append(e.init(bias, f"{node.name}/bias"))
        t = _Tensor(e.op("Gemm", inputs), node.output_shape, False)
    else:
        raise NotEmittable(node, f"a dense layer on shape {x.shape}")
    t.name = _activation(e, node, t.name, a.get("activation"), t)
    return t


def _batchnorm(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    a = node.attrs
    x = args[0]
    axis = a.get("axis")
    rank = len(x.shape)
    if axis is not None and e.axis(x, axis) != 1:
        raise NotEmittable(node, f"batch norm over axis {axis}")
    arrays = list(e.weights_of(node))
    channels = int(a.get("channels") or arrays[-1].shape[0])
    if len(arrays) != 2 + bool(a.get("scale", True)) + bool(a.get("center", True)):
        raise NotEmittable(node, f"{len(arrays)} stored weights for a batch norm")
    gamma = arrays.pop(0) if a.get("scale", True) else np.ones(channels, np.float32)
    beta = arrays.pop(0) if a.get("center", True) else np.zeros(channels, np.float32)
    mean, var = arrays[0], arrays[1]
    for what, value in (("gamma", gamma), ("beta", beta), ("moving mean", mean),
                        ("moving variance", var)):
        _expect(node, value, (channels,), what)
    names = [e.init(v, f"{node.name}/{k}") for k, v in
             (("gamma", gamma), ("beta", beta), ("moving_mean", mean),
              ("moving_variance", var))]
    if not x.nchw and rank != 1:
        raise NotEmittable(node, f"batch norm on shape {x.shape}")
    out = e.op("BatchNormalization", [x.name] + names, epsilon=float(a.get("epsilon", 1e-3)))
    return _Tensor(out, node.output_shape, x.nchw)


def _activation_node(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    a = node.attrs
    if a.get("activation") == "prelu":
        # Keras' alpha has the input's shape (batch excluded), 1 on shared axes
        alpha = np.asarray(e.weights_of(node, 1)[0], np.float32)
        if alpha.ndim != len(x.shape):
            raise NotEmittable(node, f"an alpha of shape {alpha.shape}")
        if x.nchw:
            alpha = np.moveaxis(alpha, -1, 0)
        return _Tensor(e.op("PRelu", [x.name, e.init(alpha, f"{node.name}/alpha")]),
                       node.output_shape, x.nchw)
    out = _activation(e, node, x.name, a.get("activation"), x, a)
    if out == x.name:
        out = e.op("Identity", [x.name])
    return _Tensor(out, node.output_shape, x.nchw)


def _merge(op_type: str):
    def handler(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
        if len({a.nchw for a in args}) > 1 or len({len(a.shape) for a in args}) > 1:
            raise NotEmittable(node, "inputs of different ranks")
        names = [a.name for a in args]
        if op_type in ("Sub", "Div"):
            out = e.op(op_type, names[:2])
        elif op_type == "Mean" and len(names) == 1:
            out = e.op("Identity", names)
        else:
            out = names[0]
            binary = {"Sum": "Add", "Mul": "Mul", "Max": "Max", "Min": "Min",
                      "Mean": "Add"}[op_type]
            if op_type in ("Max", "Min"):
                out = e.op(op_type, names)
            else:
                for other in names[1:]:
                    out = e.op(binary, [out, other])
                if op_type == "Mean":
                    out = e.op("Mul", [out, e.const(1.0 / len(names))])
        return _Tensor(out, node.output_shape, args[0].nchw)
    return handler


def _concat(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    if len({a.nchw for a in args}) > 1:
        raise NotEmittable(node, "inputs of different layouts")
    axis = e.axis(args[0], int(node.attrs["axis"]))
    return _Tensor(e.op("Concat", [a.name for a in args], axis=axis), node.output_shape,
                   args[0].nchw)


def _pool(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    a = node.attrs
    x = args[0]
    size = tuple(a["pool_size"])
    rank = len(size)
    if not x.nchw or len(x.shape) != rank + 1 or node.data_format != "channels_last":
        raise NotEmittable(node, "input is not a channels-last spatial tensor")
    strides = tuple(a.get("strides") or size)
    dilation = tuple(a.get("dilation") or (1,) * rank)
    if any(d != 1 for d in dilation):
        raise NotEmittable(node, "dilated pooling")
    pads = _window_pads(e, node, x.shape, size, strides, dilation, a.get("padding", "valid"))
    extra = {"ceil_mode": 1} if a.get("ceil_mode") else {}
    if a.get("pool_type", "max") == "max":
        out = e.op("MaxPool", [x.name], kernel_shape=list(size), strides=list(strides),
                   **pads, **extra)
    else:
        out = e.op("AveragePool", [x.name], kernel_shape=list(size), strides=list(strides),
                   count_include_pad=0, **pads, **extra)
    return _Tensor(out, node.output_shape, True)


def _global_pool(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    if not x.nchw:
        raise NotEmittable(node, "input is not a spatial tensor")
    op_type = "GlobalMaxPool" if node.attrs.get("pool_type") == "max" else "GlobalAveragePool"
    out = e.op(op_type, [x.name])
    if node.attrs.get("keepdims"):
        return _Tensor(out, node.output_shape, True)
    return _Tensor(e.op("Flatten", [out], axis=1), node.output_shape, False)


def _flatten(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    return _Tensor(e.op("Flatten", [e.to_plain(x)], axis=1), node.output_shape, False)


def _reshape(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    target = [(-1 if d is None else int(d)) for d in node.attrs["target_shape"]]
    if 0 in target:
        raise NotEmittable(node, "a zero-sized target")
    if x.nchw and len(target) == len(x.shape) and target[-1] == x.shape[-1] \
            and all(d == 1 for d in x.shape[:-1]) and all(d == 1 for d in target[:-1]):
        return _Tensor(x.name, node.output_shape, True)
    shape = e.const([0] + target, np.int64)
    out = e.op("Reshape", [e.to_plain(x), shape])
    return e.from_plain(out, node.output_shape)


def _transpose(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    perm = [0] + [int(p) + 1 for p in node.attrs["perm"]]
    out = e.op("Transpose", [e.to_plain(x)], perm=perm)
    return e.from_plain(out, node.output_shape)


def _identity(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    del e   # no node: the input tensor is the output
    if node.op == OpKind.IDENTITY and tuple(node.output_shape) != tuple(args[0].shape):
        raise NotEmittable(node, "changes the shape")
    return _Tensor(args[0].name, node.output_shape, args[0].nchw)


def _pad(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    a = node.attrs
    padding = [tuple(int(v) for v in p) for p in a["padding"]]
    if not x.nchw or len(padding) != len(x.shape) - 1 or node.data_format != "channels_last":
        raise NotEmittable(node, "padding of a non-spatial tensor")
    mode = a.get("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise NotEmittable(node, f"pad mode {mode!r}")
    pads = [0, 0] + [p[0] for p in padding] + [0, 0] + [p[1] for p in padding]
    inputs = [x.name, e.const(pads, np.int64)]
    if mode == "constant":
        inputs.append(e.const(float(a.get("value", 0.0))))
    return _Tensor(e.op("Pad", inputs, mode=mode), node.output_shape, True)


def _crop(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    crops = [tuple(int(v) for v in p) for p in node.attrs["cropping"]]
    if not x.nchw or len(crops) != len(x.shape) - 1 or node.data_format != "channels_last":
        raise NotEmittable(node, "cropping of a non-spatial tensor")
    starts = [b for b, _ in crops]
    ends = [(-end if end else np.iinfo(np.int64).max) for _, end in crops]
    axes = list(range(2, 2 + len(crops)))
    out = e.op("Slice", [x.name, e.const(starts, np.int64), e.const(ends, np.int64),
                         e.const(axes, np.int64)])
    return _Tensor(out, node.output_shape, True)


def _slice(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    a = node.attrs
    start = a.get("start") or 0
    stop = a.get("stop")
    stop = np.iinfo(np.int64).max if stop is None else int(stop)
    axis = e.axis(x, int(a["axis"]))
    out = e.op("Slice", [x.name, e.const([int(start)], np.int64), e.const([stop], np.int64),
                         e.const([axis], np.int64)])
    return _Tensor(out, node.output_shape, x.nchw)


def _channel_shuffle(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    groups = int(node.attrs["groups"])
    channels = x.shape[-1]
    if not x.nchw or channels is None or node.data_format != "channels_last":
        raise NotEmittable(node, "unknown channels")
    spatial = list(x.shape[:-1])
    if e.dynamic_spatial or None in spatial:
        split = e.op("Reshape", [x.name, e.const([0, groups, channels // groups, -1],
                                                 np.int64)])
        swapped = e.op("Transpose", [split], perm=[0, 2, 1, 3])
        out = e.op("Reshape", [swapped, e.op("Shape", [x.name])])
        return _Tensor(out, node.output_shape, True)
    # (N, g, C/g, H, W) → swap → (N, C, H, W), as PyTorch writes a channel shuffle
    split = e.op("Reshape", [x.name, e.const([0, groups, channels // groups] + spatial,
                                             np.int64)])
    swapped = e.op("Transpose", [split], perm=[0, 2, 1] + list(range(3, 3 + len(spatial))))
    out = e.op("Reshape", [swapped, e.const([0, channels] + spatial, np.int64)])
    return _Tensor(out, node.output_shape, True)


def _upsample(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    a = node.attrs
    size = [float(s) for s in a["size"]]
    if not x.nchw or len(size) != len(x.shape) - 1 or node.data_format != "channels_last":
        raise NotEmittable(node, "up-sampling of a non-spatial tensor")
    interpolation = a.get("interpolation", "nearest")
    scales = e.const([1.0, 1.0] + size)
    if interpolation == "nearest":
        out = e.op("Resize", [x.name, "", scales], mode="nearest",
                   coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    elif interpolation == "bilinear":
        out = e.op("Resize", [x.name, "", scales], mode="linear",
                   coordinate_transformation_mode="half_pixel")
    else:
        raise NotEmittable(node, f"interpolation {interpolation!r}")
    return _Tensor(out, node.output_shape, True)


def _rescale(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    a = node.attrs
    mode = a.get("mode")
    if mode == "normalization" and not a.get("params"):
        if "scale" not in a:
            raise NotEmittable(node, "a Normalization whose constants are not known")
        scale = np.asarray(a.get("scale", 1.0), np.float32)
        offset = np.asarray(a.get("offset", 0.0), np.float32)
    elif mode == "normalization":
        arrays = e.weights_of(node, 2)
        axes = a.get("axes") or (len(x.shape) - 1,)
        if tuple(axes) != (len(x.shape) - 1,):
            raise NotEmittable(node, f"normalization over axes {axes}")
        mean = np.asarray(arrays[0], np.float32).reshape(-1)
        std = np.maximum(np.sqrt(np.asarray(arrays[1], np.float64).reshape(-1)), 1e-7)
        scale, offset = (1.0 / std).astype(np.float32), (-mean / std).astype(np.float32)
    elif mode in ("rescaling", "scalar"):
        scale = np.asarray(a.get("scale", 1.0), np.float32)
        offset = np.asarray(a.get("offset", 0.0), np.float32)
    else:
        raise NotEmittable(node, f"rescaling mode {mode!r}")
    out = x.name
    for op_type, value, neutral in (("Mul", scale, 1.0), ("Add", offset, 0.0)):
        if value.size == 1 and float(value.reshape(-1)[0]) == neutral:
            continue
        operand = e.const(float(value.reshape(-1)[0])) if value.size == 1 \
            else e.channel_vector(x, value.reshape(-1), f"{node.name}/{op_type.lower()}")
        out = e.op(op_type, [out, operand])
    if out == x.name:
        out = e.op("Identity", [x.name])
    return _Tensor(out, node.output_shape, x.nchw)


def _layer_scale(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    (gamma,) = e.weights_of(node, 1)[:1]
    out = e.op("Mul", [x.name, e.channel_vector(x, np.asarray(gamma).reshape(-1),
                                                f"{node.name}/gamma")])
    return _Tensor(out, node.output_shape, x.nchw)


def _norm(e: OnnxEmitter, node: Node, args: list) -> _Tensor:
    x = args[0]
    a = node.attrs
    kind = a.get("kind")
    rank = len(x.shape)
    eps = float(a.get("epsilon", 1e-3))
    if kind not in ("layer", "group"):
        raise NotEmittable(node, f"{kind} normalization")
    if tuple(a["axes"]) != (rank - 1,):
        raise NotEmittable(node, f"normalization over axes {a['axes']}")
    arrays = list(e.weights_of(node)) if (a.get("scale") or a.get("center")) else []
    gamma = arrays.pop(0) if a.get("scale") else None
    beta = arrays.pop(0) if a.get("center") else None
    if kind == "layer" and e.opset >= 17 and gamma is not None:
        # LayerNormalization normalises from its axis to the last: over the channels of
        # an NCHW tensor only once they are last again (a Transpose pair, as PyTorch's
        # ConvNeXt exports write it)
        src = e.to_plain(x)
        inputs = [src, e.init(np.asarray(gamma, np.float32).reshape(-1), f"{node.name}/gamma")]
        if beta is not None:
            inputs.append(e.init(np.asarray(beta, np.float32).reshape(-1), f"{node.name}/beta"))
        out = e.op("LayerNormalization", inputs, axis=-1, epsilon=eps)
        if x.nchw:
            return e.from_plain(out, node.output_shape)
        return _Tensor(out, node.output_shape, False)
    if kind == "layer":
        axes = [1] if x.nchw else [-1]
        src = x.name
    else:
        groups = int(a.get("groups", 32))
        if not x.nchw:
            raise NotEmittable(node, "a group norm of a non-spatial tensor")
        src = e.op("Reshape", [x.name, e.const([0, groups, -1], np.int64)])
        axes = [2]
    mean = e.reduce("ReduceMean", src, axes)
    centred = e.op("Sub", [src, mean])
    var = e.reduce("ReduceMean", e.op("Mul", [centred, centred]), axes)
    out = e.op("Div", [centred, e.op("Sqrt", [e.op("Add", [var, e.const(eps)])])])
    if kind == "group":
        out = e.op("Reshape", [out, e.op("Shape", [x.name])])
    if gamma is not None:
        out = e.op("Mul", [out, e.channel_vector(x, np.asarray(gamma).reshape(-1),
                                                 f"{node.name}/gamma")])
    if beta is not None:
        out = e.op("Add", [out, e.channel_vector(x, np.asarray(beta).reshape(-1),
                                                 f"{node.name}/beta")])
    return _Tensor(out, node.output_shape, x.nchw)


_HANDLERS = {
    OpKind.CONV: _conv,
    OpKind.DEPTHWISE_CONV: _conv,
    OpKind.DENSE: _dense,
    OpKind.BATCHNORM: _batchnorm,
    OpKind.ACTIVATION: _activation_node,
    OpKind.ADD: _merge("Sum"),
    OpKind.SUBTRACT: _merge("Sub"),
    OpKind.MULTIPLY: _merge("Mul"),
    OpKind.AVERAGE: _merge("Mean"),
    OpKind.MAXIMUM: _merge("Max"),
    OpKind.MINIMUM: _merge("Min"),
    "divide": _merge("Div"),
    OpKind.CONCAT: _concat,
    OpKind.POOL: _pool,
    OpKind.GLOBAL_POOL: _global_pool,
    OpKind.FLATTEN: _flatten,
    OpKind.RESHAPE: _reshape,
    OpKind.TRANSPOSE: _transpose,
    OpKind.DROPOUT: _identity,
    OpKind.IDENTITY: _identity,
    OpKind.PAD: _pad,
    OpKind.CROP: _crop,
    OpKind.SLICE: _slice,
    OpKind.CHANNEL_SHUFFLE: _channel_shuffle,
    OpKind.UPSAMPLE: _upsample,
    OpKind.RESCALE: _rescale,
    OpKind.NORM: _norm,
    "layer_scale": _layer_scale,
}


def emittable_kinds() -> tuple:
    """The op kinds the emitter writes."""
    return tuple(sorted(_HANDLERS))


def check_emittable(graph: Graph) -> None:
    """Raise :class:`NotEmittable` for the first node with no ONNX form (by kind and
    shape only; attribute problems are found while emitting)."""
    for node in graph:
        if node.op == OpKind.INPUT:
            continue
        if node.op not in _HANDLERS or node.output_shape is None:
            raise NotEmittable(node)


def emit_onnx(graph: Graph, weights: Callable, store, opset: int = DEFAULT_OPSET,
              dynamic_spatial: bool = False, name: str = "", producer: str = "keras-cnnkit"):
    """``graph`` → an ONNX ``ModelProto`` whose initializers are in ``store``.

    Args:
        graph: the model's IR (from the static file frontend).
        weights: ``weights(node) → [np.ndarray, ...]``, the node's layer's stored weights
            in Keras' order (``None`` when the file has none for it).
        store: a :class:`~keras_cnnkit.export.onnx_write.TensorStore`; each initializer
            is written to it when made.
        opset: the ONNX opset (13 or later).
        dynamic_spatial: spatial input dims are symbolic (``height``, ``width``).

    Raises:
        NotEmittable: a node has no ONNX form here.
    """
    if opset < MIN_OPSET:
        raise ValueError(f"the IR exporter writes opset {MIN_OPSET} or later, not {opset}")
    check_emittable(graph)
    emitter = OnnxEmitter(graph, weights, store, opset=opset, dynamic_spatial=dynamic_spatial)
    return emitter.emit(name or graph.name or "model", producer)
