"""Verification of an exported file: onnxruntime against Keras, on any Keras backend.

:func:`random_feeds` draws seeded inputs for an ONNX model's inputs (uniform in
``[-1, 1)``, batch 2, unknown dims 32: as the tf2onnx path does);
:func:`compare` runs the file in onnxruntime first (its session is freed before Keras
loads the model, so the two never hold the weights at once), then the Keras model
loaded in safe mode (:func:`keras_cnnkit.io_guard.load_keras_model`) on whatever
backend Keras is set to, and returns the largest absolute difference.
"""
from __future__ import annotations

import gc

import numpy as np

from keras_cnnkit.errors import CnnkitError
from keras_cnnkit.io_guard import load_keras_model
from keras_cnnkit.onnx_convert import verification_inputs

class VerificationError(CnnkitError, ValueError):
    """onnxruntime and Keras disagree, or one of them cannot run the model."""


def random_feeds(proto, seed: int = 0) -> dict:
    """Seeded random inputs for ``proto``'s graph inputs, by name (those of the tf2onnx
    path: :func:`keras_cnnkit.onnx_convert.verification_inputs`)."""
    return verification_inputs(proto, seed)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def run_onnx(onnx_file: str, feeds: dict) -> list:
    """onnxruntime's outputs of ``onnx_file`` on ``feeds`` (CPU)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise VerificationError("verifying needs onnxruntime (pip install "
                                "'keras-cnnkit[export]'); pass --no-verify to skip it") \
            from None
    try:
        session = ort.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(None, {n: feeds[n] for n in names})
    except Exception as exc:  # onnxruntime raises its own classes
        raise VerificationError(f"onnxruntime cannot run the exported model: "
                                f"{_one_line(exc)}") from exc
    del session
    gc.collect()
    return got


def run_keras(model_path: str, inputs: list) -> list:
    """The Keras model's outputs on ``inputs`` (numpy arrays, NHWC), any backend."""
    try:
        import keras
    except ImportError as exc:   # Keras without a backend (TensorFlow, JAX, PyTorch)
        raise VerificationError(f"verifying needs Keras with an installed backend "
                                f"({_one_line(exc)}); pass --no-verify to skip it") from None
    model = load_keras_model(model_path)
    outs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
    if isinstance(outs, dict):
        outs = list(outs.values())
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    result = [np.asarray(keras.ops.convert_to_numpy(o)) for o in outs]
    del model
    gc.collect()
    return result


def compare(onnx_file: str, model_path: str, feeds: dict, tolerance: float) -> tuple:
    """``(max |onnxruntime − Keras|, max |Keras|)``; raises :class:`VerificationError`
    when the difference is over ``tolerance × max(1, max |Keras|)``."""
    got = run_onnx(onnx_file, feeds)
    want = run_keras(model_path, list(feeds.values()))
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
    return diff, scale
