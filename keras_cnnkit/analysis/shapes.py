"""Shape inference on the IR: an op kind, its attributes and input shapes → output shape.

Pure Python, shared by every frontend (a frontend that knows the observed shapes, like
the live Keras one, checks them against these) and by the rules, which build replacement
fragments and need their shapes.

Shapes exclude the batch dimension.  An unknown dimension is ``None`` and propagates; an
unknown shape (the output of an opaque op) is ``None`` and makes every shape computed
from it ``None`` too.

Output-size formulas (Keras' conventions; seed 003: ``o = (n + 2p − k)/s + 1``):

* convolution, ``"valid"``: ``o = ⌊(n − d(k−1) − 1)/s⌋ + 1``; ``"same"`` and
  ``"causal"``: ``o = ⌈n/s⌉``; explicit pads ``(b, e)``: ``o = ⌊(n + b + e − d(k−1) − 1)/s⌋ + 1``;
* transposed convolution: ``"same"``: ``o = n·s``; ``"valid"``: ``o = n·s + max(k_d − s, 0)``
  with ``k_d = d(k−1) + 1``; with ``output_padding`` ``q``: ``o = (n−1)s + k_d − 2·pad + q``;
* pooling, ``"valid"``: ``o = ⌊(n − k)/s⌋ + 1``; ``"same"``: ``o = ⌈n/s⌉``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import dataclasses

from keras_cnnkit.analysis.ir import Graph, OpKind, Shape


class ShapeError(ValueError):
    """The attributes and input shapes of an op are inconsistent."""


def _prod(dims: Sequence) -> Optional[int]:
    out = 1
    for d in dims:
        if d is None:
            return None
        out *= d
    return out


def _split(shape: Shape, data_format: str) -> tuple:
    """(spatial dims, channels) of ``shape``."""
    if data_format == "channels_first":
        return tuple(shape[1:]), shape[0]
    return tuple(shape[:-1]), shape[-1]


def _join(spatial: Sequence, channels, data_format: str) -> Shape:
    if data_format == "channels_first":
        return (channels, *spatial)
    return (*spatial, channels)


def conv_length(n: Optional[int], kernel: int, stride: int, dilation: int,
                padding) -> Optional[int]:
    """Output length of a convolution along one axis (see the module docstring)."""
    if n is None:
        return None
    extent = dilation * (kernel - 1) + 1
    if padding in ("same", "causal"):
        out = -(-n // stride)
    elif padding == "valid":
        out = (n - extent) // stride + 1
    else:
        begin, end = padding
        out = (n + begin + end - extent) // stride + 1
    if out < 1:
        raise ShapeError(f"a kernel of extent {extent} does not fit an input of length {n}")
    return out


def deconv_length(n: Optional[int], kernel: int, stride: int, dilation: int, padding: str,
                  output_padding: Optional[int]) -> Optional[int]:
    """Output length of a transposed convolution along one axis (Keras' formula)."""
    if n is None:
        return None
    extent = dilation * (kernel - 1) + 1
    if output_padding is None:
        if padding == "same":
            return n * stride
        return n * stride + max(extent - stride, 0)
    pad = extent // 2 if padding == "same" else 0
    return (n - 1) * stride + extent - 2 * pad + output_padding


def pool_length(n: Optional[int], size: int, stride: int, padding: str) -> Optional[int]:
    """Output length of a pooling window along one axis."""
    if n is None:
        return None
    if padding == "same":
        return -(-n // stride)
    out = (n - size) // stride + 1
    if out < 1:
        raise ShapeError(f"a pooling window of {size} does not fit an input of length {n}")
    return out


def _padding_of(attrs: dict, axis: int):
    padding = attrs.get("padding", "valid")
    if isinstance(padding, str):
        return padding
    return tuple(padding[axis])


def _conv(attrs: dict, shapes: list) -> Shape:
    fmt = attrs.get("data_format", "channels_last")
    spatial, channels = _split(shapes[0], fmt)
    if attrs.get("in_channels") not in (None, channels) and channels is not None:
        raise ShapeError(f"expects {attrs['in_channels']} input channels, got {channels}")
    kernel, strides = attrs["kernel"], attrs.get("strides", (1,) * len(spatial))
    dilation = attrs.get("dilation", (1,) * len(spatial))
    if len(kernel) != len(spatial):
        raise ShapeError(f"a rank-{len(kernel)} kernel on an input of shape {shapes[0]}")
    out = tuple(conv_length(n, k, s, d, _padding_of(attrs, i))
                for i, (n, k, s, d) in enumerate(zip(spatial, kernel, strides, dilation)))
    return _join(out, attrs["filters"], fmt)


def _conv_transpose(attrs: dict, shapes: list) -> Shape:
    fmt = attrs.get("data_format", "channels_last")
    spatial, _ = _split(shapes[0], fmt)
    out_pad = attrs.get("output_padding") or (None,) * len(spatial)
    out = tuple(deconv_length(n, k, s, d, attrs.get("padding", "valid"), q)
                for n, k, s, d, q in zip(spatial, attrs["kernel"], attrs["strides"],
                                         attrs["dilation"], out_pad))
    return _join(out, attrs["filters"], fmt)


def _dense(attrs: dict, shapes: list) -> Shape:
    return (*shapes[0][:-1], attrs["units"])


def _same(_attrs: dict, shapes: list) -> Shape:
    return tuple(shapes[0])


def _broadcast(_attrs: dict, shapes: list) -> Shape:
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError(f"cannot broadcast shapes {shapes}")
        if known:
            out.append(known.pop())
        elif None in dims:
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def _concat(attrs: dict, shapes: list) -> Shape:
    axis = attrs["axis"]
    out = list(shapes[0])
    sizes = [s[axis] for s in shapes]
    out[axis] = None if None in sizes else sum(sizes)
    return tuple(out)


def _pool(attrs: dict, shapes: list) -> Shape:
    fmt = attrs.get("data_format", "channels_last")
    spatial, channels = _split(shapes[0], fmt)
    out = tuple(pool_length(n, k, s, attrs.get("padding", "valid"))
                for n, k, s in zip(spatial, attrs["pool_size"], attrs["strides"]))
    return _join(out, channels, fmt)


def _global_pool(attrs: dict, shapes: list) -> Shape:
    fmt = attrs.get("data_format", "channels_last")
    spatial, channels = _split(shapes[0], fmt)
    if attrs.get("keepdims"):
        return _join((1,) * len(spatial), channels, fmt)
    return (channels,)


def _flatten(_attrs: dict, shapes: list) -> Shape:
    return (_prod(shapes[0]),)


def _reshape(attrs: dict, shapes: list) -> Shape:
    target = list(attrs["target_shape"])
    total = _prod(shapes[0])
    if -1 in target:
        known = _prod([d for d in target if d != -1])
        if total is None or known is None:
            target[target.index(-1)] = None
        else:
            if known == 0 or total % known:
                raise ShapeError(f"cannot reshape {shapes[0]} to {tuple(attrs['target_shape'])}")
            target[target.index(-1)] = total // known
    elif total is not None and _prod(target) not in (None, total):
        raise ShapeError(f"cannot reshape {shapes[0]} to {tuple(target)}")
    return tuple(target)


def _pad(attrs: dict, shapes: list) -> Shape:
    fmt = attrs.get("data_format", "channels_last")
    spatial, channels = _split(shapes[0], fmt)
    out = tuple(None if n is None else n + b + e for n, (b, e) in zip(spatial, attrs["padding"]))
    return _join(out, channels, fmt)


def _crop(attrs: dict, shapes: list) -> Shape:
    fmt = attrs.get("data_format", "channels_last")
    spatial, channels = _split(shapes[0], fmt)
    out = []
    for n, (b, e) in zip(spatial, attrs["cropping"]):
        if n is not None and n - b - e < 1:
            raise ShapeError(f"cropping {(b, e)} leaves nothing of length {n}")
        out.append(None if n is None else n - b - e)
    return _join(tuple(out), channels, fmt)


def _upsample(attrs: dict, shapes: list) -> Shape:
    fmt = attrs.get("data_format", "channels_last")
    spatial, channels = _split(shapes[0], fmt)
    out = tuple(None if n is None else n * f for n, f in zip(spatial, attrs["size"]))
    return _join(out, channels, fmt)


def _transpose(attrs: dict, shapes: list) -> Shape:
    return tuple(shapes[0][p] for p in attrs["perm"])


def _slice(attrs: dict, shapes: list) -> Shape:
    out = list(shapes[0])
    axis = attrs["axis"]
    n = out[axis]
    start, stop = attrs["start"], attrs["stop"]
    if n is not None:
        start, stop, _ = slice(start, stop).indices(n)
        out[axis] = max(stop - start, 0)
    elif start is not None and stop is not None and start >= 0 and stop >= 0:
        out[axis] = max(stop - start, 0)
    return tuple(out)


def _channel_shuffle(attrs: dict, shapes: list) -> Shape:
    fmt = attrs.get("data_format", "channels_last")
    _, channels = _split(shapes[0], fmt)
    if channels is not None and channels % attrs["groups"]:
        raise ShapeError(f"{channels} channels do not split into {attrs['groups']} groups")
    return tuple(shapes[0])


def _input(attrs: dict, _shapes: list) -> Shape:
    return tuple(attrs["shape"])


def _embedding(attrs: dict, shapes: list) -> Shape:
    return tuple(shapes[0]) + (attrs["output_dim"],)


_RULES: dict[str, Callable[[dict, list], Shape]] = {
    OpKind.INPUT: _input,
    OpKind.CONV: _conv,
    OpKind.DEPTHWISE_CONV: _conv,
    OpKind.DEFORM_CONV: _conv,
    OpKind.CONV_TRANSPOSE: _conv_transpose,
    OpKind.DENSE: _dense,
    OpKind.EMBEDDING: _embedding,
    OpKind.BATCHNORM: _same,
    OpKind.NORM: _same,
    OpKind.ACTIVATION: _same,
    OpKind.ADD: _broadcast,
    OpKind.SUBTRACT: _broadcast,
    OpKind.MULTIPLY: _broadcast,
    OpKind.AVERAGE: _broadcast,
    OpKind.MAXIMUM: _broadcast,
    OpKind.MINIMUM: _broadcast,
    OpKind.CONCAT: _concat,
    OpKind.POOL: _pool,
    OpKind.GLOBAL_POOL: _global_pool,
    OpKind.FLATTEN: _flatten,
    OpKind.RESHAPE: _reshape,
    OpKind.TRANSPOSE: _transpose,
    OpKind.SLICE: _slice,
    OpKind.DROPOUT: _same,
    OpKind.PAD: _pad,
    OpKind.CROP: _crop,
    OpKind.UPSAMPLE: _upsample,
    OpKind.CHANNEL_SHUFFLE: _channel_shuffle,
    OpKind.RESCALE: _same,
    OpKind.IDENTITY: _same,
}


def infer_shape(op: str, attrs: dict, input_shapes: Sequence) -> Optional[Shape]:
    """The output shape of an ``op`` node, or ``None`` where it cannot be known.

    Raises :class:`ShapeError` when the attributes contradict the input shapes.
    """
    if op == OpKind.OPAQUE:
        return None
    if op != OpKind.INPUT and (not input_shapes or any(s is None for s in input_shapes)):
        return None
    try:
        rule = _RULES[op]
    except KeyError:
        raise ShapeError(f"no shape rule for op kind {op!r}") from None
    try:
        return rule(attrs, [tuple(s) for s in input_shapes])
    except (KeyError, IndexError, TypeError) as exc:
        raise ShapeError(f"{op} with attributes {attrs} on inputs {list(input_shapes)}: "
                         f"{type(exc).__name__}: {exc}") from None


def num_elements(shape: Optional[Shape]) -> Optional[int]:
    """Elements of one sample of ``shape``; ``None`` if any dimension is unknown."""
    return None if shape is None else _prod(shape)


def propagate_shapes(graph: Graph, input_shapes: dict) -> Graph:
    """A copy of ``graph`` with new shapes for its inputs, re-inferred downstream.

    ``input_shapes`` maps input node names to batch-excluded shapes (e.g. to give a
    model built with ``(None, None, 3)`` a concrete ``(224, 224, 3)``).  Opaque nodes
    keep their output shape only where their input shapes did not change.
    """
    out = Graph(name=graph.name, inputs=list(graph.inputs), outputs=list(graph.outputs),
                source=graph.source, frontend=graph.frontend)
    for node in graph:
        attrs = dict(node.attrs)
        in_shapes = [out[src].output_shape for src in node.inputs]
        if node.op == OpKind.INPUT:
            shape = tuple(input_shapes.get(node.name, node.output_shape))
            attrs["shape"] = shape
        elif node.op == OpKind.OPAQUE:
            same = all(a == b for a, b in zip(in_shapes, node.input_shapes))
            shape = node.output_shape if same else None
        else:
            shape = infer_shape(node.op, attrs, in_shapes)
        attrs.pop("inferred_shape", None)
        out.add(dataclasses.replace(node, attrs=attrs, input_shapes=in_shapes,
                                    output_shape=shape, inputs=list(node.inputs)))
    return out
