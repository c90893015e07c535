"""Trained kernels carried into their cheaper forms: the decompositions, in numpy.

Pure numpy (SVDs and linear least squares, nothing iterative); importing this module
imports neither Keras nor TensorFlow.  Kernels use Keras' layouts: a convolution's
kernel is ``(*kernel_size, in, out)`` (``HWIO`` in 2D, whatever the data format), a
depthwise kernel ``(*kernel_size, in, multiplier)`` (output channel ``i·m + t``), a
dense kernel ``(in, out)``.  Factors are returned in the same layouts, in the order
the new layers are applied.

* :func:`svd_dense`: truncated SVD of a fully connected layer, ``W ≈ W₁·W₂`` (Girshick,
  "Fast R-CNN", ICCV 2015, §3.1).
* :func:`tucker2`: Tucker-2 of a k×k conv into 1×1 → k×k → 1×1 by HOSVD, the SVDs of
  the kernel's input and output unfoldings (Kim et al., "Compression of Deep
  Convolutional Neural Networks for Fast and Low Power Mobile Applications", ICLR
  2016); :func:`tucker_in` truncates the input mode only (GoogLeNet's 1×1 reduce, then
  the k×k straight to the output).
* :func:`spatial_svd`: a k×k conv as k×1 then 1×k (or 1×k then k×1) through an
  intermediate width (Jaderberg et al., "Speeding up Convolutional Neural Networks with
  Low Rank Expansions", BMVC 2014, scheme 2).
* :func:`depthwise_pointwise`: per input channel, the best rank-m approximation of its
  ``(k·k) × out`` slice; m = 1 is the depthwise-separable form.
* :func:`stacked`: a k×k kernel (k = 2·depth + 1) as ``depth`` stacked 3×3 kernels with
  no activation between them; exact where the intermediate width lets a linear
  composition represent the kernel, a least-squares fit otherwise.
* :func:`gap_dense`: a Dense over a flattened map as a Dense over its global average,
  the kernel summed over positions (exact for spatially constant features).
* :func:`dense_as_conv`: a Dense over a flattened map as a "valid" conv whose window is
  the whole map (exact; Network in Network's fully convolutional head).

Each approximate factorisation is exact at full rank; below it, the SVD-based ones
lose exactly the energy of the discarded singular values (:func:`tucker2` at most the
sum over its two modes).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Optional, Sequence, Union

import numpy as np

__all__ = [
    "RankRule", "compose", "dense_as_conv", "depthwise_pointwise", "flatten_positions",
    "gap_dense", "spatial_matrix", "spatial_svd", "stacked", "svd_dense",
    "truncated_svd", "tucker2", "tucker_in", "unfold",
]


@dataclasses.dataclass(frozen=True)
class RankRule:
    """How the rank of a low-rank factorisation is chosen.

    ``kind`` is ``"width"`` (the width the rule proposed: the default), ``"energy"``
    (the smallest rank keeping at least ``value`` of the squared singular values),
    ``"ratio"`` (``value`` × the full rank, rounded, at least 1) or ``"fixed"``
    (``int(value)``).
    """

    kind: str = "width"
    value: float = 0.0

    @classmethod
    def parse(cls, spec: Union[None, int, str, "RankRule"]) -> "RankRule":
        """``None`` → width; ``16`` or ``"16"`` → fixed; ``"energy:0.95"``; ``"ratio:0.25"``.

        Raises:
            ValueError: an unknown form or a value out of range.
        """
        if spec is None or isinstance(spec, RankRule):
            return spec or cls()
        if isinstance(spec, int) or str(spec).strip().isdigit():
            value = int(spec)
            if value < 1:
                raise ValueError(f"a rank must be at least 1, got {value}")
            return cls("fixed", value)
        kind, _, text = str(spec).strip().partition(":")
        kind = kind.strip().lower()
        if kind == "width" and not text:
            return cls()
        if kind not in ("energy", "ratio"):
            raise ValueError(f"unknown rank {spec!r}: use an integer, energy:X or ratio:X "
                             "(0 < X ≤ 1)")
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"rank {spec!r}: {text!r} is not a number") from None
        if not 0.0 < value <= 1.0:
            raise ValueError(f"rank {spec!r}: the fraction must be in (0, 1]")
        return cls(kind, value)

    def choose(self, singular_values: Sequence[float], width: int) -> int:
        """The rank for a factorisation with these singular values (descending);
        ``width`` is the rule's proposal."""
        s = np.asarray(singular_values, dtype=np.float64)
        if self.kind == "width":
            return int(width)
        if self.kind == "fixed":
            return int(self.value)
        if self.kind == "ratio":
            return max(1, int(round(self.value * len(s))))
        energy = np.cumsum(s ** 2)
        if energy[-1] <= 0.0:
            return 1
        return int(np.searchsorted(energy / energy[-1], self.value - 1e-12) + 1)

    def __str__(self) -> str:
        if self.kind == "width":
            return "width"
        if self.kind == "fixed":
            return str(int(self.value))
        return f"{self.kind}:{self.value:g}"


