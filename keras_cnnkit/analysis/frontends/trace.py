"""Subclassed Keras models → graph IR, by tracing them through ONNX.

A subclassed ``keras.Model`` has no layer graph to walk: its ``call`` is Python.  This
frontend traces ``call`` once with TensorFlow (``tf.function`` at a given input shape,
``training=False``), converts the trace with tf2onnx (:func:`keras_cnnkit.onnx_convert.to_onnx`)
and reads the ONNX graph with :mod:`~keras_cnnkit.analysis.frontends.onnx_frontend`.  The
rules then apply unchanged.  Nodes keep their ONNX names; ``Node.layer`` is the Keras
layer whose name scope produced the op where one can be found (``"conv1"``), else the
ONNX node name.

Limitations (what a trace cannot see):

* it needs the input shape (without the batch dimension): subclassed models carry none;
* Python control flow in ``call`` is taken once, at that shape and with
  ``training=False`` — branches not taken, dropout and other training-only ops are not in
  the graph;
* it runs on the TensorFlow backend with tf2onnx installed, and fails (with
  :class:`~keras_cnnkit.onnx_convert.ExportError`) on ops tf2onnx cannot convert;
* what the conversion folds is gone: a BatchNormalization right after a bias-free
  convolution is folded into it, so its parameters and BN-related findings are missing
  (see the ONNX frontend's module docstring).
"""
from __future__ import annotations

import re
from typing import Sequence

from keras_cnnkit.analysis.frontends.onnx_frontend import load_onnx_graph
from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.errors import CnnkitError

_SUFFIX_RE = re.compile(r"_\d+$")


class TraceError(CnnkitError, ValueError):
    """A model cannot be traced (no input shape given, not the TensorFlow backend)."""


def graph_from_subclassed(model, input_shape: Sequence) -> Graph:
    """The IR graph of a (subclassed) Keras model traced at ``input_shape``.

    Args:
        model: any ``keras.Model`` on the TensorFlow backend (Functional and Sequential
            models work too, though :func:`~keras_cnnkit.analysis.frontends.keras_live.
            graph_from_keras` is exact for them).
        input_shape: the input shape without the batch dimension, e.g. ``(300, 16)``; a
            list of shapes for several inputs.

    Raises:
        TraceError: no input shape was given, or Keras runs on another backend.
        keras_cnnkit.onnx_convert.ExportError: the model cannot be traced or converted.
    """
    if input_shape is None:
        raise TraceError(f"model {getattr(model, 'name', model)!r} is subclassed: tracing "
                         "it needs input_shape (without the batch dimension)")
    import keras

    if keras.backend.backend() != "tensorflow":
        raise TraceError(f"tracing a subclassed model needs the TensorFlow backend "
                         f"(tf2onnx), not {keras.backend.backend()!r}")
    from keras_cnnkit.onnx_convert import to_onnx

    proto, _ = to_onnx(model, input_shape=input_shape)
    graph = load_onnx_graph(proto)
    graph.name = getattr(model, "name", graph.name)
    graph.source = f"<keras model {graph.name!r} traced through ONNX>"
    graph.frontend = "trace"
    names = _layer_names(model)
    for node in graph:
        layer = _layer_of(node.layer or node.name, names, graph.name)
        if layer:
            node.layer = layer
    return graph


def _layer_names(model) -> set:
    """Names of every layer reachable from ``model`` (nested layers included)."""
    names = set()
    stack = list(getattr(model, "_flatten_layers", lambda **_: [])(include_self=False,
                                                                   recursive=True))
    for layer in stack:
        names.add(layer.name)
    return names


def _layer_of(op_name: str, names: set, model_name: str) -> str:
    """The deepest Keras layer named in ``op_name``'s name scope
    (``"char_cnn_1/conv1_1/convolution"`` → ``"conv1"``), or ``""``."""
    found = ""
    for part in op_name.split("/")[:-1]:
        for candidate in (part, _SUFFIX_RE.sub("", part)):
            if candidate in names and candidate != model_name:
                found = candidate
                break
    return found
