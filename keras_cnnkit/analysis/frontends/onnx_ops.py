"""ONNX op handlers that compute: convolutions, pooling, dense layers, normalisation,
activations and element-wise ops (see :mod:`keras_cnnkit.analysis.frontends.onnx_frontend`)."""
from __future__ import annotations

import dataclasses
import math
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
from keras_cnnkit.analysis.ops import Trait, check_attrs, has_trait
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.ops.layer_scale import LAYER_SCALE
from keras_cnnkit.analysis.ops.reduce import REDUCE
from keras_cnnkit.errors import ModelFileError


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
        strides, dilation, pads = self._window_attrs(node, kernel)
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

    def _window_attrs(self, node, kernel: tuple) -> tuple:
        """``(strides, dilations, pads)`` of a conv/pool, checked against its kernel."""
        rank = len(kernel)
        strides = list(attr(node, "strides", [1] * rank))
        dilation = list(attr(node, "dilations", [1] * rank))
        pads = list(attr(node, "pads", [0] * (2 * rank)))
        if (len(strides), len(dilation), len(pads)) != (rank, rank, 2 * rank) or min(
                [*kernel, *strides, *dilation, 1]) < 1 or min([*pads, 0]) < 0:
            raise ModelFileError(self.source, f"node {node.name!r} ({node.op_type}): "
                                 f"kernel {list(kernel)}, strides {strides}, dilations "
                                 f"{dilation} and pads {pads} do not make a window")
        return strides, dilation, pads

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
        strides, dilation, pads = self._window_attrs(node, kernel)
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
        given = x.channels()
        if groups < 1 or (given is not None and given != in_channels):
            raise ModelFileError(self.source, f"node {node.name!r} (Conv): its weight "
                                 f"{node.input[1]!r} of shape {list(weight.dims)} in "
                                 f"{groups} group(s) reads {in_channels} channels, but its "
                                 f"input has {given}")
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
        if any(d != 1 for d in window["dilation"]):
            attrs["dilation"] = window["dilation"]
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

    def _reduce(self, node, data: list, reduce_type: str) -> None:
        """A reduction: over exactly the spatial axes (channel known) a global pooling,
        over other axes a ``reduce`` node (ResNeSt's sum over its radix axis)."""
        x = data[0]
        rank = len(x.shape) if x.shape is not None else None
        axes = self._axes_of(node, rank)
        if rank is not None and not axes:
            if attr(node, "noop_with_empty_axes", 0):
                self._view(node, x, x.shape, x.order, x.channel)
                return
            axes = list(range(rank))
        if x.shape is None or axes is None or 0 in axes or any(
                a not in x.order and x.shape[a] != 1 for a in axes):
            self._opaque(node, data, f"{node.op_type} over the batch, a hidden axis or "
                                     "computed axes")
            return
        keepdims = bool(attr(node, "keepdims", 1))
        spatial = [a for a in x.order if a != x.channel] if x.channel in x.order else None
        pooled = {"mean": "avg", "max": "max"}.get(reduce_type)
        if pooled and spatial and sorted(a for a in axes if a in x.order) == sorted(spatial):
            self._global_pool(node, x, pooled, sorted(axes), keepdims)
            return
        if keepdims:
            out = self._out(node, x)
        else:
            def renumber(a):
                return a - sum(1 for r in axes if r < a)
            shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
            channel = None if x.channel is None or x.channel in axes else renumber(x.channel)
            out = Tensor("", shape, tuple(renumber(a) for a in x.order if a not in axes),
                         channel, x.data_format())
        self._emit(node, REDUCE, [x], {
            "axes": tuple(sorted(x.index(a) for a in axes if a in x.order)),
            "reduction": reduce_type, "keepdims": keepdims}, out)

    def _op_ReduceMean(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "mean")

    def _op_ReduceMax(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "max")

    def _op_ReduceSum(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "sum")

    def _op_ReduceMin(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "min")

    def _op_ReduceProd(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._reduce(node, data, "prod")

    # --- dense ----------------------------------------------------------------------------

    def _dense(self, node, x: Tensor, weight: Const, transposed: bool,
               bias: Optional[Const]) -> None:
        in_features, units = (weight.dims[1], weight.dims[0]) if transposed else weight.dims
        shape = self._shape_of(node.output[0])
        if shape is None and x.shape is not None:
            shape = x.shape[:-1] + (units,)
        last = len(shape) - 1 if shape else None
        out = Tensor("", shape, x.order, last, "channels_last")
        attrs = {"in_features": in_features, "units": units, "use_bias": bias is not None,
                 "activation": None, "data_format": out.data_format()}
        axis = x.index(len(x.shape) - 1) if x.shape else None
        if axis is not None and axis != len(x.order) - 1:
            attrs["axis"] = axis
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
        if len(weight.dims) != 2:   # the operator's B is a matrix
            raise ModelFileError(self.source, f"node {node.name!r} (Gemm): its weight "
                                 f"{node.input[1]!r} has shape {list(weight.dims)}, not a "
                                 "matrix")
        self._dense(node, data[0], weight, bool(attr(node, "transB", 0)), bias)

    # --- normalisation, activations ------------------------------------------------------

    def _op_BatchNormalization(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = dataclasses.replace(data[0], channel=1)
        params = sum(self.consts[n].size for n in node.input[1:5] if n in self.consts)
        attrs = {"axis": x.index(1) if x.index(1) is not None else -1,
                 "channels": x.channels(), "center": True, "scale": True,
                 "epsilon": float(attr(node, "epsilon", 1e-5))}
        self._emit(node, OpKind.BATCHNORM, [x], attrs, self._out(node, x), params=params)

    def _op_LayerNormalization(self, node, data: list) -> None:  # pylint: disable=invalid-name
        """Normalisation over the axes from ``axis`` (default −1) to the last → a layer
        norm over those logical axes (γ: the ``Scale`` input, β: the optional ``B``)."""
        x = data[0]
        scale = self._const(self._input(node, 1))
        if x.shape is None or scale is None or len(data) != 1:
            self._opaque(node, data, "layer norm of unknown rank or with computed scale")
            return
        first = int(attr(node, "axis", -1)) % len(x.shape)
        physical = list(range(first, len(x.shape)))
        axes = [x.index(a) for a in physical if x.index(a) is not None]
        if 0 in physical or any(x.index(a) is None and x.shape[a] != 1 for a in physical):
            self._opaque(node, data, "layer norm over the batch or a hidden axis")
            return
        bias = self._const(self._input(node, 2))
        logical = x.logical()
        self._emit(node, OpKind.NORM, [x], {
            "kind": "layer", "axes": tuple(sorted(axes)),
            "norm_size": prod(logical[a] for a in axes),
            "center": bias is not None, "scale": True,
            "epsilon": float(attr(node, "epsilon", 1e-5))},
            self._out(node, x), params=scale.size + (bias.size if bias is not None else 0))

    def _group_norm(self, node, data: list, groups: Optional[int]) -> None:
        """Group (or instance: ``groups`` = channels) normalisation, channels on axis 1."""
        x = dataclasses.replace(data[0], channel=1)
        channels = x.channels()
        consts = [self._const(self._input(node, i)) for i in (1, 2)]
        if channels is None or x.index(1) is None or None in consts or len(data) != 1:
            self._opaque(node, data, "normalisation with computed scale or of unknown layout")
            return
        self._emit(node, OpKind.NORM, [x], {
            "kind": "group", "axes": (x.index(1),), "norm_size": channels,
            "groups": int(groups or channels), "center": True, "scale": True,
            "epsilon": float(attr(node, "epsilon", 1e-5))},
            self._out(node, x), params=sum(c.size for c in consts))

    def _op_GroupNormalization(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._group_norm(node, data, int(attr(node, "num_groups", 1)))

    def _op_InstanceNormalization(self, node, data: list) -> None:  # pylint: disable=invalid-name
        self._group_norm(node, data, None)

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

    def _op_Erf(self, node, data: list) -> None:  # pylint: disable=invalid-name
        """The exact GELU, ``x · ½(1 + erf(x/√2))``, as exporters write it (after
        ``Div(x, √2) → Erf → Add 1``: ``Mul x → Mul ½`` (PyTorch's TorchScript exporter),
        ``Mul ½ → Mul x`` (its dynamo exporter), or ``Mul (x·½)``), becomes one ``gelu``
        activation named after the ``Erf``; an ``Erf`` in any other context is opaque."""
        match = self._gelu_parts(node, data[0])
        if match is None:
            self._opaque(node, data, "Erf outside the exact GELU pattern")
            return
        x, removed, inner, final = match
        for name in removed:
            del self.graph.nodes[name]
        self.graph.__post_init__()
        out = self._out(node, x)
        self._emit(node, OpKind.ACTIVATION, [x], {"activation": "gelu"}, out)
        self.graph.nodes[out.node].source_class = "Erf (GELU)"
        self.tensors[node.input[0]] = dataclasses.replace(out, sole=False)
        for name in inner:
            self.absorbed[name] = dataclasses.replace(out, sole=False)
        self.absorbed[final] = dataclasses.replace(out, sole=self._single_use(final))

    def _gelu_parts(self, erf, scaled: Tensor) -> Optional[tuple]:
        """``(x, IR nodes to remove, ONNX outputs inside, final output)`` of the GELU
        around ``erf``, or ``None``."""
        div = self.producers.get(erf.input[0])
        if not scaled.sole or not self._is_scaling(div, {"Div": 2 ** 0.5, "Mul": 2 ** -0.5}):
            return None
        x_name = div.input[0] if div.input[0] in self.tensors else div.input[1]
        plus = self._only_user(erf.output[0])
        if not self._is_scaling(plus, {"Add": 1.0}):
            return None
        first = self._only_user(plus.output[0])
        if first is None or first.op_type not in ("Mul", "Div"):
            return None
        removed = [scaled.node]
        halves = {"Mul": 0.5, "Div": 2.0}
        if self._is_scaling(first, halves) or set(first.input) == {plus.output[0], x_name}:
            # ½·(1 + erf) then · x, or x·(1 + erf) then · ½
            last = self._only_user(first.output[0])
            closing = (self._takes(last, first.output[0], x_name)
                       if self._is_scaling(first, halves) else self._is_scaling(last, halves))
            if not closing:
                return None
            inner, final = [plus.output[0], first.output[0]], last.output[0]
        else:                                           # (x·½) · (1 + erf)
            other = [n for n in first.input if n != plus.output[0]]
            half = self.producers.get(other[0]) if len(other) == 1 else None
            if not (first.op_type == "Mul" and self._is_scaling(half, halves)
                    and x_name in half.input and self._single_use(half.output[0])
                    and half.output[0] in self.tensors):
                return None
            removed.append(self.tensors[half.output[0]].node)
            inner, final = [plus.output[0]], first.output[0]
        x = self.tensors.get(x_name)
        if x is None or any(self.graph.consumers(self.graph.nodes[n]) for n in removed):
            return None
        return x, removed, inner, final

    @staticmethod
    def _takes(node, *names: str) -> bool:
        """``node`` is a ``Mul`` of exactly the tensors ``names``."""
        return node is not None and node.op_type == "Mul" and sorted(node.input) == sorted(
            names)

    def _is_scaling(self, node, forms: dict) -> bool:
        """``node`` is one of ``forms`` (op type → value) with a scalar constant operand
        of that value (to float32 precision)."""
        if node is None or node.op_type not in forms:
            return False
        for name in node.input:
            const = self._const(name)
            value = None if const is None or const.size != 1 else const.value()
            if value is not None:
                return math.isclose(float(value.reshape(-1)[0]), forms[node.op_type],
                                    rel_tol=1e-6)
        return False

    def _only_user(self, tensor: str):
        """The one ONNX node reading ``tensor`` (``None``: several, none, or an output)."""
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.outputs else None

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
        alone = (x.sole and producer is not None and producer.op != OpKind.INPUT
                 and not self.graph.consumers(producer))
        if kind == "channel" and alone and self._fold_into(producer, x, const, shift):
            self._remap(node, x)
            return
        if kind == "scalar" and alone and producer.op == OpKind.RESCALE \
                and producer.attrs.get("mode") == "scalar":
            self._remap(node, x)
            return
        out = self._out(node, x)
        position = x.index(x.channel) if x.channel is not None else None
        if kind == "channel" and not shift and position in (0, len(x.order) - 1):
            self._emit(node, LAYER_SCALE, [x], {"channels": x.channels()}, out,
                       params=const.size)
        elif kind == "channel" and not shift:
            self._emit(node, OpKind.BATCHNORM, [x], {
                "axis": -1 if position is None else position, "channels": x.channels(),
                "center": False, "scale": True, "folded": True}, out, params=const.size)
        elif kind == "scalar":
            self._emit(node, OpKind.RESCALE, [x], {"mode": "scalar", "params": 0}, out)
        else:
            size = const.size if const.is_parameter(tables=False) else 0
            self._emit(node, OpKind.RESCALE, [x], {"mode": kind, "params": size}, out,
                       params=size)

    def _fold_into(self, producer, x: Tensor, const, shift: bool) -> bool:
        """Fold a per-channel constant into ``producer`` (whose only consumer it is):
        an ``Add`` after a bias-free conv/dense is its bias; an ``Add`` after a layer
        scale makes the pair a folded batch norm (``x·s + b``); an ``Add``/``Mul`` after a
        folded batch norm is its shift/scale."""
        if shift and has_trait(producer.op, Trait.WEIGHTED) \
                and not producer.attrs.get("use_bias") and const.size == producer.attrs.get(
                    "units" if producer.op == OpKind.DENSE else "filters"):
            producer.attrs["use_bias"] = True
        elif shift and producer.op == LAYER_SCALE:
            producer.op = OpKind.BATCHNORM
            producer.attrs = {
                "axis": x.index(x.channel), "channels": producer.attrs["channels"],
                "center": True, "scale": True, "folded": True,
                "data_format": producer.attrs.get("data_format", "channels_last")}
            check_attrs(producer.op, producer.attrs)
        elif producer.op == OpKind.BATCHNORM and producer.attrs.get("folded"):
            producer.attrs["center"] = producer.attrs["center"] or shift
            producer.attrs["scale"] = producer.attrs["scale"] or not shift
        else:
            return False
        producer.params = (producer.params or 0) + const.size
        return True

    def _remap(self, node, x: Tensor) -> None:
        """The node's output is ``x``'s node's output (a folded op, no node of its own)."""
        out = node.output[0]
        self.tensors[out] = dataclasses.replace(x, shape=self._shape_of(out) or x.shape,
                                                sole=self._single_use(out))
