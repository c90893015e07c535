"""Export a Keras 3 model to ONNX with tf2onnx and run it with onnxruntime (test helper).

``tf2onnx.convert.from_keras`` accepts Keras 3 functional models on TensorFlow 2.21 with
an explicit ``input_signature``; where it does not (older tf2onnx/Keras pairs), the
route that always works is a ``tf.function`` of the model called in inference mode,
converted with ``tf2onnx.convert.from_function``.  Both are tried, in that order.
"""
from __future__ import annotations

import numpy as np


def to_onnx(model, opset: int = 17):
    """The ``onnx.ModelProto`` of a single-input Keras model (TensorFlow backend)."""
    import tensorflow as tf
    import tf2onnx

    shape = (None, *model.input_shape[1:])
    signature = [tf.TensorSpec(shape, tf.float32, name="input")]
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    except Exception:  # pylint: disable=broad-exception-caught
        fn = tf.function(lambda x: model(x, training=False), input_signature=signature)
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    return proto


def run_onnx(proto, x: np.ndarray) -> list:
    """Run ``proto`` with onnxruntime on the CPU; return all outputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})


def assert_onnx_matches(model, x: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5):
    """Export ``model``, run it on ``x`` and compare every output with Keras'."""
    expected = model(x, training=False)
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    got = run_onnx(to_onnx(model), x)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, np.asarray(e), rtol=rtol, atol=atol)
