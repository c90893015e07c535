"""The static file frontend: a ``.keras``, ``.h5`` or JSON model file → graph IR, safely.

Pipeline (one module per step)::

    containers   magic bytes → config JSON + weight shapes   (zip / HDF5 / JSON)
    keras_config Keras 2 or 3 config → normalised ModelSpec
    config_graph ModelSpec → Graph via the shared layer table (keras_layers)

What it guarantees:

* **Nothing from the file runs.**  Keras and TensorFlow are never imported; no class or
  function the config names is imported or looked up; Lambda bytecode is never
  unmarshalled; only JSON text and HDF5 metadata (attributes, dataset shapes) are read.
  A Lambda, an unregistered custom class, or any class from a module outside
  ``keras``/``keras_cnnkit``/``tf_keras`` (``{"module": "os", "class_name": "system"}``)
  becomes an opaque node, reported in the summary and by the ``opaque-layer`` rule.
* **Same IR as the live frontend** for the same model: node names, shapes, parameter
  counts (``Node.params`` holds the weight counts stored in the file).
* **Input size.**  Input dimensions the model leaves unknown (``None``) are taken as
  :data:`~.config_graph.DEFAULT_SPATIAL` (224) unless ``input_shape`` says otherwise,
  and the graph's notes say so.
* **Library models.**  A file whose top-level class is a keras-hub or kimm model
  (a Functional subclass saved as its constructor arguments, with no layer graph) is
  built with that installed library, under the conditions
  :mod:`.library_model` sets out (no module the file names is imported, nothing but
  Keras' dtype policies and initializers may be serialized in its config, safe mode on),
  and read by the live frontend; the notes name the library.  This is the only path
  that imports Keras.
* **Errors.**  Every unreadable or inconsistent file raises
  :class:`~keras_cnnkit.errors.ModelFileError` (path and a one-line problem).
"""
from __future__ import annotations

import os
import re
from typing import Optional, Sequence

from keras_cnnkit.analysis.frontends.budget_checks import check_model_spec
from keras_cnnkit.analysis.frontends.config_graph import (
    DEFAULT_SPATIAL,
    GraphBuildError,
    build_graph,
)
from keras_cnnkit.analysis.frontends.containers import (
    FORMAT_KERAS,
    FORMAT_ONNX,
    ModelFile,
    detect_format,
    name_lines,
    read_model_file,
)
from keras_cnnkit.analysis.frontends.library_model import (
    library_of,
    load_library_model,
    stored_values,
)
from keras_cnnkit.analysis.frontends.keras_config import (
    ConfigFormatError,
    ModelSpec,
    normalise_model,
)
from keras_cnnkit.analysis.input_shape import as_input_shape
from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.errors import MissingDependencyError, ModelFileError

__all__ = ["DEFAULT_SPATIAL", "load_graph", "read_model_file"]


def _snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case`` (the saver's group names)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _saver_paths(spec: ModelSpec, prefix: str, layer_prefix: str, out: dict) -> None:
    """Predict the ``.keras`` weights-file group of every layer (Keras' saver scheme).

    Functional models list all their layers under ``layers/``, Sequential ones all but
    the ``InputLayer``; each is keyed by its class name in snake case, ``_1``, ``_2``...
    for repeats.  Used for files written before Keras recorded layer names there.
    """
    used: dict = {}
    for layer in spec.layers:
        if spec.class_name == "Sequential" and layer.class_name == "InputLayer":
            continue
        key = _snake_case("Functional" if layer.class_name == "Model" else layer.class_name)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        path = f"{prefix}layers/{key}"
        out[path] = layer_prefix + layer.name
        if layer.model is not None:
            _saver_paths(layer.model, path + "/", layer_prefix + layer.name + "/", out)


def archive_layer_shapes(found: dict, spec: ModelSpec) -> dict:
    """``.keras`` weights by saver path (from :mod:`.h5_reader`) → by layer path.

    A group's layer path joins the ``name`` Keras (≥ 3.x) records on it and on its
    ancestors (``layers/sequential`` named ``subseq``, then ``layers/sequential/layers/
    conv2d`` named ``sc`` → ``"subseq/sc"``).  Older archives name nothing; their paths
    are predicted from the config.
    """
    if all(name is None for name, _ in found.values()):
        predicted: dict = {}
        _saver_paths(spec, "", "", predicted)
        return {predicted[p]: shapes for p, (_, shapes) in found.items()
                if p in predicted and shapes}
    out: dict = {}
    for path, (name, shapes) in found.items():
        if not path or name is None or not shapes:
            continue
        parts = path.split("/")
        names = [found[a][0] for a in ("/".join(parts[:i]) for i in range(1, len(parts)))
                 if a in found and found[a][0] is not None]
        out["/".join([*names, name])] = shapes
    return out


def _model_spec(model_file: ModelFile) -> ModelSpec:
    try:
        return normalise_model(model_file.config)
    except ConfigFormatError as exc:
        raise ModelFileError(model_file.path, str(exc)) from None
    except RecursionError:
        raise ModelFileError(model_file.path, "config nested too deeply") from None


def _load_onnx(path: str, input_shape: Optional[Sequence[int]]) -> Graph:
    """An ONNX file, through the ONNX frontend (needs the ``onnx`` package)."""
    try:
        import onnx  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        raise ModelFileError(path, str(MissingDependencyError("linting an ONNX model",
                                                              ["onnx"]))) from None
    from keras_cnnkit.analysis.frontends.onnx_frontend import load_onnx_graph
    return load_onnx_graph(path, input_shape=input_shape)


def load_graph(path, input_shape: Optional[Sequence[int]] = None) -> Graph:
    """Read a model file statically and return its graph IR.

    Args:
        path: a ``.keras`` archive, a legacy ``.h5``/``.hdf5`` model file, a JSON
            model config, or an ONNX model (read by the ONNX frontend), whatever its
            suffix.
        input_shape: batch-excluded dims for inputs the model leaves unknown: either the
            full shape (``(299, 299, 3)``) or one value per unknown dim (``(299, 299)``).
            Default: each unknown dim is :data:`DEFAULT_SPATIAL`.

    Raises:
        ModelFileError: the file is missing, unreadable, not a Keras model, or its
            config is inconsistent (the message names the problem in one line).
    """
    path = os.fspath(path)
    if detect_format(path) == FORMAT_ONNX:
        return _load_onnx(path, input_shape)
    model_file = read_model_file(path)
    library = library_of(model_file.config)
    if library is not None:
        stored = stored_values(model_file.weight_shapes) \
            if model_file.format == FORMAT_KERAS else None
        return load_library_model(path, library, model_file.config, stored, input_shape)
    spec = _model_spec(model_file)
    check_model_spec(path, spec)   # sizes and expanded layer count, before building
    weights = model_file.weight_shapes
    if model_file.format == FORMAT_KERAS and weights is not None:
        weights = archive_layer_shapes(weights, spec)
    shape = as_input_shape(input_shape)
    try:
        graph = build_graph(spec, source=path, weights=weights, input_shape=shape)
        graph.source_lines = name_lines(model_file.config_text)
        return graph
    except GraphBuildError as exc:
        raise ModelFileError(path, str(exc)) from None
    except RecursionError:
        raise ModelFileError(path, "config nested too deeply") from None