def _f64(array) -> np.ndarray:
    return np.asarray(array, dtype=np.float64)


def _fit(columns: np.ndarray, rank: int) -> np.ndarray:
    """``columns[:, :rank]``, zero-padded when ``rank`` exceeds what there is."""
    if rank <= columns.shape[1]:
        return columns[:, :rank]
    pad = np.zeros((columns.shape[0], rank - columns.shape[1]), dtype=columns.dtype)
    return np.concatenate([columns, pad], axis=1)


def truncated_svd(matrix, rank: int) -> tuple:
    """``(left, right, singular_values)`` with ``left @ right`` the best rank-``rank``
    approximation of ``matrix`` (Eckart–Young); the singular values are split evenly
    (``left = U·√S``, ``right = √S·Vᵀ``).  A rank above the full rank pads with zeros."""
    u, s, vt = np.linalg.svd(_f64(matrix), full_matrices=False)
    root = np.sqrt(s)
    left = _fit(u * root, rank)
    right = _fit((vt * root[:, None]).T, rank).T
    return left, right, s


def svd_dense(kernel, rank: int) -> tuple:
    """``(first, second)``: Dense ``(in, rank)`` then Dense ``(rank, out)`` with
    ``first @ second`` the truncated SVD of ``kernel`` (the bias stays on the second)."""
    first, second, _ = truncated_svd(kernel, rank)
    return first, second


def unfold(kernel, axis: int) -> np.ndarray:
    """The mode-``axis`` unfolding: ``axis`` first, the other axes flattened."""
    kernel = _f64(kernel)
    return np.moveaxis(kernel, axis, 0).reshape(kernel.shape[axis], -1)


def _leading(matrix: np.ndarray, rank: int) -> tuple:
    u, s, _ = np.linalg.svd(matrix, full_matrices=False)
    return _fit(u, rank), s


def _pointwise(matrix: np.ndarray, rank: int) -> np.ndarray:
    """A ``(in, out)`` matrix as a 1×…×1 conv kernel of that rank."""
    return matrix.reshape((1,) * rank + matrix.shape)


def tucker2(kernel, rank_in: int, rank_out: int) -> tuple:
    """``(reduce, core, expand)``: 1×1 ``(in → rank_in)``, the k×k core
    ``(rank_in → rank_out)``, 1×1 ``(rank_out → out)``.

    HOSVD: ``U_in``/``U_out`` are the leading left singular vectors of the input and
    output unfoldings, ``core = K ×_in U_inᵀ ×_out U_outᵀ``; the three convs compose to
    ``core ×_in U_in ×_out U_out`` (no bias or activation before the last).
    """
    kernel = _f64(kernel)
    spatial = kernel.ndim - 2
    u_in, _ = _leading(unfold(kernel, -2), rank_in)
    u_out, _ = _leading(unfold(kernel, -1), rank_out)
    core = np.einsum("...io,ia,ob->...ab", kernel, u_in, u_out)
    return _pointwise(u_in, spatial), core, _pointwise(u_out.T, spatial)


