"""Operations recorded in Keras graphs → IR nodes: Keras 3 ``keras.ops`` calls and Keras 2
``TFOpLambda``/``SlicingOpLambda`` layers.

Functional code such as ``x + y``, ``keras.ops.split(x, 3)`` or ``x[..., :16]`` is saved
as a graph node that names an operation and records its arguments, not as a layer:

* Keras 3 saves a ``keras.ops`` class (``{"module": "keras.src.ops.numpy", "class_name":
  "Split", "config": {"indices_or_sections": 3, "axis": -1}}``) with its call arguments
  in the inbound node (``"args": [tensor, ...]``);
* Keras 2 (``tf_keras``) saves a ``TFOpLambda`` layer naming a TensorFlow function
  (``"function": "math.multiply"``) with its arguments in the inbound node
  (``["conv", 0, 0, {"y": ["bn", 0, 0]}]``); ``x[..., :16]`` is a ``SlicingOpLambda``.

Both are plain data, a function name and arguments, and are read as such: a name is
looked up in the tables below, never imported or called.  Each operation maps onto the
op kinds of :mod:`keras_cnnkit.analysis.ops` (a ``tf.math.multiply`` is the ``multiply``
kind, ``x * 0.5`` a ``rescale``, ``x[..., :16]`` a ``slice``, ``keras.ops.split`` one
``slice`` per output).  An operation these tables do not know, or arguments they cannot
map (a reshape that fixes the batch size, a split of an axis of unknown length), raise
:class:`UnsupportedCall`: the frontend makes an opaque node of it, with the output shape
it recorded where it recorded one.

The frontends give a call's arguments as :class:`CallArguments`: the positional and
keyword arguments with each tensor replaced by a :class:`TensorArg` (its position among
the call's inputs) and each constant array by a :class:`Constant` (its shape).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Sequence

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.layer_config import (
    LayerConfigError,
    NotAnalysable,
    axes_indices,
    axis_index,
)
from keras_cnnkit.analysis.ops.activation_table import (
    keras_op_activations,
    tf_op_activations,
)
from keras_cnnkit.analysis.ops.einsum import EINSUM
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.geometry import broadcast, prod, split
from keras_cnnkit.analysis.ops.matmul import MATMUL
from keras_cnnkit.analysis.ops.reduce import REDUCE
from keras_cnnkit.analysis.ops.resize import RESIZE
from keras_cnnkit.analysis.ops.strided_slice import STRIDED_SLICE
from keras_cnnkit.analysis.ops.unary import FLOPS_PER_ELEMENT as UNARY_FUNCTIONS
from keras_cnnkit.analysis.ops.unary import UNARY

#: Prefix of the class names the frontends give ``keras.ops`` calls (``"keras.ops.Split"``).
KERAS_OP_PREFIX = "keras.ops."
#: Prefix of the names they give Keras 2 TF-op layers (``"tf.math.multiply"``).
TF_OP_PREFIX = "tf."
#: Keras 2 layer classes that call a TensorFlow function named in their config.
TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")


@dataclasses.dataclass(frozen=True)
class TensorArg:
    """A tensor argument of a call: input number ``index`` of the call."""

    index: int


@dataclasses.dataclass(frozen=True)
class Constant:
    """A constant array argument (a serialized numpy array or tensor): its shape only."""

    shape: tuple


@dataclasses.dataclass
class CallArguments:
    """The arguments of one call, tensors as :class:`TensorArg`."""

    args: list = dataclasses.field(default_factory=list)
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Outputs:
    """The nodes of a call with several outputs, and the suffix of each output's node."""

    parts: list
    outputs: tuple


class UnsupportedCall(NotAnalysable):
    """A known operation called with arguments that have no IR mapping."""


def op_name(class_name: str, config: dict) -> Optional[str]:
    """The operation a graph entry calls: ``"keras.ops.Split"`` or ``"tf.math.multiply"``
    (``None`` for an ordinary layer)."""
    if class_name.startswith(KERAS_OP_PREFIX):
        return class_name
    if class_name in TF_OP_LAYERS:
        function = config.get("function")
        if class_name == "SlicingOpLambda" and function is None:
            function = "__operators__.getitem"
        if not isinstance(function, str) or not function:
            raise LayerConfigError(f"{class_name} without a `function` name")
        return TF_OP_PREFIX + function
    return None


