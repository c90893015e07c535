"""The static readers' budget checks (:mod:`keras_cnnkit.budgets`), one per choke point.

Each check runs *before* the work it guards and raises
:class:`~keras_cnnkit.budgets.BudgetError` naming the budget, its limit and the file's
value:

* :func:`check_json` — a JSON config's bytes, then its depth and its number of values,
  from one linear scan of the bytes (strings skipped), before ``json.loads`` builds
  anything;
* :func:`read_member` / :func:`member_stream` / :func:`check_archive` — a ``.keras``
  archive's member count (from the end-of-central-directory record, before ``zipfile``
  reads the directory), each member's compression ratio (declared sizes), and the bytes
  actually inflated (counted while streaming, whatever the header says);
* :func:`check_model_spec` — a normalised Keras config: every kernel, pool window and
  width it declares, and the number of layers it expands to (nested models once per
  call, composite blocks as their ops), before the graph is built;
* :func:`check_onnx_model` / :func:`check_evaluation` — an ONNX graph's node count and
  kernel shapes before conversion; the elements a constant-folded op would create,
  before numpy creates them.

ONNX shape inference is bounded by :mod:`.onnx_budget`, HDF5 traversal by counters in
:mod:`.h5_reader`; every IR node is checked once
more when it is added to a graph (:func:`keras_cnnkit.budgets.check_node`).
"""
from __future__ import annotations

import io
import struct
import tempfile
import zipfile
from typing import Any, Optional

from keras_cnnkit.budgets import BudgetError, check, check_int64, current

# --- JSON ------------------------------------------------------------------------------

_QUOTE, _BACKSLASH, _COMMA = 0x22, 0x5C, 0x2C
_OPENERS = (0x5B, 0x7B)    # [ {
_CLOSERS = (0x5D, 0x7D)    # ] }
_CHUNK = 1 << 20