def tucker_in(kernel, rank_in: int) -> tuple:
    """``(reduce, conv)``: 1×1 ``(in → rank_in)`` then the k×k ``(rank_in → out)``: the
    input mode truncated to its leading singular vectors (GoogLeNet's reduce form)."""
    kernel = _f64(kernel)
    u_in, _ = _leading(unfold(kernel, -2), rank_in)
    return _pointwise(u_in, kernel.ndim - 2), np.einsum("...io,ia->...ao", kernel, u_in)


def spatial_matrix(kernel, first_axis: int) -> np.ndarray:
    """The ``(k_first·in) × (k_second·out)`` matrix whose rank-r factorisation is a
    1D conv along spatial axis ``first_axis`` (``in → r``) then one along the other."""
    kernel = _f64(kernel)
    if kernel.ndim != 4:
        raise ValueError(f"spatial factorisation needs a 2D conv kernel, got {kernel.shape}")
    second_axis = 1 - first_axis
    kf, ks, c_in, c_out = (kernel.shape[first_axis], kernel.shape[second_axis],
                           kernel.shape[2], kernel.shape[3])
    return np.transpose(kernel, (first_axis, 2, second_axis, 3)).reshape(kf * c_in,
                                                                          ks * c_out)


def spatial_svd(kernel, rank: int, first_axis: int = 1) -> tuple:
    """``(first, second)`` 1D kernels whose composition approximates the 2D ``kernel``.

    ``first_axis=1`` (the asymmetric rule's order): the first kernel is ``(1, kw, in,
    rank)`` (along the width), the second ``(kh, 1, rank, out)``; ``first_axis=0`` the
    other way round.  ``K[h, w, i, o] ≈ Σ_j first[.., i, j]·second[.., j, o]``, exact
    at rank ``min(k·in, k·out)``.
    """
    kernel = _f64(kernel)
    left, right, _ = truncated_svd(spatial_matrix(kernel, first_axis), rank)
    kf, ks = kernel.shape[first_axis], kernel.shape[1 - first_axis]
    first = left.reshape(kf, kernel.shape[2], rank)
    second = right.reshape(rank, ks, kernel.shape[3]).transpose(1, 0, 2)
    if first_axis == 1:
        return first[None], second[:, None]
    return first[:, None], second[None]


def depthwise_pointwise(kernel, multiplier: int = 1) -> tuple:
    """``(depthwise, pointwise)``: ``(*k, in, multiplier)`` and ``(*1, in·multiplier,
    out)`` kernels; per input channel ``i`` the best rank-``multiplier`` approximation
    of the slice ``K[..., i, :]`` (reshaped ``(k·k, out)``), singular values split
    evenly.  Exact when every slice has rank ≤ ``multiplier``."""
    kernel = _f64(kernel)
    window, c_in, c_out = kernel.shape[:-2], kernel.shape[-2], kernel.shape[-1]
    depthwise = np.zeros(window + (c_in, multiplier))
    pointwise = np.zeros((c_in * multiplier, c_out))
    for i in range(c_in):
        left, right, _ = truncated_svd(kernel[..., i, :].reshape(-1, c_out), multiplier)
        depthwise[..., i, :] = left.reshape(window + (multiplier,))
        pointwise[i * multiplier:(i + 1) * multiplier] = right
    return depthwise, _pointwise(pointwise, len(window))


def depthwise_singular_values(kernel) -> np.ndarray:
    """Per input channel, the singular values of its ``(k·k, out)`` slice: ``(in, n)``."""
    kernel = _f64(kernel)
    c_out = kernel.shape[-1]
    return np.stack([np.linalg.svd(kernel[..., i, :].reshape(-1, c_out), compute_uv=False)
                     for i in range(kernel.shape[-2])])