# --- the tables: operation → (canonical operation, names of its positional arguments) --

_BINARY = ("add", "subtract", "multiply", "divide", "maximum", "minimum")
_REDUCTIONS = ("mean", "sum", "max", "min", "prod")

#: ``keras.ops`` classes.  Their constructor arguments are in the config, the rest in the
#: call's arguments.
_KERAS = {
    "Add": ("add", ("x", "y")), "Subtract": ("subtract", ("x", "y")),
    "Multiply": ("multiply", ("x", "y")), "Divide": ("divide", ("x", "y")),
    "TrueDivide": ("divide", ("x", "y")), "Maximum": ("maximum", ("x", "y")),
    "Minimum": ("minimum", ("x", "y")),
    "Concatenate": ("concat", ("values",)), "Stack": ("stack", ("values",)),
    "Reshape": ("reshape", ("x",)), "Transpose": ("transpose", ("x",)),
    "ExpandDims": ("expand_dims", ("x",)), "Squeeze": ("squeeze", ("x",)),
    "Mean": ("mean", ("x",)), "Sum": ("sum", ("x",)), "Max": ("max", ("x",)),
    "Min": ("min", ("x",)), "Prod": ("prod", ("x",)),
    "GetItem": ("getitem", ("x", "key")), "Split": ("split_indices", ("x",)),
    "Pad": ("pad", ("x",)), "Resize": ("resize", ("x",)), "Matmul": ("matmul", ("x", "y")),
    "Einsum": ("einsum", ("x", "y")),
    "Clip": ("clip", ("x",)), "Cast": ("identity", ("x",)), "StopGradient": ("identity", ("x",)),
    "Absolute": ("unary:abs", ("x",)), "Abs": ("unary:abs", ("x",)),
    "Negative": ("unary:negative", ("x",)), "Square": ("unary:square", ("x",)),
    "Sqrt": ("unary:sqrt", ("x",)), "Rsqrt": ("unary:rsqrt", ("x",)),
    "Log": ("unary:log", ("x",)), "Reciprocal": ("unary:reciprocal", ("x",)),
    "Sign": ("unary:sign", ("x",)), "Floor": ("unary:floor", ("x",)),
    "Ceil": ("unary:ceil", ("x",)), "Round": ("unary:round", ("x",)),
    "Erf": ("unary:erf", ("x",)), "Sin": ("unary:sin", ("x",)), "Cos": ("unary:cos", ("x",)),
    **{op: (f"activation:{name}", ("x",)) for op, name in keras_op_activations().items()},
}

#: TensorFlow functions of Keras 2 ``TFOpLambda`` layers (``tf.`` dropped, as saved).
#: Their first argument is positional, every other one a keyword argument.
_TF = {
    "__operators__.add": "add", "math.add": "add", "math.add_v2": "add",
    "math.multiply": "multiply", "math.subtract": "subtract", "math.truediv": "divide",
    "math.divide": "divide", "__operators__.truediv": "divide",
    "math.maximum": "maximum", "math.minimum": "minimum",
    "concat": "concat", "stack": "stack", "reshape": "reshape", "transpose": "transpose",
    "expand_dims": "expand_dims", "squeeze": "squeeze",
    **{f"{prefix}reduce_{r}": r for r in _REDUCTIONS for prefix in ("math.", "")},
    "__operators__.getitem": "getitem", "split": "split_sizes", "pad": "pad",
    "image.resize": "resize", "linalg.matmul": "matmul", "matmul": "matmul",
    "clip_by_value": "clip", "cast": "identity", "identity": "identity",
    "stop_gradient": "identity",
    **{f"math.{fn}": f"unary:{fn}" for fn in UNARY_FUNCTIONS
       if fn not in ("clip", "autocontrast", "clahe")},
    **{fn: f"activation:{name}" for fn, name in tf_op_activations().items()},
}

