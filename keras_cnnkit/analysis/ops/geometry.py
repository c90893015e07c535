"""Shape arithmetic the op definitions share: layouts, window lengths, broadcasting.

Shapes exclude the batch dimension; an unknown dimension is ``None`` and propagates.
Output-size formulas (Keras' conventions; seed 003: ``o = (n + 2p − k)/s + 1``):

* convolution, ``"valid"``: ``o = ⌊(n − d(k−1) − 1)/s⌋ + 1``; ``"same"`` and
  ``"causal"``: ``o = ⌈n/s⌉``; explicit pads ``(b, e)``: ``o = ⌊(n + b + e − d(k−1) − 1)/s⌋ + 1``;
* transposed convolution: ``"same"``: ``o = n·s``; ``"valid"``: ``o = n·s + max(k_d − s, 0)``
  with ``k_d = d(k−1) + 1``; with ``output_padding`` ``q``: ``o = (n−1)s + k_d − 2·pad + q``;
  explicit pads ``(b, e)`` (ONNX): ``o = (n−1)s + k_d − b − e + q``;
* pooling, ``"valid"``: ``o = ⌊(n − k)/s⌋ + 1``; ``"same"``: ``o = ⌈n/s⌉``; explicit pads
  ``(b, e)``: ``o = ⌊(n + b + e − k)/s⌋ + 1`` (ONNX, PyTorch); with ``ceil_mode`` the
  division rounds up, but a last window that would start in the end padding is dropped
  (PyTorch's rule, which ONNX Runtime follows).
"""
from __future__ import annotations

from typing import Optional, Sequence

from keras_cnnkit.analysis.ops.errors import ShapeError


def prod(dims: Sequence) -> Optional[int]:
    """The product of ``dims``; ``None`` if one of them is unknown."""
    out = 1
    for d in dims:
        if d is None:
            return None
        out *= d
    return out


def split(shape: Sequence, data_format: str) -> tuple:
    """(spatial dims, channels) of ``shape``."""
    if data_format == "channels_first":
        return tuple(shape[1:]), shape[0]
    return tuple(shape[:-1]), shape[-1]


def join(spatial: Sequence, channels, data_format: str) -> tuple:
    """The shape with ``spatial`` dims and ``channels`` in ``data_format``."""
    if data_format == "channels_first":
        return (channels, *spatial)
    return (*spatial, channels)


def per_spatial(shape: Sequence, data_format: str, values: Sequence, length) -> tuple:
    """``shape`` with each spatial dim ``n`` (paired with ``values``) replaced by
    ``length(n, value)`` (``None`` stays ``None``); channels kept."""
    spatial, channels = split(shape, data_format)
    out = tuple(None if n is None else length(n, v) for n, v in zip(spatial, values))
    return join(out, channels, data_format)


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


def deconv_length(n: Optional[int], kernel: int, stride: int, dilation: int, padding,
                  output_padding: Optional[int]) -> Optional[int]:
    """Output length of a transposed convolution along one axis (Keras' formula; with
    this axis' explicit ``(begin, end)`` pads, ONNX's)."""
    if n is None:
        return None
    extent = dilation * (kernel - 1) + 1
    if not isinstance(padding, str):
        begin, end = padding
        out = (n - 1) * stride + extent - begin - end + (output_padding or 0)
        if out < 1:
            raise ShapeError(f"pads {padding} leave no output of an input of length {n}")
        return out
    if output_padding is None:
        if padding == "same":
            return n * stride
        return n * stride + max(extent - stride, 0)
    pad = extent // 2 if padding == "same" else 0
    return (n - 1) * stride + extent - 2 * pad + output_padding


def pool_length(n: Optional[int], size: int, stride: int, padding,
                ceil_mode: bool = False) -> Optional[int]:
    """Output length of a pooling window along one axis (``padding``: a mode or this
    axis' ``(begin, end)`` pads)."""
    if n is None:
        return None
    if padding == "same":
        return -(-n // stride)
    begin, end = (0, 0) if padding == "valid" else padding
    span = n + begin + end - size
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and span >= 0 and (out - 1) * stride >= n + begin:
        out -= 1
    if out < 1:
        raise ShapeError(f"a pooling window of {size} does not fit an input of length {n}")
    return out


def axis_padding(padding, axis: int):
    """The padding of spatial ``axis``: the mode string, or its ``(begin, end)``."""
    if isinstance(padding, str):
        return padding
    return tuple(padding[axis])


def broadcast(shapes: Sequence) -> tuple:
    """The broadcast of ``shapes`` (numpy rules, ``None`` for unknown dims)."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded):
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError(f"cannot broadcast shapes {list(shapes)}")
        if known:
            out.append(known.pop())
        elif None in dims:
            out.append(None)
        else:
            out.append(1)
    return tuple(out)