def check_json(path: str, data, where: str = "") -> None:
    """Check JSON text against ``max-json-bytes``, ``max-json-depth`` and
    ``max-json-values`` before it is parsed.

    ``data``: bytes (UTF-8) or str.  The scan is linear: structural characters outside
    strings (a quote ends a string unless an odd run of backslashes precedes it) give the
    nesting depth and a count of values (commas and containers: every value but the
    first of each container follows a comma).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    label = f"{where} " if where else ""
    check(path, "max-json-bytes", len(data), f"the {label}JSON config is {len(data):,} bytes")
    depth, values = _scan_json(memoryview(data))
    check(path, "max-json-depth", depth, f"the {label}JSON config nests {depth:,} deep")
    check(path, "max-json-values", values, f"the {label}JSON config holds about "
                                          f"{values:,} values")


def _scan_json(data: memoryview) -> tuple:
    """``(maximum depth, commas + containers + 1)`` of JSON bytes, 1 MiB at a time.

    Structural characters count outside strings only; a quote ends a string unless an
    odd run of backslashes precedes it (runs are followed across chunks, and only
    computed in chunks that have backslashes).
    """
    import numpy as np

    in_string = 0            # parity: inside a string where the last chunk ended
    carry = 0                # backslashes ending the last chunk
    depth = max_depth = 0
    values = 1
    for start in range(0, len(data), _CHUNK):
        chunk = np.frombuffer(data[start:start + _CHUNK], dtype=np.uint8)
        quotes = chunk == _QUOTE
        slash = chunk == _BACKSLASH
        if carry or slash.any():
            index = np.arange(len(chunk), dtype=np.int64)
            last_other = np.maximum.accumulate(np.where(slash, -1, index))
            run_at = index - last_other                  # backslashes ending at i
            run_at[last_other < 0] += carry
            quotes[0] &= carry % 2 == 0
            quotes[1:] &= run_at[:-1] % 2 == 0
            carry = int(run_at[-1])
        flips = np.cumsum(quotes, dtype=np.int32)
        outside = ((flips + in_string) & 1 == 0) & ~quotes
        opens = ((chunk == _OPENERS[0]) | (chunk == _OPENERS[1])) & outside
        closes = ((chunk == _CLOSERS[0]) | (chunk == _CLOSERS[1])) & outside
        if opens.any():
            levels = np.cumsum(opens.astype(np.int32) - closes.astype(np.int32)) + depth
            max_depth = max(max_depth, int(levels.max()))
            depth = int(levels[-1])
        else:
            depth -= int(closes.sum())
        values += int(opens.sum()) + int(((chunk == _COMMA) & outside).sum())
        in_string = (int(flips[-1]) + in_string) & 1
    return max_depth, values


# --- zip archives ------------------------------------------------------------------------

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
#: Members smaller than this are never refused for their compression ratio.
RATIO_FLOOR = 1 << 20


def check_archive(path: str, fh) -> None:
    """``max-zip-members`` from the end-of-central-directory record, before ``zipfile``
    reads the directory (one ``ZipInfo`` per entry).  ``fh``: the open archive."""
    fh.seek(0, io.SEEK_END)
    size = fh.tell()
    tail_size = min(size, 22 + 65535)
    fh.seek(size - tail_size)
    tail = fh.read(tail_size)
    at = tail.rfind(_EOCD)
    while at >= 0 and struct.unpack("<H", tail[at + 20:at + 22] or b"\xff\xff")[0] \
            != len(tail) - at - 22:   # the signature inside the archive's comment
        at = tail.rfind(_EOCD, 0, at)
    if at < 0 or len(tail) < at + 22:
        return   # not a zip zipfile can read: it says so itself
    entries = struct.unpack("<H", tail[at + 10:at + 12])[0]
    if entries == 0xFFFF and at >= 20 and tail[at - 20:at - 16] == _ZIP64_LOCATOR:
        offset = struct.unpack("<Q", tail[at - 12:at - 4])[0]
        if offset < size:
            fh.seek(offset)
            record = fh.read(56)
            if record[:4] == _ZIP64_EOCD and len(record) == 56:
                entries = struct.unpack("<Q", record[32:40])[0]
    check(path, "max-zip-members", entries, f"the archive has {entries:,} members")
    fh.seek(0)


def check_ratio(path: str, info: zipfile.ZipInfo) -> None:
    """``max-inflated-bytes`` and ``max-zip-ratio`` of a member, from its declared sizes
    (the bytes actually inflated are counted too: :func:`read_member`)."""
    check(path, "max-inflated-bytes", info.file_size,
          f"{info.filename} inflates to {info.file_size:,} bytes")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > RATIO_FLOOR:
        ratio = info.file_size // max(info.compress_size, 1)
        check(path, "max-zip-ratio", ratio,
              f"{info.filename} inflates {ratio:,} times ({info.compress_size:,} → "
              f"{info.file_size:,} bytes)")


def read_member(path: str, archive: zipfile.ZipFile, info: zipfile.ZipInfo,
                budget: str = "max-inflated-bytes") -> bytes:
    """The inflated bytes of ``info``, counted while they are inflated: never more than
    ``budget`` (and never more than the header declares: ``zipfile`` stops there)."""
    check_ratio(path, info)
    limit = getattr(current(), budget.replace("-", "_"))
    what = f"{info.filename} inflates to more than {limit:,} bytes"
    check(path, budget, info.file_size, f"{info.filename} inflates to {info.file_size:,} "
                                        "bytes")
    parts, total = [], 0
    with archive.open(info) as member:
        while True:
            block = member.read(min(_CHUNK, limit + 1 - total))
            if not block:
                break
            total += len(block)
            if total > limit:
                raise BudgetError(path, budget, total, limit, what)
            parts.append(block)
    return b"".join(parts)


def member_stream(path: str, archive: zipfile.ZipFile, raw, info: zipfile.ZipInfo):
    """A seekable stream over a member, for h5py: in place when stored; otherwise
    inflated once, counted, into an anonymous temporary file (unlinked at creation, so
    nothing is ever left behind; a compressed stream re-inflates from the start on every
    backward seek)."""
    check_ratio(path, info)
    if info.compress_type == zipfile.ZIP_STORED:
        window = _stored_window(raw, info)
        if window is not None:
            return window
    limit = current().max_inflated_bytes
    spool = tempfile.TemporaryFile()   # pylint: disable=consider-using-with
    try:
        total = 0
        with archive.open(info) as member:
            while True:
                block = member.read(_CHUNK)
                if not block:
                    break
                total += len(block)
                if total > limit:
                    raise BudgetError(path, "max-inflated-bytes", total, limit,
                                      f"{info.filename} inflates to more than {limit:,} "
                                      "bytes")
                spool.write(block)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _stored_window(raw, info: zipfile.ZipInfo):
    raw.seek(info.header_offset)
    header = raw.read(30)
    if len(header) == 30 and header[:4] == b"PK\x03\x04":
        name_len = int.from_bytes(header[26:28], "little")
        extra_len = int.from_bytes(header[28:30], "little")
        return _Window(raw, info.header_offset + 30 + name_len + extra_len, info.file_size)
    return None


class _Window(io.RawIOBase):
    """A read-only, seekable view of ``[start, start + size)`` of an open binary file.

    Lets h5py read a zip member stored uncompressed in place, touching only the
    metadata pages it needs instead of copying the whole member.
    """

    def __init__(self, fh, start: int, size: int):
        super().__init__()
        self._fh, self._start, self._size, self._pos = fh, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), self._size - self._pos))
        if count == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(count)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


# --- Keras model configs -------------------------------------------------------------------

#: Config keys holding kernel or pool window sizes (an int or one per axis).
KERNEL_KEYS = frozenset({"kernel_size", "pool_size"})
#: Config keys holding widths (filters, units, ...); keys ending in ``_dim`` too.
WIDTH_KEYS = frozenset({"filters", "units", "growth_rate", "classes", "hidden_units",
                        "intermediate_filters", "bottleneck_filters", "num_heads",
                        "depth_multiplier", "expansion", "se_filters"})
#: Layers that are two IR nodes (a depthwise and a pointwise conv; an offset conv).
_TWO_NODE_CLASSES = frozenset({"SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D",
                               "SeparableConvolution2D", "DeformableConv2D"})


def check_model_spec(path: str, spec) -> int:
    """Check a normalised model (:class:`.keras_config.ModelSpec`) before its graph is
    built; returns the number of IR nodes it expands to (an upper bound).

    Every layer's kernel and pool sizes (``max-kernel-size``) and widths
    (``max-channels``), then the running total of nodes (``max-nodes``): a nested model
    counts its own nodes once per call (computed once per model), a composite block the
    ops of its spec (``keras_cnnkit.blockspec.op_bound``, from its arguments alone).  A
    layer counts as a block whatever module it names: Keras resolves a
    ``keras_cnnkit>DenseBlock`` by its registered name.
    """
    return _SpecCounter(path).count(spec)


class _SpecCounter:
    def __init__(self, path: str):
        self.path = path
        self.limit = current().max_nodes
        self.memo: dict = {}

    def count(self, spec, depth: int = 0) -> int:
        """Nodes ``spec`` expands to (once per model); raises past the budget."""
        key = id(spec)
        if key in self.memo:
            return self.memo[key]
        nodes = 0
        for layer in spec.layers:
            calls = 1 if layer.class_name == "InputLayer" else max(1, len(layer.calls))
            if layer.model is not None:
                per = self.count(layer.model, depth + 1)
            else:
                check_config_sizes(self.path, layer.name, layer.class_name, layer.config)
                per = self.layer_nodes(layer)
            nodes += calls * per
            if nodes > self.limit:
                called = f", called {calls:,} times" if calls > 1 else ""
                raise BudgetError(self.path, "max-nodes", nodes, self.limit,
                                  f"the model expands to {nodes:,} layers by layer "
                                  f"{layer.name!r} ({layer.class_name}{called})")
        self.memo[key] = nodes
        return nodes

    @staticmethod
    def layer_nodes(layer) -> int:
        """Nodes of one call of a layer: a block's op bound, else one or two."""
        from keras_cnnkit.blockspec import op_bound

        bound = op_bound(_block_name(layer), layer.config)
        if bound is not None:
            return bound
        return 2 if layer.class_name in _TWO_NODE_CLASSES else 1


