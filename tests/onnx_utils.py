"""Export a Keras 3 model to ONNX and run it with onnxruntime (test helper).

The export is :func:`keras_cnnkit.export.to_onnx` (tf2onnx through a ``tf.function`` with an
explicit input signature), so the builder tests exercise the exporter users run.
"""
from __future__ import annotations

import numpy as np


def to_onnx(model, opset: int = 17):
    """The ``onnx.ModelProto`` of a Keras model, through the package's own exporter."""
    from keras_cnnkit.export import to_onnx as export_to_onnx

    return export_to_onnx(model, opset=opset)[0]


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


def randomize(model, seed: int = 0):
    """``model`` with every weight drawn uniformly (seeded) from [-0.5, 0.5), batch-norm
    variances from [0.5, 1.5): weights that make an export's mistakes show, unlike the
    initial ones (zero biases, unit scales)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        low = 0.5 if "variance" in weight.path else -0.5
        weight.assign(rng.uniform(low, low + 1.0, weight.shape).astype("float32"))
    return model