#: Argument names (Keras op configs, keyword arguments of both) → the canonical names
#: the handlers read.
_RENAME = {
    "x1": "x", "x2": "y", "input_tensor": "x", "tensor": "x", "a": "x", "features": "x",
    "logits": "x", "input": "x", "images": "x", "image": "x", "t": "x", "value": "x",
    "b": "y", "xs": "values", "newshape": "shape", "axes": "perm",
    "indices_or_sections": "sections", "num_or_size_splits": "sizes",
    "paddings": "pad_width", "constant_values": "fill", "method": "interpolation",
    "x_min": "low", "x_max": "high", "clip_value_min": "low", "clip_value_max": "high",
    "slice_spec": "key", "alpha": "negative_slope",
}


def _bind(name: str, config: dict, arguments: CallArguments) -> tuple:
    """``(canonical operation, {argument: value})`` of a call, or ``KeyError``."""
    if name.startswith(KERAS_OP_PREFIX):
        canonical, positional = _KERAS[name[len(KERAS_OP_PREFIX):]]
        bound = {_RENAME.get(k, k): v for k, v in config.items() if k != "name"}
    else:
        canonical = _TF[name[len(TF_OP_PREFIX):].removeprefix("compat.v1.")]
        positional = ("values" if canonical in ("concat", "stack") else "x",)
        bound = {}
    if len(arguments.args) > len(positional):
        raise UnsupportedCall(f"{len(arguments.args)} positional arguments")
    bound.update(zip(positional, arguments.args))
    bound.update({_RENAME.get(k, k): v for k, v in arguments.kwargs.items() if k != "name"})
    return canonical, bound


def convert_op(name: str, config: dict, arguments: Optional[CallArguments], shapes: list,
               data_format: Optional[str] = None):
    """The parts (see :mod:`keras_cnnkit.analysis.keras_layers`) of one operation call.

    Returns a list of ``(suffix, op, attrs, inputs)`` parts, where ``inputs`` holds
    input numbers of the call (ints) or the suffixes of earlier parts, or an
    :class:`Outputs` for a call with several outputs.

    Raises:
        KeyError: an operation the tables do not know.
        UnsupportedCall: a known operation whose arguments have no IR mapping.
    """
    canonical, bound = _bind(name, config, arguments or CallArguments())
    call = _Call(bound, shapes, data_format or "channels_last")
    family, _, detail = canonical.partition(":")
    try:
        if family in _BINARY:
            return _binary(family, call)
        if family in _REDUCTIONS:
            return _reduce(family, call)
        if family == "activation":
            return _activation(detail, call)
        if family == "unary":
            return [("", UNARY, {"function": detail}, (call.tensor("x"),))]
        return _HANDLERS[family](call)
    except (LayerConfigError, ShapeError, TypeError, ValueError, KeyError, IndexError,
            ZeroDivisionError, OverflowError) as exc:
        if isinstance(exc, UnsupportedCall):
            raise
        raise UnsupportedCall(f"{type(exc).__name__}: {exc}") from None


