"""The IR exporter: a ``.keras``/``.h5`` file → ONNX, with no Keras model built.

:func:`export_file` reads the model statically (:func:`~keras_cnnkit.analysis.frontends.
static_file.load_graph`, within the budgets), writes its ONNX form with
:mod:`.onnx_emit`, taking each stored weight from the file when its node is written
(:mod:`~keras_cnnkit.analysis.frontends.stored_weights`), and writes the file through
:mod:`keras_cnnkit.io_guard` (a temporary file moved into place; never over an input).
Each initializer is spooled to disk when made (:mod:`.onnx_write`), so one weight at a
time is in memory.  A model whose serialised form would pass protobuf's 2 GiB limit is
written with its weights in one external data file, ``OUT.onnx.data`` next to
``OUT.onnx``, checked and moved into place the same way.

Verification (:mod:`.verify`) runs on the temporary file before it is moved into place,
so a model that fails it leaves nothing behind.  Neither Keras nor TensorFlow is imported
unless verification is asked for.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Optional, Sequence

from keras_cnnkit.analysis.frontends.containers import read_model_file
from keras_cnnkit.analysis.frontends.library_model import library_of
from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras
from keras_cnnkit.analysis.frontends.stored_weights import open_stored_weights
from keras_cnnkit.analysis.ir import Graph, Node
from keras_cnnkit.errors import CnnkitError, ModelFileError
from keras_cnnkit.export.onnx_emit import DEFAULT_OPSET, NotEmittable, check_emittable, emit_onnx
from keras_cnnkit.export.onnx_write import (TensorStore, serialized_size, write_external,
                                            write_inline)
from keras_cnnkit.export.weights import read_weight
from keras_cnnkit.io_guard import (OutputFileError, check_output_path, require_regular_file,
                                   write_atomic)

#: Serialised size above which the weights go to an external data file (protobuf's limit
#: on one message is 2 GiB; the margin covers the graph itself).
EXTERNAL_DATA_BYTES = 2 ** 31 - 2 ** 24


class IRExportError(CnnkitError, ValueError):
    """The IR export failed (a bad path, a failed verification)."""


@dataclasses.dataclass(frozen=True)
class IRExportResult:
    """What :func:`export_file` did.

    Attributes:
        path: the ``.onnx`` file written.
        data_path: the external data file, or ``None`` when the weights are inline.
        opset: the ONNX opset.
        size_bytes: bytes written (both files).
        nodes: ONNX nodes in the graph.
        max_abs_diff / scale: verification's largest |onnxruntime − Keras| and largest
            |Keras output| (``None`` when not verified).
        group_convs: ``Conv`` nodes with ``group > 1``.
        verified_by: how Keras' side of the verification ran: ``"layerwise"`` (layer
            by layer, bounded memory) or ``"whole model"`` (``None`` when not verified).
    """

    path: str
    data_path: Optional[str]
    opset: int
    size_bytes: int
    nodes: int
    max_abs_diff: Optional[float] = None
    scale: Optional[float] = None
    group_convs: int = 0
    verified_by: Optional[str] = None


def read_ir(path: str) -> Graph:
    """The model file's graph (read by :func:`~keras_cnnkit.analysis.frontends.keras_gate.
    check_before_keras`: within the budgets and ``max-params``), refusing what the IR
    exporter cannot write (an opaque node, a kind with no ONNX form, a library model
    built by its library).

    Raises:
        ModelFileError: the file is unreadable or hostile.
        NotEmittable: the graph has a node with no ONNX form.
    """
    require_regular_file(path)
    try:
        model_file = read_model_file(path)
        library = library_of(model_file.config)
    except CnnkitError:
        raise
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # a reader's bug on a bad file is still a bad file, in one line
        raise ModelFileError(path, f"cannot be analysed: unexpected {type(exc).__name__}: "
                                   f"{exc} (please report it)") from exc
    if library is not None:
        raise NotEmittable(Node(name=str(model_file.config.get("class_name", "model")),
                                op="opaque", source_class=library),
                           f"a {library} model is built by its library")
    # the gate before Keras: budgets, references outside the file, max-params (the IR
    # exporter reads every weight too)
    graph = check_before_keras(path, "cnnkit-export")
    check_emittable(graph)
    return graph


def _weight_lookup(graph: Graph, stored: dict, path: str = ""):
    """``weights(node)`` for :func:`emit_onnx`: the stored arrays of the node's layer."""

    def weights(node: Node):
        name = node.attrs.get("shares_weights_with", node.name)
        candidates = [name]
        if node.source_class.startswith("SeparableConv") and "/" in name:
            candidates.append(name.rsplit("/", 1)[0])   # "sep/depthwise" → "sep"
        for key in candidates:
            if key in stored:
                if any(dataset.dtype.kind not in "fiu" for dataset in stored[key]):
                    raise NotEmittable(node, "a stored weight is not numeric")
                try:
                    return [read_weight(dataset) for dataset in stored[key]]
                except (OSError, RuntimeError) as exc:   # h5py on a damaged dataset
                    raise ModelFileError(path, f"weights of {key!r}: damaged or truncated "
                                               f"HDF5 ({exc})") from None
        return None

    del graph
    return weights


def _check(path, inputs: Sequence, force: bool) -> str:
    try:
        return check_output_path(path, inputs, force=force)
    except OutputFileError as exc:
        raise IRExportError(str(exc)) from None


def export_file(model_path, out_path, opset: int = DEFAULT_OPSET, verify: bool = True,
                tolerance: float = 1e-4, force: bool = False, dynamic_spatial: bool = False,
                graph: Optional[Graph] = None,
                external_data_bytes: int = EXTERNAL_DATA_BYTES,
                layerwise: bool = True) -> IRExportResult:
    """Export model file ``model_path`` to ONNX file ``out_path`` through the IR.

    Args:
        model_path: a ``.keras`` or legacy ``.h5`` model file.
        out_path: the ``.onnx`` file to write (never ``model_path``).
        opset: the ONNX opset.
        verify: compare onnxruntime with Keras (any backend) before moving into place.
        tolerance: allowed |diff| relative to ``max(1, max |Keras output|)``.
        force: replace an existing output.
        dynamic_spatial: symbolic spatial input dims.
        graph: the graph of :func:`read_ir`, when already read.
        external_data_bytes: serialised size above which weights go to ``OUT.onnx.data``.
        layerwise: verify against Keras layer by layer where the model allows it
            (:mod:`.layerwise`; else, or with ``False``, the model loaded whole).

    Raises:
        NotEmittable: the model has a node with no ONNX form.
        ModelFileError, IRExportError: bad input or output, failed verification.
    """
    model_path = os.fspath(model_path)
    inputs = [model_path]
    out = _check(out_path, inputs, force)
    try:
        import onnx  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        raise IRExportError("the IR exporter needs the 'onnx' package (pip install "
                            "'keras-cnnkit[export]')") from None
    graph = read_ir(model_path) if graph is None else graph
    dynamic = dynamic_spatial or any("unknown size" in note for note in graph.notes)
    try:
        store = TensorStore(os.path.dirname(os.path.abspath(out)))
    except OSError as exc:
        raise IRExportError(f"{out}: cannot write: {exc.strerror or exc}") from None
    try:
        with open_stored_weights(model_path) as stored:
            proto = emit_onnx(graph, _weight_lookup(graph, stored, model_path), store,
                              opset=opset, dynamic_spatial=dynamic)
        checked: dict = {}
        feeds = None
        if verify:
            from keras_cnnkit.export.verify import random_feeds
            from keras_cnnkit.onnx_convert import VerificationInputError
            try:
                feeds = random_feeds(proto)
            except VerificationInputError as exc:   # its declared input is too large to draw
                raise ModelFileError(model_path, str(exc)) from None

        def check_model(onnx_file: str) -> None:
            if verify:
                from keras_cnnkit.export.verify import compare
                checked["diff"], checked["scale"], checked["how"] = compare(
                    onnx_file, model_path, feeds, tolerance, layerwise)

        nodes = len(proto.graph.node)
        groups = sum(1 for n in proto.graph.node if n.op_type == "Conv"
                     and any(a.name == "group" and a.i > 1 for a in n.attribute))
        if serialized_size(proto, store) > external_data_bytes:
            data_path, size = _write_external(proto, store, out, inputs, force, check_model)
        else:
            def write(tmp: str) -> None:
                write_inline(proto, store, tmp)
                store.close()
                check_model(tmp)

            try:
                write_atomic(out, write, inputs, force=force)
            except OutputFileError as exc:
                raise IRExportError(str(exc)) from None
            data_path, size = None, os.path.getsize(out)
    except OSError as exc:
        raise IRExportError(f"{out}: cannot write: {exc.strerror or exc}") from None
    finally:
        store.close()
    return IRExportResult(path=os.path.abspath(out), data_path=data_path, opset=opset,
                          size_bytes=size, nodes=nodes, max_abs_diff=checked.get("diff"),
                          scale=checked.get("scale"), group_convs=groups,
                          verified_by=checked.get("how"))


def _write_external(proto, store: TensorStore, out: str, inputs: Sequence, force: bool,
                    check_model) -> tuple:
    """Write ``OUT.onnx`` + ``OUT.onnx.data`` (both checked, staged in a temporary
    folder beside them, verified, then moved into place)."""
    data_name = os.path.basename(out) + ".data"
    data_path = os.path.join(os.path.dirname(os.path.abspath(out)), data_name)
    _check(data_path, inputs, force)
    folder = tempfile.mkdtemp(prefix=".cnnkit-export.", dir=os.path.dirname(data_path))
    try:
        staged = os.path.join(folder, os.path.basename(out))
        staged_data = os.path.join(folder, data_name)
        write_external(proto, store, staged, staged_data)
        check_model(staged)
        size = os.path.getsize(staged) + os.path.getsize(staged_data)
        try:
            write_atomic(data_path, lambda tmp: os.replace(staged_data, tmp), inputs,
                         force=force)
            write_atomic(out, lambda tmp: os.replace(staged, tmp), inputs, force=force)
        except OutputFileError as exc:
            raise IRExportError(str(exc)) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return os.path.abspath(data_path), size
