"""ONNX op handlers that compute: convolutions, pooling, dense layers, normalisation,
activations and element-wise ops (see :mod:`keras_cnnkit.analysis.frontends.onnx_frontend`)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.frontends.onnx_base import (
    ACTIVATIONS,
    ELEMENTWISE_OPS,
    Const,
    ConverterBase,
    Renamed,
    Tensor,
    attr,
    broadcast_kind,
    padding_of,
    text,
)
from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import Trait, has_trait


class ComputeOps(ConverterBase):
    """Handlers (``_op_<OnnxOp>``) of the ops that do arithmetic."""

    # ONNX's convolutions and pooling: channels on axis 1, spatial axes after.

    def _nchw_input(self, node, x: Tensor, kernel: tuple) -> tuple:
        """``(x as the op reads it, spatial axes in logical order, dropped axes)``.

        Spatial axes that are dummies and that the window leaves alone (k = s = d = 1,
        no padding) are dropped: a 1×k conv over an unsqueezed axis is a rank-1 conv.
        Dummies it does use become logical again, through a reshape node.
        """
        rank = len(kernel)
        spatial = list(range(2, 2 + rank))
        strides = list(attr(node, "strides", [1] * rank))
        dilation = list(attr(node, "dilations", [1] * rank))
        pads = list(attr(node, "pads", [0] * (2 * rank)))
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

    def _reshape_to(self, node, x: Tensor, order: tuple) -> Tensor:
        """A reshape node making ``x``'s dummies in ``order`` logical (e.g. (C,) → (1, 1, C)
        before a 1×1 conv, as Keras' squeeze-and-excite blocks do)."""
        out = dataclasses.replace(x, order=order, fmt=x.data_format())
        target = out.logical()
        fake = Renamed(node, f"{node.name or node.op_type}/reshape", [])
        self._emit(fake, OpKind.RESHAPE, [x], {"target_shape": target,
                                               "data_format": out.data_format()}, out)
        out.sole = True
        return out

    def _window(self, node, x: Tensor, spatial: list, kernel: tuple,
                transpose: bool = False) -> dict:
        """Kernel, strides, dilation and padding of a conv/pool, in logical axis order."""
        rank = len(kernel)
        strides = list(attr(node, "strides", [1] * rank))
        dilation = list(attr(node, "dilations", [1] * rank))
        pads = list(attr(node, "pads", [0] * (2 * rank)))
        auto = text(attr(node, "auto_pad", "NOTSET"))
        idx = [a - 2 for a in spatial]
        return {
            "rank": len(idx),
            "kernel": tuple(kernel[i] for i in idx),
            "strides": tuple(strides[i] for i in idx),
            "dilation": tuple(dilation[i] for i in idx),
            "padding": padding_of(auto, [(pads[i], pads[i + rank]) for i in idx],
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
        groups = int(attr(node, "group", 1))
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
        groups = int(attr(node, "group", 1))
        out_pad = attr(node, "output_padding")
        attrs = dict(self._window(node, x, spatial, kernel, transpose=True), groups=groups,
                     in_channels=weight.dims[0], filters=weight.dims[1] * groups,
                     use_bias=bias is not None, activation=None,
                     output_padding=None if out_pad is None
                     else tuple(out_pad[a - 2] for a in spatial))
        self._emit(node, OpKind.CONV_TRANSPOSE, [x], attrs, self._out(node, x),
                   params=weight.size + (bias.size if bias is not None else 0))

    def _pool(self, node, data: list, pool_type: str) -> None:
        kernel = tuple(attr(node, "kernel_shape", []))
        if not kernel or data[0].shape is None:
            self._opaque(node, data, "pooling without kernel_shape")
            return
        x, spatial, _ = self._nchw_input(node, data[0], kernel)
        window = self._window(node, x, spatial, kernel)
        attrs = {"pool_type": pool_type, "rank": window["rank"], "pool_size": window["kernel"],
                 "strides": window["strides"], "padding": window["padding"]}
        if attr(node, "ceil_mode", 0):
            attrs["ceil_mode"] = True
        self._emit(node, OpKind.POOL, [x], attrs, self._out(node, x))

    def _op_MaxPool(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._pool(node, data, "max")

    def _op_AveragePool(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._pool(node, data, "avg")

    def _global_pool(self, node, x: Tensor, pool_type: str, axes: list,
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
        out = Tensor("", shape, order, channel, fmt)
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
        self._global_pool(node, x, pool_type, sorted(axes), bool(attr(node, "keepdims", 1)))

    def _op_ReduceMean(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "avg")

    def _op_ReduceMax(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "max")

    # --- dense ----------------------------------------------------------------------------

    def _dense(self, node, x: Tensor, weight: Const, transposed: bool,
               bias: Optional[Const]) -> None:
        in_features, units = (weight.dims[1], weight.dims[0]) if transposed else weight.dims
        shape = self._shape_of(node.output[0])
        if shape is None and x.shape is not None:
            shape = x.shape[:-1] + (units,)
        attrs = {"in_features": in_features, "units": units, "use_bias": bias is not None,
                 "activation": None, "data_format": "channels_last"}
        last = len(shape) - 1 if shape else None
        out = Tensor("", shape, x.order, last, "channels_last")
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
        if (len(data) != 1 or weight is None or attr(node, "transA", 0)
                or node.input[0] not in self.tensors):
            self._opaque(node, data, "Gemm of two activations")
            return
        self._dense(node, data[0], weight, bool(attr(node, "transB", 0)), bias)

    # --- normalisation, activations ------------------------------------------------------

    def _op_BatchNormalization(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = dataclasses.replace(data[0], channel=1)
        params = sum(self.consts[n].size for n in node.input[1:5] if n in self.consts)
        attrs = {"axis": x.index(1) if x.index(1) is not None else -1,
                 "channels": x.channels(), "center": True, "scale": True,
                 "epsilon": float(attr(node, "epsilon", 1e-5))}
        self._emit(node, OpKind.BATCHNORM, [x], attrs, self._out(node, x), params=params)

    def _activation(self, node, data: list, name: Optional[str] = None) -> None:
        x = data[0]
        attrs = {"activation": name or ACTIVATIONS[node.op_type]}
        if node.op_type == "LeakyRelu":
            attrs["negative_slope"] = float(attr(node, "alpha", 0.01))
        if node.op_type in ("Softmax", "LogSoftmax") and x.shape is not None:
            axis = x.index(int(attr(node, "axis", -1)) % len(x.shape))
            if axis is not None:
                attrs["axis"] = axis
        self._emit(node, OpKind.ACTIVATION, [x], attrs, self._out(node, x))

    def _op_Clip(self, node, data: list) -> None:  # pylint: disable=invalid-name
        low, high = attr(node, "min"), attr(node, "max")
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
        ratio = attr(node, "ratio", 0.5)
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
        self._emit(node, ELEMENTWISE_OPS[node.op_type], data, {}, self._out(node, x))

    def _op_Div(self, node, data: list) -> None:  # pylint: disable=invalid-name
        if len(data) == 1:
            self._with_constant(node, data[0])
        else:
            self._opaque(node, data, "division of two activations")

    def _fuse_silu(self, node, data: list) -> bool:
        """``x · sigmoid(x)`` → the sigmoid node becomes a ``silu`` activation."""
        for a, b in (data, data[::-1]):
            sig = self.graph.nodes.get(b.node)
            is_sigmoid = (sig is not None and sig.op == OpKind.ACTIVATION
                          and sig.attrs.get("activation") == "sigmoid")
            if is_sigmoid and b.sole and sig.inputs == [a.node] \
                    and not self.graph.consumers(sig):
                sig.attrs["activation"] = "silu"
                self._remap(node, b)
                return True
        return False

    def _with_constant(self, node, x: Tensor) -> None:
        """An element-wise op between an activation and a constant (see the table)."""
        const_first = node.input[0] not in self.tensors
        const = self._const(node.input[0 if const_first else 1])
        op = node.op_type
        if const is None:
            self._opaque(node, [x], f"{op} with a computed operand")
            return
        kind = broadcast_kind(const.dims, x)
        if const_first and op == "Div":
            kind = "other"
        shift = op in ("Add", "Sub")
        producer = self.graph.nodes.get(x.node)
        if kind == "channel" and x.sole and producer is not None:
            width = producer.attrs.get("units" if producer.op == OpKind.DENSE else "filters")
            bias_free = (has_trait(producer.op, Trait.WEIGHTED)
                         and not producer.attrs.get("use_bias"))
            if shift and bias_free and const.size == width \
                    and not self.graph.consumers(producer):
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
        scalar_before = (producer is not None and producer.op == OpKind.RESCALE
                         and producer.attrs.get("mode") == "scalar")
        if kind == "scalar" and x.sole and scalar_before \
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

    def _remap(self, node, x: Tensor) -> None:
        """The node's output is ``x``'s node's output (a folded op, no node of its own)."""
        out = node.output[0]
        self.tensors[out] = dataclasses.replace(x, shape=self._shape_of(out) or x.shape,
                                                sole=self._single_use(out))