def _block_name(layer) -> str:
    """The block class a layer entry names: by its class or by its registered name."""
    registered = layer.registered_name or ""
    if registered.startswith("keras_cnnkit>"):
        return registered.split(">", 1)[1]
    return layer.class_name


def check_config_sizes(path: str, layer: str, class_name: str, config: Any) -> None:
    """``max-kernel-size`` and ``max-channels`` (and 64-bit integers) of the sizes a
    layer config declares, at any nesting (``hidden_units`` lists, sub-configs)."""
    stack = [(None, config)]
    while stack:
        key, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((k, v) for k, v in value.items() if k != "layers")
        elif isinstance(value, (list, tuple)):
            if value and _size_budget(key) is not None and all(
                    type(v) is int for v in value):   # noqa: E721  pylint: disable=unidiomatic-typecheck
                stack.append((key, max(value, key=abs)))   # a long list of sizes: its largest
            else:
                stack.extend((key, v) for v in value)
        elif isinstance(value, int) and not isinstance(value, bool) and key is not None:
            budget = _size_budget(key)
            if budget is not None:
                what = f"layer {layer!r} ({class_name}) has {key} {value:,}" if \
                    abs(value) < 10 ** 30 else f"layer {layer!r} ({class_name}): {key}"
                check_int64(path, value, what)
                check(path, budget, value, what)


