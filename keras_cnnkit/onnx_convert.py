"""ONNX export of Keras models through tf2onnx, verified against Keras with onnxruntime.

``export_onnx(model, path)`` converts a built Functional, Sequential (or, given
``input_shape``, subclassed) Keras 3 model on the TensorFlow backend:

* **Tracing.** The model is traced as ``tf.function(lambda *x: model(*x, training=False))``
  with an explicit input signature (batch dimension dynamic) and converted with
  ``tf2onnx.convert.from_function``.  This sidesteps ``tf2onnx.convert.from_keras``, which
  reads ``model.output_names`` — an attribute Keras 3 ``Sequential`` models no longer have
  (tensorflow-onnx issue 2448).  The ONNX outputs are named after the model's output
  layers (``"output_0"``... where a model has none).
* **Grouped convolutions.** ``Conv1D``/``Conv2D`` with ``groups > 1`` do not convert:
  TensorFlow runs them through a compiled function tf2onnx cannot read (tensorflow-onnx
  issue 2099).  Before tracing, the model is cloned with each such layer (and each
  :class:`~keras_cnnkit.layers.GroupConv` set to ``implementation="native"``) replaced by
  an equivalent ``GroupConv(implementation="split")`` — one convolution per group, then a
  concatenation — carrying the same weights.  Every other layer is reused as is.
* **Verification.** The ONNX model runs in onnxruntime on seeded random input (uniform
  in ``[-1, 1)``; integer inputs in ``{0, 1}``; unknown non-batch dimensions set to
  :data:`VERIFY_SIZE`) beside the Keras model; the largest absolute difference over all
  outputs is reported.  It must be at most ``tolerance × max(1, max |Keras output|)``,
  else :class:`ExportError` is raised and nothing is written.
* **Writing.** :func:`keras_cnnkit.io_guard.write_atomic`: a temporary file in the
  target directory, then moved into place, with the umask's permissions.  An existing
  file is replaced only with ``overwrite=True``, and never one of ``inputs``.

This is the library half of ``cnnkit-export`` (:mod:`keras_cnnkit.export`, the command
line) and what the trace frontend (:mod:`keras_cnnkit.analysis.frontends.trace`) uses
to lint subclassed models.  TensorFlow, tf2onnx, onnx and onnxruntime are imported only
when a function that needs them runs.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Optional, Sequence

from keras_cnnkit.errors import CnnkitError, one_line
from keras_cnnkit.io_guard import (OutputFileError, check_output_path, functional_graph,
                                   write_atomic)

#: ONNX opset used unless told otherwise (tf2onnx 1.16+ and onnxruntime 1.17+ support it).
DEFAULT_OPSET = 17

#: Relative tolerance of the onnxruntime-vs-Keras check (see the module docstring).
DEFAULT_TOLERANCE = 1e-4

#: Size given to unknown non-batch input dimensions when verifying.
VERIFY_SIZE = 32

#: Batch size of the verification input.
VERIFY_BATCH = 2

#: Protobuf's limit on one serialised message; larger models cannot be written inline.
_PROTOBUF_LIMIT = 2 ** 31 - 1


class ExportError(CnnkitError, ValueError):
    """A model cannot be exported (conversion failed, verification failed, bad path)."""


class VerificationInputError(ExportError):
    """The model's declared inputs are too large to draw a verification input for."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` did.

    Attributes:
        path: the file written (``None`` for :func:`to_onnx`'s in-memory result).
        opset: the ONNX opset of the model.
        max_abs_diff: largest |onnxruntime − Keras| over all outputs on the verification
            input; ``None`` when not verified.
        tolerance: the relative tolerance it was checked against.
        input_names, output_names: the ONNX graph's input and output names.
        split_group_convs: names of the layers exported in the split (per-group) form.
        size_bytes: size of the serialised ONNX model.
    """

    path: Optional[str]
    opset: int
    max_abs_diff: Optional[float]
    tolerance: float
    input_names: tuple
    output_names: tuple
    split_group_convs: tuple = ()
    size_bytes: int = 0


# --- grouped convolutions → split form ------------------------------------------------

def _needs_split(layer) -> bool:
    """True for a layer tf2onnx cannot convert as is: a grouped Keras conv, or a
    ``GroupConv`` running its native (one grouped conv) implementation."""
    from keras_cnnkit.layers.group_conv import GroupConv, resolve_implementation
    if isinstance(layer, GroupConv):
        return layer.groups > 1 and resolve_implementation(layer.implementation,
                                                           "tensorflow") == "native"
    return (type(layer).__name__ in ("Conv1D", "Conv2D", "Conv3D")
            and getattr(layer, "groups", 1) > 1)


def _walk_layers(model) -> list:
    """Every layer of ``model``, nested models' layers included (depth first)."""
    import keras
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if isinstance(layer, keras.Model):
            out.extend(_walk_layers(layer))
    return out


def _split_replacement(layer):
    """An equivalent of grouped conv ``layer`` in split form, with its weights."""
    import keras

    from keras_cnnkit.layers.group_conv import GroupConv
    if type(layer).__name__ == "Conv3D" or len(layer.kernel.shape) not in (3, 4):
        raise ExportError(f"layer {layer.name!r}: grouped 3D convolutions cannot be "
                          "exported to ONNX (tensorflow-onnx issue 2099)")
    padding = getattr(layer, "padding", "valid")
    if padding not in ("same", "valid"):
        raise ExportError(f"layer {layer.name!r}: grouped convolution with padding "
                          f"{padding!r} has no split form")
    data_format = getattr(layer, "data_format", None) or keras.config.image_data_format()
    split = GroupConv(layer.filters, kernel_size=layer.kernel_size, strides=layer.strides,
                      groups=layer.groups, padding=padding, dilation_rate=layer.dilation_rate,
                      use_bias=layer.use_bias, implementation="split",
                      data_format=data_format, name=layer.name, dtype=layer.dtype_policy)
    rank = len(layer.kernel.shape) - 2
    channels = layer.kernel.shape[-2] * layer.groups
    spatial = (None,) * rank
    shape = spatial + (channels,) if data_format == "channels_last" else (channels,) + spatial
    split.build((None,) + shape)
    split.set_weights(layer.get_weights())
    activation = getattr(layer, "activation", None)
    if activation is None or activation is keras.activations.linear:
        return split
    return keras.Sequential([keras.Input(shape), split, keras.layers.Activation(activation)],
                            name=f"{layer.name}_split")


def split_group_convs(model) -> tuple:
    """``(model', names)``: ``model`` with its grouped convolutions in split form.

    ``model'`` is ``model`` itself when it has none; otherwise a clone (Functional and
    Sequential, nested models included) that reuses every other layer object, so weights
    are shared, not copied.  ``names`` lists the replaced layers.
    """
    import keras
    targets = [layer for layer in _walk_layers(model) if _needs_split(layer)]
    if not targets:
        return model, ()
    if not (isinstance(model, keras.Sequential) or functional_graph(model) is not None):
        raise ExportError("grouped convolutions in a subclassed model cannot be rewritten "
                          "to their exportable split form; use "
                          "keras_cnnkit.layers.GroupConv(implementation='split')")

    def clone(layer):
        return _split_replacement(layer) if _needs_split(layer) else layer

    cloned = keras.models.clone_model(model, clone_function=clone, recursive=True)
    return cloned, tuple(layer.name for layer in targets)


# --- tracing and conversion ------------------------------------------------------------

_TF_NAME_RE = re.compile(r"[^A-Za-z0-9_.\-/]")


def _clean_name(name: str, fallback: str) -> str:
    """A name TensorFlow accepts for a tensor spec (``[A-Za-z0-9.][A-Za-z0-9_.\\-/]*``)."""
    name = _TF_NAME_RE.sub("_", str(name or ""))
    if not name or not re.match(r"[A-Za-z0-9.]", name[0]):
        name = f"{fallback}{'_' + name if name else ''}"
    return name


def _unique(names: Sequence[str]) -> list:
    seen: dict = {}
    out = []
    for name in names:
        n = seen.get(name, 0)
        seen[name] = n + 1
        out.append(name if n == 0 else f"{name}_{n}")
    return out


def _input_specs(model, input_shape) -> list:
    """``[(name, shape incl. batch None, dtype)]`` of the model's inputs."""
    if input_shape is not None:
        shapes = input_shape if input_shape and isinstance(input_shape[0], (list, tuple)) \
            else [input_shape]
        specs = [(f"input_{i}" if len(shapes) > 1 else "input", (None,) + tuple(s), "float32")
                 for i, s in enumerate(shapes)]
    else:
        inputs = getattr(model, "inputs", None) if _has_graph(model) else None
        if not inputs:
            raise ExportError("the model has no known inputs (a subclassed or unbuilt "
                              "model): pass input_shape")
        specs = []
        for i, tensor in enumerate(inputs):
            history = getattr(tensor, "_keras_history", None)
            name = history.operation.name if history is not None else f"input_{i}"
            specs.append((name, tuple(tensor.shape), str(tensor.dtype)))
    names = _unique([_clean_name(name, f"input_{i}") for i, (name, _, _) in enumerate(specs)])
    return [(n, (None,) + tuple(shape[1:]), dtype) for n, (_, shape, dtype) in zip(names, specs)]


def _has_graph(model) -> bool:
    """True for models with symbolic inputs (Functional, built Sequential)."""
    try:
        return bool(getattr(model, "inputs", None))
    except (AttributeError, ValueError):
        return False


def _output_names(model, count: int) -> list:
    """Names for the model's outputs: the producing layers' names where known."""
    names = []
    outputs = getattr(model, "outputs", None) if _has_graph(model) else None
    for i in range(count):
        name = None
        if outputs and len(outputs) == count:
            history = getattr(outputs[i], "_keras_history", None)
            name = history.operation.name if history is not None else None
        names.append(_clean_name(name, f"output_{i}") if name else f"output_{i}")
    return _unique(names)


def _call(model, args):
    return model(args[0] if len(args) == 1 else list(args), training=False)


def to_onnx(model, opset: int = DEFAULT_OPSET, input_shape=None) -> tuple:
    """Convert ``model`` to an in-memory ONNX model.

    Args:
        model: a Keras 3 model on the TensorFlow backend.
        opset: the ONNX opset.
        input_shape: the input shape without the batch dimension (a list of shapes for
            several inputs); needed for subclassed models, optional otherwise.

    Returns:
        ``(onnx.ModelProto, ExportResult)`` — the result has ``path=None`` and is not
        verified.

    Raises:
        ExportError: the model cannot be traced or converted.
    """
    import tensorflow as tf
    import tf2onnx  # noqa: F401  pylint: disable=unused-import

    _quiet_tf2onnx()
    model, split = split_group_convs(model)
    specs = _input_specs(model, input_shape)
    signature = tuple(tf.TensorSpec(shape, tf.as_dtype(dtype), name=name)
                      for name, shape, dtype in specs)
    if _has_graph(model):
        count = len(model.outputs)
    else:
        try:
            count = len(tf.nest.flatten(tf.function(lambda *xs: _call(model, xs))
                                        .get_concrete_function(*signature).structured_outputs))
        except Exception as exc:  # any tracing failure is the model's, in one line
            raise ExportError(f"cannot trace the model: {one_line(exc)}") from exc
    out_names = _output_names(model, count)

    def named(*xs):
        outs = tf.nest.flatten(_call(model, xs))
        return {name: tf.identity(t, name=name) for name, t in zip(out_names, outs)}

    try:
        proto, _ = tf2onnx.convert.from_function(tf.function(named), input_signature=signature,
                                                 opset=opset)
    except Exception as exc:  # tf2onnx raises many types; all mean "cannot convert"
        raise ExportError(f"tf2onnx cannot convert the model: {one_line(exc)}") from exc
    _keep_output_order(proto, out_names)
    return proto, ExportResult(
        path=None, opset=opset, max_abs_diff=None, tolerance=DEFAULT_TOLERANCE,
        input_names=tuple(i.name for i in proto.graph.input),
        output_names=tuple(o.name for o in proto.graph.output),
        split_group_convs=split, size_bytes=proto.ByteSize())


def _keep_output_order(proto, names: list) -> None:
    """Put the graph's outputs in the Keras model's order.

    tf2onnx writes the outputs of a function returning a dict in sorted key order; a
    multi-output model (GoogLeNet with auxiliary heads) must keep its own order.
    """
    rank = {name: i for i, name in enumerate(names)}
    outputs = sorted(proto.graph.output, key=lambda o: rank.get(o.name, len(rank)))
    del proto.graph.output[:]
    proto.graph.output.extend(outputs)


def _quiet_tf2onnx() -> None:
    import logging
    for name in ("tf2onnx", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)



# --- verification ----------------------------------------------------------------------

def verification_inputs(proto, seed: int = 0) -> dict:
    """Seeded random inputs for the ONNX model's inputs (see the module docstring)."""
    import numpy as np
    from onnx import helper

    from keras_cnnkit.budgets import current

    rng = np.random.default_rng(seed)
    feeds, total = {}, 0
    limit = current().max_input_values
    for value in proto.graph.input:
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in tensor_type.shape.dim]
        shape = [VERIFY_BATCH if i == 0 else (d or VERIFY_SIZE) for i, d in enumerate(dims)]
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        # checked before anything is drawn: a declared 10⁹ × 10⁹ input is never allocated
        total += math.prod(shape[1:])
        if total > limit:
            raise VerificationInputError(
                f"verifying it would draw inputs of {total:,} values a sample (input "
                f"{value.name!r} of shape {shape}), over budget max-input-values "
                f"{limit:,}; raise it with --budget max-input-values=N, or export it with "
                "--no-verify")
        if np.issubdtype(dtype, np.integer):
            feeds[value.name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[value.name] = rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    return feeds


def max_abs_difference(proto, model, seed: int = 0) -> tuple:
    """``(max |onnxruntime − Keras|, max |Keras|)`` over all outputs on seeded input."""
    import numpy as np
    import onnxruntime as ort

    feeds = verification_inputs(proto, seed)
    try:
        session = ort.InferenceSession(proto.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        got = session.run(None, feeds)
    except Exception as exc:  # onnxruntime's errors are its own classes
        raise ExportError(f"onnxruntime cannot run the exported model: {one_line(exc)}") \
            from exc
    args = [feeds[i.name] for i in proto.graph.input]
    import tensorflow as tf
    want = [np.asarray(t) for t in tf.nest.flatten(_call(model, args))]
    if len(want) != len(got):
        raise ExportError(f"the ONNX model has {len(got)} outputs, Keras {len(want)}")
    diff = scale = 0.0
    for a, b in zip(got, want):
        if a.shape != b.shape:
            raise ExportError(f"output shape {a.shape} from onnxruntime, {b.shape} from Keras")
        if a.size:
            diff = max(diff, float(np.max(np.abs(a.astype(np.float64) - b))))
            scale = max(scale, float(np.max(np.abs(b))))
    return diff, scale


# --- writing ---------------------------------------------------------------------------

def _check_path(path, overwrite: bool, inputs: Sequence = ()) -> str:
    """:func:`~keras_cnnkit.io_guard.check_output_path`, failing with :class:`ExportError`."""
    try:
        return check_output_path(path, inputs, force=overwrite)
    except OutputFileError as exc:
        raise ExportError(str(exc)) from None


def export_onnx(model, path, opset: int = DEFAULT_OPSET, verify: bool = True,
                tolerance: float = DEFAULT_TOLERANCE, overwrite: bool = True,
                input_shape=None, inputs: Sequence = (), progress=None) -> ExportResult:
    """Export ``model`` to the ONNX file ``path`` (see the module docstring).

    Args:
        model: a built Keras 3 model (TensorFlow backend).
        path: the ``.onnx`` file to write.
        opset: the ONNX opset.
        verify: compare onnxruntime's outputs with Keras' before writing.
        tolerance: the largest allowed difference, relative to ``max(1, max |output|)``.
        overwrite: replace an existing file.
        input_shape: input shape(s) without the batch dimension (subclassed models).
        inputs: files the run read (the model file): ``path`` may be none of them.
        progress: a :class:`keras_cnnkit.progress.Progress` told of each stage
            (converting, verifying, writing), or ``None``.

    Returns:
        An :class:`ExportResult` with the measured ``max_abs_diff``.

    Raises:
        ExportError: conversion or verification failed, or ``path`` cannot be written.
    """
    _check_path(path, overwrite, inputs)
    step = progress.step if progress is not None else (lambda label: None)
    step("converting to ONNX (tf2onnx)")
    proto, result = to_onnx(model, opset=opset, input_shape=input_shape)
    diff = None
    if verify:
        step("verifying with onnxruntime")
        diff, scale = max_abs_difference(proto, model)
        if not diff <= tolerance * max(1.0, scale):
            raise ExportError(f"onnxruntime and Keras disagree: max |diff| = {diff:.3g} > "
                              f"{tolerance:g} × max(1, {scale:.3g})")
    data = proto.SerializeToString() if proto.ByteSize() <= _PROTOBUF_LIMIT else None
    if data is None:
        raise ExportError("the ONNX model is larger than protobuf's 2 GiB limit")
    step("writing")
    try:
        written = os.path.abspath(write_atomic(path, data, inputs, force=overwrite))
    except OutputFileError as exc:
        raise ExportError(str(exc)) from None
    return dataclasses.replace(result, path=written, max_abs_diff=diff, tolerance=tolerance,
                               size_bytes=len(data))
