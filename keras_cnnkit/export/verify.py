"""Verification of an exported file: onnxruntime against Keras, on any Keras backend.

:func:`random_feeds` draws seeded inputs for an ONNX model's inputs (uniform in
``[-1, 1)``, batch 2, unknown dims 32: as the tf2onnx path does);
:func:`compare` runs the file in onnxruntime first (without its memory arena and memory
patterns; the session is freed before Keras starts, so the two never hold the weights at
once), then Keras on whatever backend it is set to, and returns the largest absolute
difference.

Keras' side (:func:`run_keras`) runs the model layer by layer when it can
(:func:`keras_cnnkit.export.layerwise.run_keras_layerwise`: each layer built from its
config in safe mode, its stored weights loaded, called on the activations, dropped: the
memory of the largest layer, not of the whole model); a model that cannot be walked so
(a tf.keras file, a call with a constant argument, variables that do not match the stored
weights one for one) is loaded whole in safe mode
(:func:`keras_cnnkit.io_guard.load_keras_model`) and called, as before.  Either way the
real Keras layers compute the reference.
"""
from __future__ import annotations

import gc

import numpy as np

from keras_cnnkit.errors import CnnkitError, one_line
from keras_cnnkit.io_guard import load_keras_model
from keras_cnnkit.onnx_convert import verification_inputs

class VerificationError(CnnkitError, ValueError):
    """onnxruntime and Keras disagree, or one of them cannot run the model."""


def random_feeds(proto, seed: int = 0) -> dict:
    """Seeded random inputs for ``proto``'s graph inputs, by name (those of the tf2onnx
    path: :func:`keras_cnnkit.onnx_convert.verification_inputs`)."""
    return verification_inputs(proto, seed)



def run_onnx(onnx_file: str, feeds: dict) -> list:
    """onnxruntime's outputs of ``onnx_file`` on ``feeds`` (CPU)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise VerificationError("verifying needs onnxruntime (pip install "
                                "'keras-cnnkit[export]'); pass --no-verify to skip it") \
            from None
    try:
        session = ort.InferenceSession(onnx_file, session_options(ort),
                                       providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, {n: feeds[n] for n in names})
    except Exception as exc:  # onnxruntime raises its own classes
        raise VerificationError(f"onnxruntime cannot run the exported model: "
                                f"{one_line(exc)}") from exc
    del session
    gc.collect()
    return got


def session_options(ort):
    """onnxruntime's options for one verification run: no CPU memory arena, no memory
    patterns, no pre-packed weights (each would keep memory it no longer needs; one run
    gains nothing from them).  VGG16: 1.00 GB peak instead of 1.07."""
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.disable_prepacking", "1")
    return options


#: How :func:`run_keras` computed Keras' outputs: ``"layerwise"`` or ``"whole model"``.
LAYERWISE, WHOLE_MODEL = "layerwise", "whole model"


def run_keras(model_path: str, inputs: list, layerwise: bool = True) -> tuple:
    """``(outputs, how)``: the Keras model's outputs on ``inputs`` (numpy arrays, NHWC),
    any backend, computed layer by layer where the model allows it (``how`` is
    :data:`LAYERWISE`), else by the model loaded whole (:data:`WHOLE_MODEL`)."""
    try:
        import keras  # noqa: F401  pylint: disable=unused-import
    except ImportError as exc:   # Keras without a backend (TensorFlow, JAX, PyTorch)
        raise VerificationError(f"verifying needs Keras with an installed backend "
                                f"({one_line(exc)}); pass --no-verify to skip it") from None
    if layerwise:
        from keras_cnnkit.export.layerwise import CannotStream, run_keras_layerwise
        try:
            return run_keras_layerwise(model_path, inputs), LAYERWISE
        except CannotStream:
            gc.collect()     # what the walk built is dropped before the model loads
    return run_keras_whole(model_path, inputs), WHOLE_MODEL


def run_keras_whole(model_path: str, inputs: list) -> list:
    """The outputs of the Keras model loaded whole in safe mode, on ``inputs``."""
    import keras
    model = load_keras_model(model_path)
    outs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
    if isinstance(outs, dict):
        outs = list(outs.values())
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    result = [np.asarray(keras.ops.convert_to_numpy(o)) for o in outs]
    del model
    gc.collect()
    return result


def compare(onnx_file: str, model_path: str, feeds: dict, tolerance: float,
            layerwise: bool = True) -> tuple:
    """``(max |onnxruntime − Keras|, max |Keras|, how)``, ``how`` as :func:`run_keras`
    says; raises :class:`VerificationError` when the difference is over
    ``tolerance × max(1, max |Keras|)``."""
    got = run_onnx(onnx_file, feeds)
    want, how = run_keras(model_path, list(feeds.values()), layerwise)
    if len(want) != len(got):
        raise VerificationError(f"the ONNX model has {len(got)} outputs, Keras {len(want)}")
    diff = scale = 0.0
    for a, b in zip(got, want):
        if a.shape != b.shape:
            raise VerificationError(f"output shape {a.shape} from onnxruntime, {b.shape} "
                                    "from Keras")
        if a.size:
            diff = max(diff, float(np.max(np.abs(a.astype(np.float64) - b))))
            scale = max(scale, float(np.max(np.abs(b))))
    if not diff <= tolerance * max(1.0, scale):
        raise VerificationError(f"onnxruntime and Keras disagree: max |diff| = {diff:.3g} > "
                                f"{tolerance:g} × max(1, {scale:.3g})")
    return diff, scale, how