def _size_budget(key: str) -> Optional[str]:
    if key in KERNEL_KEYS:
        return "max-kernel-size"
    if key in WIDTH_KEYS or key.endswith("_dim"):
        return "max-channels"
    return None


# --- ONNX --------------------------------------------------------------------------------

def check_onnx_model(source: str, proto) -> None:
    """An ONNX graph's node count (``max-nodes``) and every ``kernel_shape`` attribute
    (``max-kernel-size``), before it is converted."""
    graph = proto.graph
    check(source, "max-nodes", len(graph.node), f"the ONNX graph has {len(graph.node):,} "
                                               "nodes")
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "kernel_shape":
                for size in attribute.ints:
                    what = f"node {node.name or node.op_type!r} has kernel_shape {size:,}"
                    check(source, "max-kernel-size", size, what)


def element_count(values) -> int:
    """The product of ``values`` (negative sizes count as 0)."""
    total = 1
    for value in values:
        total *= max(int(value), 0)
    return total


def _size_of(value) -> int:
    return 0 if value is None else int(getattr(value, "size", 1))


def _broadcast_size(values: list) -> int:
    shapes = [tuple(getattr(v, "shape", ())) for v in values if v is not None]
    rank = max((len(s) for s in shapes), default=0)
    dims = []
    for axis in range(rank):
        sizes = [s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0]
        dims.append(max(sizes) if sizes else 1)
    return element_count(dims)


def _range_size(values: list) -> int:
    import math
    start, limit, delta = (float(v.reshape(-1)[0]) if hasattr(v, "reshape") else float(v)
                           for v in values[:3])
    if delta == 0 or not all(map(math.isfinite, (start, limit, delta))):
        return 0
    return max(math.ceil((limit - start) / delta), 0)


def _gather_size(node, values: list) -> int:
    data, indices = values[0], values[1]
    if data is None or indices is None or not getattr(data, "ndim", 0):
        return _size_of(indices)
    from keras_cnnkit.analysis.frontends.onnx_base import attr
    axis = int(attr(node, "axis", 0)) % data.ndim
    return _size_of(indices) * (_size_of(data) // max(int(data.shape[axis]), 1))


def _output_size(node, values: list) -> Optional[int]:
    """How many elements ``node`` would create from ``values``; ``None`` when it creates
    none beyond its inputs' (views, casts, slices, reductions)."""
    op = node.op_type
    if op == "ConstantOfShape":
        shape = values[0]
        return element_count(shape.reshape(-1)) if shape is not None else 0
    if op == "Range":
        return _range_size(values) if all(v is not None for v in values[:3]) else 0
    if op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
        return _broadcast_size(values)
    if op == "Concat":
        return sum(_size_of(v) for v in values)
    if op == "Gather":
        return _gather_size(node, values)
    return None


def check_evaluation(source: str, node, values: list) -> None:
    """``max-const-elements`` for one constant-folded ONNX op, from its inputs' shapes
    and values, before numpy allocates its result."""
    size = _output_size(node, values)
    if size is None:
        return
    check_int64(source, size, f"node {node.name or node.op_type!r} ({node.op_type}) output")
    check(source, "max-const-elements", size,
          f"node {node.name or node.op_type!r} ({node.op_type}) would create {size:,} "
          "elements")
