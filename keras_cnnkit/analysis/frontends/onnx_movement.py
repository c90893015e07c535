"""ONNX op handlers that move data: concatenation, transposes, reshapes, padding,
slicing, resizing, and the merge of split group convolutions (see
:mod:`keras_cnnkit.analysis.frontends.onnx_frontend`)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.frontends.onnx_base import (
    ConverterBase,
    Renamed,
    Tensor,
    attr,
    identity_order,
    reshape_target,
    text,
)
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.ops import check_attrs
from keras_cnnkit.analysis.ops.geometry import prod


class MovementOps(ConverterBase):
    """Handlers (``_op_<OnnxOp>``) of the ops that only move or select data."""

    def _op_Concat(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        if len(data) != len([n for n in node.input if n]) or x.shape is None:
            self._opaque(node, data, "concatenation with a constant or of unknown rank")
            return
        axis = x.index(int(attr(node, "axis", 1)) % len(x.shape))
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
        merge_split_group_conv(self.graph, concat)

    def _op_Transpose(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        if x.shape is None:
            self._opaque(node, data, "transpose of a tensor of unknown rank")
            return
        rank = len(x.shape)
        perm = list(attr(node, "perm", list(reversed(range(rank)))))
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

    def _reshape_like(self, node, x: Tensor, shape: Optional[tuple]) -> None:
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
        if self._shuffle_back(node, x, shape):
            return
        target = tuple(shape[1:])
        channels = x.channels()
        channel = (len(shape) - 1 if target and target[-1] == channels
                   else 1 if len(shape) > 2 and target[0] == channels
                   else _split_channel(x, shape))
        out = Tensor("", shape, identity_order(shape), channel,
                      "channels_first" if channel == 1 and len(shape) > 2 else "channels_last")
        if len(target) == 1 and len(logical) > 1:
            self._emit(node, OpKind.FLATTEN, [x], {}, out)
        else:
            reshape = self._emit(node, OpKind.RESHAPE, [x], {"target_shape": target}, out)
            self.reshape_sources[reshape.name] = (dataclasses.replace(x), tuple(shape))

    def _shuffle_back(self, node, x: Tensor, shape: tuple) -> bool:
        """Reshape splitting the channels into (g, C/g) → transpose putting C/g before g →
        reshape merging them back: a channel shuffle, in whatever layout the tensor has
        (NCHW as PyTorch writes it, NHWC, or NCHW between an exporter's transposes; see
        :func:`shuffle_axes`).  The first reshape's node becomes a channel_shuffle node
        (``groups = g``) and this reshape's output is its output."""
        split = self.graph.nodes.get(x.node)
        source = self.reshape_sources.get(x.node)
        if split is None or source is None or split.op != OpKind.RESHAPE or not x.sole \
                or self.graph.consumers(split):
            return False
        src, mid = source
        found = shuffle_axes(src, mid, x, shape)
        if found is None:
            return False
        groups, moved = found
        split.op = OpKind.CHANNEL_SHUFFLE
        split.attrs = {"groups": groups, "data_format": src.data_format()}
        check_attrs(split.op, split.attrs)
        split.output_shape = src.logical()
        split.source_class = "Reshape+Transpose+Reshape"
        out = node.output[0]
        self.tensors[out] = Tensor(split.name, shape, tuple(moved[a] for a in src.order),
                                   moved[_shuffled_axis(src)], src.data_format(),
                                   sole=self._single_use(out))
        return True

    def _op_Reshape(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        target = self._const_value(self._input(node, 1))
        shape = None
        if target is not None and x.shape is not None and None not in x.shape:
            shape = reshape_target(x.shape, [int(t) for t in target.reshape(-1)],
                                    bool(attr(node, "allowzero", 0)))
        self._reshape_like(node, x, shape)

    def _op_Flatten(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        shape = None
        if x.shape is not None and None not in x.shape:
            axis = int(attr(node, "axis", 1)) % (len(x.shape) or 1)
            shape = (prod(x.shape[:axis]), prod(x.shape[axis:]))
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
        pads = attr(node, "pads")
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
                                           "mode": text(attr(node, "mode", "constant"))},
                   self._out(node, x))

    def _op_Split(self, node, data: list) -> None:  # pylint: disable=invalid-name
        x = data[0]
        if x.shape is None:
            self._opaque(node, data, "split of a tensor of unknown rank")
            return
        axis = int(attr(node, "axis", 0)) % len(x.shape)
        sizes = attr(node, "split")
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
            self._emit(Renamed(node, f"{node.name or 'Split'}/{i}", [name]), OpKind.SLICE,
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
        self._select(node, data, bounds)

    def _select(self, node, data: list, bounds: dict) -> None:
        """A contiguous part of ``data[0]``: ``bounds`` maps physical axes to ``(start,
        end)``.  Of the channels alone: slice; of spatial axes alone: crop."""
        x = data[0]
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

    def _op_Gather(self, node, data: list) -> None:  # pylint: disable=invalid-name
        """A ``Gather`` of every element of a flat tensor, in order (``arange`` indices):
        a reshape to the indices' shape, as PyTorch's dynamo exporter writes
        ``as_strided``.  A ``Gather`` of a run of consecutive indices (a 1-D ``arange(a,
        b)``) along one axis of a tensor of known layout is a ``Slice`` of that axis (a
        chunk of the channels: slice; of a spatial axis: crop).  Any other gather of an
        activation is opaque."""
        import numpy as np
        x = data[0]
        index = self._const_value(self._input(node, 1))
        known = x.shape is not None and node.input[0] in self.tensors
        axis = int(attr(node, "axis", 0))
        if known and index is not None and index.dtype.kind in "iu":
            axis %= len(x.shape) or 1
            flat = len(x.shape) == 1 and x.shape[0] is not None
            if flat and np.array_equal(index.reshape(-1), np.arange(x.shape[0])):
                self._reshape_like(node, x, tuple(int(d) for d in index.shape))
                return
            run = _index_run(index, x.shape[axis])
            if run is not None and x.index(axis) is not None:
                if run != (0, x.shape[axis]):
                    self._select(node, data, {axis: run})
                else:
                    self._view(node, x, x.shape, x.order, x.channel)
                return
        self._opaque(node, data, "gather of an activation")

    def _op_Resize(self, node, data: list) -> None:  # pylint: disable=invalid-name
        """Resize/Upsample by whole factors over the spatial axes → upsample.  The factors
        come from the ``scales`` or ``sizes`` constant (ONNX's inferred output shape only
        where neither is known); batch and channels must stay."""
        x = data[0]
        mode = text(attr(node, "mode", "nearest"))
        factors = self._resize_factors(node, x)
        spatial = [a for a in x.order if a != x.channel]
        if factors is None or x.channel not in x.order or any(
                factors[a] != 1 for a in range(len(factors)) if a not in spatial) or any(
                    factors[a] is None or factors[a] < 1 or factors[a] != int(factors[a])
                    for a in spatial):
            self._opaque(node, data, "resize by a non-integer or unknown factor, or of "
                                     "the batch or channels")
            return
        shape = tuple(None if d is None else int(d * f) for d, f in zip(x.shape, factors))
        self._emit(node, OpKind.UPSAMPLE, [x], {
            "size": tuple(int(factors[a]) for a in spatial),
            "interpolation": "bilinear" if mode == "linear" else mode},
            self._out(node, x, shape))

    def _resize_factors(self, node, x: Tensor) -> Optional[list]:
        """The scale of every physical axis of ``x`` (``None`` where unknown)."""
        if x.shape is None:
            return None
        first = 1 if node.op_type == "Upsample" or len(node.input) == 2 else 2
        scales = self._const_value(self._input(node, first))
        sizes = self._const_value(self._input(node, 3))
        if scales is not None and scales.size == len(x.shape):
            return [float(v) for v in scales.reshape(-1)]
        if sizes is not None and sizes.size == len(x.shape):
            target = [int(v) for v in sizes.reshape(-1)]
        else:
            target = self._shape_of(node.output[0])
            if target is None or len(target) != len(x.shape):
                return None
        return [None if t is None or not d or t % d else t // d
                for t, d in zip(target, x.shape)]

    _op_Upsample = _op_Resize



def _index_run(index, size: Optional[int]) -> Optional[tuple]:
    """``(start, end)`` where the 1-D integer ``index`` is ``arange(start, end)`` (a
    negative index counts from ``size``), else ``None``."""
    import numpy as np
    if size is None or index.ndim != 1 or not 0 < index.size <= size:
        return None
    values = np.where(index < 0, index + size, index).astype(np.int64)
    start = int(values[0])
    if start < 0 or start + len(values) > size \
            or not np.array_equal(values, np.arange(start, start + len(values))):
        return None
    return start, start + len(values)


def _split_channel(x: Tensor, shape: tuple) -> Optional[int]:
    """Where the channels are after a reshape that splits ``x``'s channel axis ``C`` into
    ``(g, C/g)`` in place (a channel shuffle's first step, ResNeSt's radix split): the
    ``C/g`` axis, which a reduction over ``g`` leaves as the channels."""
    axis = x.channel
    if axis is None or x.shape is None or len(shape) != len(x.shape) + 1:
        return None
    if (tuple(shape[:axis]) == tuple(x.shape[:axis])
            and tuple(shape[axis + 2:]) == tuple(x.shape[axis + 1:])
            and None not in shape[axis:axis + 2]
            and shape[axis] * shape[axis + 1] == x.shape[axis]):
        return axis + 1
    return None


def _shuffled_axis(x: Tensor) -> Optional[int]:
    """The physical axis a channel shuffle of ``x`` permutes: its channel axis, or where
    its channels are unknown, the first or last logical axis as its layout says."""
    if x.channel is not None or not x.order:
        return x.channel
    return x.order[0] if x.data_format() == "channels_first" else x.order[-1]


def shuffle_axes(src: Tensor, mid: tuple, x: Tensor, shape: tuple) -> Optional[tuple]:
    """Whether ``src`` → Reshape to ``mid`` → Transpose (and views) to ``x`` → Reshape to
    ``shape`` is a channel shuffle of ``src``: ``(groups, moved)`` where ``moved`` maps
    each physical axis of ``src`` to its axis in the result, else ``None``.

    All in physical (ONNX) axes, batch included.  The first reshape splits the channel
    axis ``c`` of ``src`` (size ``C``) into ``(g, C/g)``; the transpose brings the
    ``C/g`` part right before the ``g`` part; the last reshape merges the two into one
    axis of ``C``.  Where the first reshape keeps every other axis, the transpose may
    also permute those (the result is the shuffle followed by that permutation, which
    ``moved`` records); where it regroups them (``(N, g, C/g, H·W)``, as an export with
    dynamic height and width writes), the transpose must swap the two channel parts
    only and the last reshape restore ``src``'s shape.  A swap of two parts of any axis
    but the channels (a spatial axis) is no channel shuffle.
    """
    c = _shuffled_axis(src)
    dims = (src.shape, mid, x.shape, shape)
    if c is None or c not in src.order or any(d is None or None in d for d in dims):
        return None
    if src.order.index(c) not in (0, len(src.order) - 1):   # no layout names it
        return None
    rank = len(mid)
    if len(x.shape) != rank or len(shape) != len(src.shape) \
            or sorted(x.order) != list(range(1, rank)):
        return None
    pos = (0,) + tuple(x.order)   # axis of mid → axis of x
    size = src.shape[c]
    for k in range(1, rank - 1):
        if (mid[k] * mid[k + 1] != size or prod(mid[:k]) != prod(src.shape[:c])
                or pos[k + 1] + 1 != pos[k]):
            continue
        if k == c and tuple(mid[:c]) == tuple(src.shape[:c]) \
                and tuple(mid[c + 2:]) == tuple(src.shape[c + 1:]):
            p = pos[k + 1]
            if tuple(x.shape[:p]) + (size,) + tuple(x.shape[p + 2:]) != tuple(shape):
                continue
            moved = []
            for axis in range(len(src.shape)):
                if axis == c:
                    moved.append(p)
                    continue
                t = pos[axis if axis < c else axis + 1]
                moved.append(t if t < p else t - 1)
            return mid[k], moved
        swap = list(range(rank))
        swap[k], swap[k + 1] = k + 1, k
        if list(pos) == swap and tuple(shape) == tuple(src.shape):
            return mid[k], list(range(len(src.shape)))
    return None


# --- graph rewrites ----------------------------------------------------------------------

def merge_split_group_conv(graph: Graph, concat: Node) -> None:
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
    parts_line_up = all(
        s.inputs[0] == source and s.attrs["start"] == i * width
        and s.attrs.get("stop") == (i + 1) * width and s.attrs.get("axis") == _channel_index(s)
        for i, s in enumerate(slices))
    alike = all(c.attrs.get(k) == first.attrs.get(k) for c in convs for k in same)
    if not (parts_line_up and alike and concat.attrs.get("axis") == _channel_index(concat)
            and graph.nodes[source].output_shape is not None):
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