def compose(first, second) -> np.ndarray:
    """The kernel of conv ``first`` (stride 1) followed by conv ``second``, with no bias
    or activation between: ``K[p, i, o] = Σ_{a+c=p} Σ_j first[a, i, j]·second[c, j, o]``
    (a full convolution over the window, a contraction over the middle channels)."""
    first, second = _f64(first), _f64(second)
    ka, kc = first.shape[:-2], second.shape[:-2]
    out = np.zeros(tuple(a + c - 1 for a, c in zip(ka, kc))
                   + (first.shape[-2], second.shape[-1]))
    for c in itertools.product(*(range(n) for n in kc)):
        window = tuple(slice(ci, ci + ai) for ci, ai in zip(c, ka))
        out[window] += np.einsum("...ij,jo->...io", first, second[c])
    return out


def _offsets(rest: int) -> list:
    """Shifts in [0, 2] (a 3-tap kernel) of ``rest``-tap tiles covering ``rest + 2`` taps."""
    return [0, 2] if rest >= 2 else [0, 1, 2]


def _split_first(kernel: np.ndarray, width: int) -> tuple:
    """``(first, rest, singular_values)``: a 3-tap ``(in → width)`` kernel and a
    ``(k−2)``-tap ``(width → out)`` kernel with ``compose(first, rest) ≈ kernel``.

    Exact construction first: the window is tiled by ``(k−2)``-tap pieces at shifts in
    [0, 2]; intermediate channel (tile, i) is input channel i shifted by the tile's
    offset, and ``rest`` holds the kernel's pieces (each position in one tile).  That
    intermediate (tiles × in channels) is then cut to ``width`` by a truncated SVD of
    the pieces: exact when ``width`` reaches their rank (at most tiles × in channels).
    """
    window, c_in, c_out = kernel.shape[:-2], kernel.shape[-2], kernel.shape[-1]
    rest_window = tuple(k - 2 for k in window)
    per_axis = [_offsets(r) for r in rest_window]
    tiles = list(itertools.product(*per_axis))
    owner = {}  # kernel position -> the first tile that covers it
    for position in itertools.product(*(range(k) for k in window)):
        owner[position] = next(t for t in tiles if all(
            o <= p < o + r for p, o, r in zip(position, t, rest_window)))
    shifts = np.zeros((3,) * len(window) + (c_in, len(tiles) * c_in))
    pieces = np.zeros(rest_window + (len(tiles) * c_in, c_out))
    for n, tile in enumerate(tiles):
        shifts[tile + (slice(None), slice(n * c_in, (n + 1) * c_in))] = np.eye(c_in)
        for c in itertools.product(*(range(r) for r in rest_window)):
            position = tuple(o + ci for o, ci in zip(tile, c))
            if owner[position] == tile:
                pieces[c + (slice(n * c_in, (n + 1) * c_in),)] = kernel[position]
    basis, s = _leading(unfold(pieces, -2), width)
    first = np.einsum("...ij,jw->...iw", shifts, basis)
    rest = np.einsum("...jo,jw->...wo", pieces, basis)
    return first, rest, s


def stacked_singular_values(kernel) -> np.ndarray:
    """The singular values that the first split of :func:`stacked` truncates."""
    return _split_first(_f64(kernel), 1)[2]


