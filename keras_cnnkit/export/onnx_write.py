"""Writing an ONNX model one initializer at a time (bounded memory).

The emitter hands each initializer to a :class:`TensorStore` as soon as it is made: its
bytes go straight to a spool file and only the name, dtype, dims, offset and length stay
in memory.  :func:`write_inline` then writes the ``.onnx`` file as protobuf's wire format
spells it: the model's fields, then the graph as one length-delimited field whose body
is the graph's nodes, inputs and outputs followed by one ``initializer`` field per
tensor, each a ``TensorProto`` header and its ``raw_data`` copied from the spool in
chunks (a message's fields may come in any order; repeated fields concatenate).  With
:func:`write_external` the spool *is* the external data file: the ``.onnx`` file holds
the graph and each tensor's ``location``/``offset``/``length``.  Either way no more than
one weight is in memory at once.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

#: Offsets of tensors in the spool are multiples of this (page-aligned for mmap).
ALIGNMENT = 4096
_CHUNK = 1 << 24
#: Tensors smaller than this stay in the ``.onnx`` file when the rest goes to external
#: data (shape operands must be readable by shape inference).
INLINE_BYTES = 1024


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload_length: int) -> bytes:
    """The tag and length of length-delimited field ``number``."""
    return _varint((number << 3) | 2) + _varint(payload_length)


class TensorStore:
    """Initializers spooled to a file in ``folder`` as they are made."""

    def __init__(self, folder: str):
        self.folder = folder
        handle, self.path = tempfile.mkstemp(prefix=".cnnkit-export.", suffix=".data",
                                             dir=folder)
        self.file = os.fdopen(handle, "w+b")
        self.entries: list = []   # (name, data_type, dims, offset, length)
        self.total = 0

    def add(self, name: str, array: np.ndarray) -> None:
        """Append ``array``'s bytes (little-endian, C order)."""
        from onnx import helper
        array = np.asarray(array)
        if not array.flags.c_contiguous:   # (ascontiguousarray makes 0-d arrays 1-d)
            array = np.ascontiguousarray(array)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        pad = -self.total % ALIGNMENT
        if pad:
            self.file.write(b"\0" * pad)
            self.total += pad
        data = memoryview(array).cast("B")
        self.file.write(data)
        self.entries.append((name, helper.np_dtype_to_tensor_dtype(array.dtype),
                             tuple(array.shape), self.total, array.nbytes))
        self.total += array.nbytes

    @property
    def data_bytes(self) -> int:
        """Bytes of tensor data held."""
        return sum(entry[4] for entry in self.entries)

    def close(self) -> None:
        """Close and delete the spool (unless it was moved away)."""
        self.file.close()
        if os.path.exists(self.path):
            os.unlink(self.path)

    def _copy(self, out, offset: int, length: int) -> None:
        self.file.seek(offset)
        while length:
            block = self.file.read(min(length, _CHUNK))
            if not block:
                raise OSError("the spool file is shorter than recorded")
            out.write(block)
            length -= len(block)

    def tensor_header(self, entry, external: str = ""):
        """A ``TensorProto`` of ``entry`` without data (or pointing at ``external``)."""
        from onnx import TensorProto
        name, data_type, dims, offset, length = entry
        tensor = TensorProto(name=name, data_type=data_type, dims=list(dims))
        if external:
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", external), ("offset", str(offset)),
                               ("length", str(length))):
                item = tensor.external_data.add()
                item.key, item.value = key, value
        return tensor


def serialized_size(model, store: TensorStore) -> int:
    """Bytes :func:`write_inline` writes for ``model`` with ``store``'s tensors."""
    graph_len = model.graph.ByteSize()
    for entry in store.entries:
        head = store.tensor_header(entry).ByteSize()
        body = head + len(_field(9, entry[4])) + entry[4]
        graph_len += len(_field(5, body)) + body
    rest = model.ByteSize() - model.graph.ByteSize() - len(_field(7, model.graph.ByteSize()))
    return rest + len(_field(7, graph_len)) + graph_len


def write_inline(model, store: TensorStore, path: str) -> None:
    """Write ``model`` (graph without initializers) with ``store``'s tensors inline."""
    graph_bytes = model.graph.SerializeToString()
    heads = []
    graph_len = len(graph_bytes)
    for entry in store.entries:
        head = store.tensor_header(entry).SerializeToString()
        body = len(head) + len(_field(9, entry[4])) + entry[4]
        heads.append((head, body))
        graph_len += len(_field(5, body)) + body
    outer = model.__class__()
    outer.CopyFrom(model)
    outer.ClearField("graph")
    store.file.flush()
    with open(path, "wb") as out:
        out.write(outer.SerializeToString())
        out.write(_field(7, graph_len))
        out.write(graph_bytes)
        for entry, (head, body) in zip(store.entries, heads):
            out.write(_field(5, body))
            out.write(head)
            out.write(_field(9, entry[4]))
            store._copy(out, entry[3], entry[4])  # pylint: disable=protected-access
        out.flush()
        os.fsync(out.fileno())


def write_external(model, store: TensorStore, path: str, data_path: str) -> None:
    """Write ``model`` to ``path`` with its tensors pointing into ``data_path`` (which
    the spool is moved to; ``location`` is its name, relative to ``path``'s folder)."""
    location = os.path.basename(data_path)
    graph = model.graph
    store.file.flush()
    for entry in store.entries:
        if entry[4] < INLINE_BYTES:   # shapes and scalars stay in the graph
            tensor = store.tensor_header(entry)
            store.file.seek(entry[3])
            tensor.raw_data = store.file.read(entry[4])
            graph.initializer.append(tensor)
        else:
            graph.initializer.append(store.tensor_header(entry, location))
    store.file.flush()
    os.fsync(store.file.fileno())
    shutil.move(store.path, data_path)
    with open(path, "wb") as out:
        out.write(model.SerializeToString())
    del graph.initializer[:]