class _Call:
    """The bound arguments of one call and the shapes of its tensor inputs."""

    def __init__(self, bound: dict, shapes: list, data_format: str):
        self.bound, self.shapes, self.data_format = bound, shapes, data_format

    def get(self, key: str, default: Any = None) -> Any:
        """Argument ``key`` (``default`` when absent or ``None``)."""
        value = self.bound.get(key)
        return default if value is None else value

    def tensor(self, key: str) -> int:
        """The input number of tensor argument ``key``."""
        value = self.bound.get(key)
        if not isinstance(value, TensorArg):
            raise UnsupportedCall(f"argument {key!r} is not a tensor of the graph")
        return value.index

    def tensors(self, key: str) -> tuple:
        """The input numbers of a list of tensors (``concatenate([a, b])``)."""
        value = self.bound.get(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values or not all(isinstance(v, TensorArg) for v in values):
            raise UnsupportedCall(f"argument {key!r} is not a list of graph tensors")
        return tuple(v.index for v in values)

    def shape(self, index: int) -> tuple:
        """The (batch-excluded) shape of input ``index``."""
        return tuple(self.shapes[index])

    def axis(self, key: str, rank: int, default: Any = None) -> int:
        """A Keras axis argument (batch included) → index into a batch-excluded shape."""
        return axis_index(self.get(key, default), rank)


def _int_list(value: Any, what: str) -> list:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise UnsupportedCall(f"{what} {value!r} is not a list of ints")
    return list(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _constant_shape(value: Any) -> Optional[tuple]:
    """The shape of a constant operand (a number, nested lists or a :class:`Constant`);
    ``None`` for anything else."""
    if isinstance(value, Constant):
        return value.shape
    dims: list = []
    while isinstance(value, (list, tuple)):
        dims.append(len(value))
        if not value:
            return tuple(dims)
        value = value[0]
    return tuple(dims) if _is_number(value) else None


def _binary(kind: str, call: _Call) -> list:
    x, y = call.bound.get("x"), call.bound.get("y")
    if isinstance(x, TensorArg) and isinstance(y, TensorArg):
        return [("", kind, {}, (x.index, y.index))]
    tensor_first = isinstance(x, TensorArg)
    tensor, constant = (x, y) if tensor_first else (y, x)
    if not isinstance(tensor, TensorArg):
        raise UnsupportedCall("no operand is a tensor of the graph")
    shape = call.shape(tensor.index)
    const_shape = _constant_shape(constant)
    if const_shape is None:
        raise UnsupportedCall(f"operand {str(constant)[:40]} is not a constant array")
    if len(const_shape) > len(shape):  # a constant with a batch axis of 1
        if len(const_shape) != len(shape) + 1 or const_shape[0] != 1:
            raise UnsupportedCall(f"a constant of shape {const_shape} changes the batch")
        const_shape = const_shape[1:]
    if broadcast([shape, const_shape]) != shape:
        raise UnsupportedCall(f"a constant of shape {const_shape} broadcasts {shape} wider")
    number = float(constant) if _is_number(constant) else None
    return [("", *_with_constant(kind, number, tensor_first, const_shape, shape),
             (tensor.index,))]


def _with_constant(kind: str, number: Optional[float], tensor_first: bool,
                   const_shape: tuple, shape: tuple) -> tuple:
    """``(op, attrs)`` of an element-wise op between a tensor and a constant."""
    if kind in ("maximum", "minimum"):
        if number is None:
            raise UnsupportedCall(f"{kind} with a constant array")
        if kind == "maximum" and number == 0:
            return OpKind.ACTIVATION, {"activation": "relu"}
        bound = "low" if kind == "maximum" else "high"
        return UNARY, {"function": "clip", bound: float(number)}
    size = prod(const_shape)
    if size == 1:
        mode = "scalar"
    elif len(const_shape) >= 1 and const_shape[-1] == shape[-1] and size == shape[-1]:
        mode = "channel"
    else:
        mode = "other"
    attrs: dict = {"mode": mode, "params": 0}
    if number is None:
        return OpKind.RESCALE, attrs
    if kind == "add":
        attrs["offset"] = number
    elif kind == "subtract":
        if tensor_first:
            attrs["offset"] = -number
        else:
            attrs.update(scale=-1.0, offset=number)
    elif kind == "multiply":
        attrs["scale"] = number
    elif tensor_first:  # x / c
        attrs["scale"] = 1.0 / number
    else:
        raise UnsupportedCall("a constant divided by a tensor")
    return OpKind.RESCALE, attrs


def _activation(name: str, call: _Call) -> list:
    attrs: dict = {"activation": name}
    if name == "softmax" and call.bound.get("axis") is not None:
        attrs["axis"] = call.bound["axis"]
    if name == "leaky_relu":
        attrs["negative_slope"] = float(call.get("negative_slope", 0.2))
    return [("", OpKind.ACTIVATION, attrs, (call.tensor("x"),))]


def _reduce(kind: str, call: _Call) -> list:
    x = call.tensor("x")
    shape = call.shape(x)
    if call.bound.get("axis") is None:
        raise UnsupportedCall("a reduction over every axis, the batch included")
    axes = tuple(sorted(set(axes_indices(call.bound["axis"], len(shape)))))
    keepdims = bool(call.get("keepdims", False))
    spatial = tuple(range(1, len(shape))) if call.data_format == "channels_first" \
        else tuple(range(len(shape) - 1))
    if kind in ("mean", "max") and spatial and axes == spatial:
        return [("", OpKind.GLOBAL_POOL, {"pool_type": "avg" if kind == "mean" else "max",
                                          "rank": len(spatial), "keepdims": keepdims,
                                          "data_format": call.data_format}, (x,))]
    return [("", REDUCE, {"reduction": kind, "axes": axes, "keepdims": keepdims}, (x,))]


def _concat(call: _Call) -> list:
    inputs = call.tensors("values")
    rank = len(call.shape(inputs[0]))
    return [("", OpKind.CONCAT, {"axis": call.axis("axis", rank, 0)}, inputs)]


def _stack(call: _Call) -> list:
    inputs = call.tensors("values")
    shape = call.shape(inputs[0])
    axis = axis_index(call.get("axis", 0), len(shape) + 1)
    target = (*shape[:axis], 1, *shape[axis:])
    parts = [(f"expand_{i}", OpKind.RESHAPE, {"target_shape": target}, (index,))
             for i, index in enumerate(inputs)]
    return parts + [("", OpKind.CONCAT, {"axis": axis},
                     tuple(f"expand_{i}" for i in range(len(inputs))))]


def _reshape(call: _Call) -> list:
    x = call.tensor("x")
    target = call.get("shape")
    if isinstance(target, (list, tuple)):
        target = [-1 if d is None else d for d in target]
    target = _int_list(target, "shape")
    if not target or target[0] != -1 or -1 in target[1:]:
        raise UnsupportedCall(f"a reshape to {target} does not keep the batch axis free")
    if any(d < 1 for d in target[1:]):
        raise UnsupportedCall(f"bad reshape target {target}")
    return [("", OpKind.RESHAPE, {"target_shape": tuple(target[1:])}, (x,))]


def _transpose(call: _Call) -> list:
    x = call.tensor("x")
    rank = len(call.shape(x)) + 1
    perm = [p % rank if -rank <= p < rank else -1
            for p in _int_list(call.bound.get("perm"), "perm")]
    if sorted(perm) != list(range(rank)) or perm[0] != 0:
        raise UnsupportedCall(f"a transpose by {perm} moves the batch axis")
    return [("", OpKind.TRANSPOSE, {"perm": tuple(p - 1 for p in perm[1:])}, (x,))]


def _expand_dims(call: _Call) -> list:
    x = call.tensor("x")
    shape = list(call.shape(x))
    for axis in sorted(_int_list(call.bound.get("axis"), "axis")):
        shape.insert(axis_index(axis, len(shape) + 1), 1)
    return [("", OpKind.RESHAPE, {"target_shape": tuple(shape)}, (x,))]


def _squeeze(call: _Call) -> list:
    x = call.tensor("x")
    shape = call.shape(x)
    if call.bound.get("axis") is None:
        drop = {i for i, d in enumerate(shape) if d == 1}
    else:
        drop = set(axes_indices(call.bound["axis"], len(shape)))
    if any(shape[i] not in (1, None) for i in drop):
        raise UnsupportedCall(f"a squeeze of axes of size > 1 in {shape}")
    target = tuple(d for i, d in enumerate(shape) if i not in drop)
    return [("", OpKind.RESHAPE, {"target_shape": target}, (x,))]


def _key_items(key: Any) -> list:
    """A ``__getitem__`` key → a list of ``slice``/int/``Ellipsis`` items."""
    items = list(key) if isinstance(key, (list, tuple)) else [key]
    out = []
    for item in items:
        if isinstance(item, dict) and item.get("class_name") == "__ellipsis__":
            item = Ellipsis
        elif isinstance(item, dict) and set(item) <= {"start", "stop", "step"}:
            item = slice(item.get("start"), item.get("stop"), item.get("step"))
        if isinstance(item, slice):
            if not all(v is None or (isinstance(v, int) and not isinstance(v, bool))
                       for v in (item.start, item.stop, item.step)):
                raise UnsupportedCall(f"slice bounds {item} are not constant ints")
        elif item is not Ellipsis and not (isinstance(item, int)
                                           and not isinstance(item, bool)):
            raise UnsupportedCall(f"index {str(item)[:40]} is not a slice, int or ...")
        out.append(item)
    if out.count(Ellipsis) > 1:
        raise UnsupportedCall("more than one ... in an index")
    return out


def _getitem(call: _Call) -> list:
    x = call.tensor("x")
    shape = call.shape(x)
    items = _key_items(call.bound.get("key"))
    rank = len(shape) + 1
    if Ellipsis in items:
        at = items.index(Ellipsis)
        items[at:at + 1] = [slice(None)] * (rank - len(items) + 1)
    if len(items) > rank:
        raise UnsupportedCall(f"{len(items)} indices for a tensor of rank {rank}")
    items += [slice(None)] * (rank - len(items))
    if items[0] not in (slice(None), slice(None, None, 1)):
        raise UnsupportedCall("an index of the batch axis")
    specs, squeeze = [], []
    for axis, item in enumerate(items[1:]):
        if isinstance(item, int):
            specs.append((item, None, None))
            squeeze.append(axis)
        else:
            specs.append((item.start, item.stop, item.step))
    changed = [i for i, s in enumerate(specs)
               if i in squeeze or s[0] not in (None, 0) or s[1] is not None
               or s[2] not in (None, 1)]
    if not changed:
        return [("", OpKind.IDENTITY, {}, (x,))]
    if len(changed) == 1 and not squeeze and specs[changed[0]][2] in (None, 1):
        start, stop, _ = specs[changed[0]]
        return [("", OpKind.SLICE, {"axis": changed[0], "start": start or 0, "stop": stop},
                 (x,))]
    return [("", STRIDED_SLICE, {"slices": tuple(specs), "squeeze": tuple(squeeze)}, (x,))]


def _pieces(bounds: Sequence, axis: int, x: int) -> Outputs:
    """One ``slice`` node per output, between consecutive ``bounds``."""
    parts = [("" if i == 0 else str(i), OpKind.SLICE, {"axis": axis, "start": start,
                                                       "stop": stop}, (x,))
             for i, (start, stop) in enumerate(zip(bounds, bounds[1:]))]
    return Outputs(parts, tuple(p[0] for p in parts))


def _split_axis(call: _Call) -> tuple:
    x = call.tensor("x")
    shape = call.shape(x)
    axis = call.axis("axis", len(shape), 0)
    return x, axis, shape[axis]


def _split_indices(call: _Call) -> Outputs:
    """numpy / ``keras.ops.split``: a number of equal sections, or the split indices."""
    x, axis, n = _split_axis(call)
    sections = call.bound.get("sections")
    if isinstance(sections, int) and not isinstance(sections, bool):
        return _equal_sections(x, axis, n, sections)
    indices = _int_list(sections, "indices_or_sections")
    if n is None and any(i < 0 for i in indices):
        raise UnsupportedCall("negative split indices on an axis of unknown length")
    return _pieces([0, *indices, n], axis, x)


def _split_sizes(call: _Call) -> Outputs:
    """``tf.split``: a number of equal sections, or the section sizes."""
    x, axis, n = _split_axis(call)
    sizes = call.bound.get("sizes")
    if isinstance(sizes, int) and not isinstance(sizes, bool):
        return _equal_sections(x, axis, n, sizes)
    sizes = _int_list(sizes, "num_or_size_splits")
    if -1 in sizes:
        if n is None or sizes.count(-1) > 1:
            raise UnsupportedCall("a split size of -1 on an axis of unknown length")
        sizes[sizes.index(-1)] = n - (sum(sizes) + 1)
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    return _pieces(bounds, axis, x)


def _equal_sections(x: int, axis: int, n: Optional[int], count: int) -> Outputs:
    if n is None or count < 1 or n % count:
        raise UnsupportedCall(f"{count} equal sections of an axis of length {n}")
    step = n // count
    return _pieces([i * step for i in range(count + 1)], axis, x)


def _pad(call: _Call) -> list:
    x = call.tensor("x")
    shape = call.shape(x)
    width = call.bound.get("pad_width")
    if not isinstance(width, (list, tuple)) or len(width) != len(shape) + 1:
        raise UnsupportedCall(f"pad widths {str(width)[:60]} are not one pair per axis")
    pairs = [tuple(_int_list(p, "pad width")) for p in width]
    if any(len(p) != 2 for p in pairs):
        raise UnsupportedCall(f"pad widths {pairs} are not (begin, end) pairs")
    channel = 1 if call.data_format == "channels_first" else len(shape)
    if pairs[0] != (0, 0) or pairs[channel] != (0, 0):
        raise UnsupportedCall("a padding of the batch or channel axis")
    spatial = tuple(p for i, p in enumerate(pairs) if i not in (0, channel))
    fill = call.get("fill", 0.0)
    if not _is_number(fill):
        raise UnsupportedCall(f"pad value {str(fill)[:40]} is not a number")
    return [("", OpKind.PAD, {"padding": spatial, "mode": str(call.get("mode", "constant"))
                              .lower(), "value": float(fill)}, (x,))]


def _resize(call: _Call) -> list:
    x = call.tensor("x")
    if call.get("preserve_aspect_ratio", False):
        raise UnsupportedCall("a resize that preserves the aspect ratio")
    size = tuple(_int_list(call.bound.get("size"), "size"))
    fmt = call.get("data_format", call.data_format)
    spatial, _ = split(call.shape(x), fmt)
    if len(size) != len(spatial) or any(d < 1 for d in size):
        raise UnsupportedCall(f"a resize to {size} of an input of shape {call.shape(x)}")
    return [("", RESIZE, {"size": size, "data_format": fmt,
                          "interpolation": str(call.get("interpolation", "bilinear")).lower()},
             (x,))]


def _matmul(call: _Call) -> list:
    x, y = call.tensor("x"), call.tensor("y")
    if len(call.shape(x)) < 2 or len(call.shape(y)) < 2:
        raise UnsupportedCall("a matrix product of operands with fewer than 3 axes")
    return [("", MATMUL, {"transpose_a": bool(call.get("transpose_a", False)),
                          "transpose_b": bool(call.get("transpose_b", False))}, (x, y))]


def _einsum(call: _Call) -> list:
    equation = call.bound.get("subscripts")
    if not isinstance(equation, str):
        raise UnsupportedCall("an einsum without its subscripts")
    inputs = (call.tensor("x"),) + ((call.tensor("y"),) if "y" in call.bound else ())
    return [("", EINSUM, {"equation": equation}, inputs)]


def _clip(call: _Call) -> list:
    x = call.tensor("x")
    low, high = call.bound.get("low"), call.bound.get("high")
    for bound in (low, high):
        if bound is not None and not _is_number(bound):
            raise UnsupportedCall(f"clip bound {str(bound)[:40]} is not a number")
    if low == 0 and high in (None, math.inf):
        return [("", OpKind.ACTIVATION, {"activation": "relu"}, (x,))]
    if low == 0 and high == 6:
        return [("", OpKind.ACTIVATION, {"activation": "relu6"}, (x,))]
    attrs = {"function": "clip", "low": None if low is None else float(low),
             "high": None if high is None else float(high)}
    return [("", UNARY, attrs, (x,))]


def _identity(call: _Call) -> list:
    return [("", OpKind.IDENTITY, {}, (call.tensor("x"),))]


_HANDLERS: dict[str, Callable] = {
    "concat": _concat, "stack": _stack, "reshape": _reshape, "transpose": _transpose,
    "expand_dims": _expand_dims, "squeeze": _squeeze, "getitem": _getitem,
    "split_indices": _split_indices, "split_sizes": _split_sizes, "pad": _pad,
    "resize": _resize, "matmul": _matmul, "einsum": _einsum, "clip": _clip,
    "identity": _identity,
}


def is_keras_op_class(class_name: str) -> bool:
    """Whether ``class_name`` is a ``keras.ops`` operation class the table maps."""
    return class_name in _KERAS


def known_operations() -> tuple:
    """The ``keras.ops`` classes and TensorFlow functions mapped here (for docs/tests)."""
    return (tuple(sorted(KERAS_OP_PREFIX + k for k in _KERAS))
            + tuple(sorted(TF_OP_PREFIX + k for k in _TF)))