def stacked(kernel, depth: int, width: int) -> list:
    """``depth`` 3-tap kernels (stride 1, no activation or bias between) whose
    composition fits ``kernel`` (k taps per axis, k = 2·depth + 1).

    The first ``depth − 1`` kernels come from :func:`_split_first` applied in turn, each
    ``width`` wide; the last is then the least-squares solution of ``compose(first …,
    last) = kernel`` given them (a linear problem).  With ``width`` at least 4× the
    input channels (for depth 2) the fit is exact; below, it is a least-squares fit.

    Raises:
        ValueError: the window is not 2·depth + 1 taps on every axis.
    """
    kernel = _f64(kernel)
    window = kernel.shape[:-2]
    if depth < 1 or any(k != 2 * depth + 1 for k in window):
        raise ValueError(f"a {window} window is not {depth} stacked 3-tap kernels")
    if depth == 1:
        return [kernel]
    kernels, rest = [], kernel
    for _ in range(depth - 1):
        first, rest, _ = _split_first(rest, width)
        kernels.append(first)
    prefix = kernels[0]
    for k in kernels[1:]:
        prefix = compose(prefix, k)
    kernels.append(_last_by_lstsq(prefix, kernel))
    return kernels


def _last_by_lstsq(prefix: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """The 3-tap ``last`` minimising ‖compose(prefix, last) − kernel‖ (least squares)."""
    window, c_in, c_out = kernel.shape[:-2], kernel.shape[-2], kernel.shape[-1]
    width = prefix.shape[-1]
    taps = list(itertools.product(*(range(3) for _ in window)))
    design = np.zeros(window + (c_in, len(taps), width))
    for n, c in enumerate(taps):
        region = tuple(slice(ci, ci + pi) for ci, pi in zip(c, prefix.shape[:-2]))
        design[region + (slice(None), n)] = prefix
    solution, *_ = np.linalg.lstsq(design.reshape(-1, len(taps) * width),
                                   kernel.reshape(-1, c_out), rcond=None)
    return solution.reshape((3,) * len(window) + (width, c_out))


def flatten_positions(shape: Sequence[int], channels_first: bool,
                      flatten_channels_first: bool = False) -> tuple:
    """``(position, channel)`` of each flattened index of a feature map of ``shape``
    (batch excluded, in its own layout), as Keras' ``Flatten`` orders them.

    ``Flatten(data_format="channels_first")`` first moves the tensor's axis 1 last.
    """
    shape = tuple(int(d) for d in shape)
    c_axis = 0 if channels_first else len(shape) - 1
    spatial = [d for a, d in enumerate(shape) if a != c_axis]
    channel = np.zeros(shape, dtype=np.int64)
    channel[...] = np.arange(shape[c_axis]).reshape(
        [-1 if a == c_axis else 1 for a in range(len(shape))])
    position = np.moveaxis(np.arange(math.prod(spatial)).reshape(spatial)[..., None]
                           * np.ones(shape[c_axis], dtype=np.int64), -1, c_axis)
    if flatten_channels_first and len(shape) > 1:
        channel, position = np.moveaxis(channel, 0, -1), np.moveaxis(position, 0, -1)
    return position.reshape(-1), channel.reshape(-1)


def gap_dense(kernel, channel_of_row: Sequence[int], channels: Optional[int] = None):
    """The ``(channels, units)`` kernel of a Dense over the global average that equals
    Dense ``kernel`` over the flattened map when every position holds the same vector:
    row ``c`` is the sum of the rows of channel ``c`` (``channel_of_row[r]``)."""
    kernel = _f64(kernel)
    rows = np.asarray(channel_of_row, dtype=np.int64)
    channels = int(rows.max()) + 1 if channels is None else channels
    out = np.zeros((channels, kernel.shape[1]))
    np.add.at(out, rows, kernel)
    return out


def dense_as_conv(kernel, spatial: Sequence[int], position_of_row: Sequence[int],
                  channel_of_row: Sequence[int]) -> np.ndarray:
    """The ``(*spatial, C, units)`` kernel of a "valid" conv over the whole map that
    computes Dense ``kernel`` over the flattened map exactly."""
    kernel = _f64(kernel)
    positions = np.asarray(position_of_row, dtype=np.int64)
    channels = np.asarray(channel_of_row, dtype=np.int64)
    out = np.zeros((math.prod(spatial), int(channels.max()) + 1, kernel.shape[1]))
    out[positions, channels] = kernel
    return out.reshape(tuple(spatial) + out.shape[1:])
