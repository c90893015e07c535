"""Every builder runs a forward pass and a training step on TensorFlow, and exports to
ONNX through tf2onnx with onnxruntime matching Keras to 1e-4 (relative)."""
import pytest

tf = pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

# pylint: disable=wrong-import-position
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_cnnkit import models  # noqa: E402
from onnx_utils import assert_onnx_matches  # noqa: E402  pylint: disable=wrong-import-order

pytestmark = [
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="tf2onnx and these checks need the TensorFlow backend"),
    pytest.mark.usefixtures("fresh_keras_session"),
]


# (id, builder, kwargs, input size, slow).  The three required builders run their
# forward pass and training step in test_models_backends.py on every backend.
TRAIN_CASES = [
    ("mobilenet", models.build_mobilenet, {"alpha": 0.25}, 32, False),
    ("resnet50", models.build_resnet50, {}, 32, False),
    ("resnet50_v2", models.build_resnet50_v2, {"drop_path_rate": 0.2}, 32, False),
    ("se_resnet50", models.build_se_resnet50, {}, 32, True),
    ("vgg16", models.build_vgg16, {}, 32, False),
    ("alexnet", models.build_alexnet, {}, 63, False),
    ("xception", models.build_xception, {"drop_path_rate": 0.1}, 71, True),
    ("googlenet", models.build_googlenet, {}, 32, False),
    ("googlenet_aux", models.build_googlenet, {"aux_logits": True}, 65, True),
    ("shufflenet_v2", models.build_shufflenet_v2, {"width_multiplier": 0.5}, 32, False),
    ("densenet169", models.build_densenet169, {}, 32, True),
    ("densenet201", models.build_densenet201, {}, 32, True),
]

ONNX_CASES = [
    ("mobilenet_v2", models.build_mobilenet_v2, {"alpha": 0.35}, 96, False),
    ("inception_v3", models.build_inception_v3, {}, 75, True),
    ("densenet121", models.build_densenet121, {}, 32, True),
    ("densenet169", models.build_densenet169, {}, 32, True),
    ("densenet201", models.build_densenet201, {}, 32, True),
    ("mobilenet", models.build_mobilenet, {"alpha": 0.25}, 32, True),
    ("resnet50", models.build_resnet50, {}, 32, True),
    ("resnet50_v2", models.build_resnet50_v2, {}, 32, True),
    ("se_resnet50", models.build_se_resnet50, {}, 32, True),
    ("vgg16", models.build_vgg16, {}, 32, True),
    ("alexnet", models.build_alexnet, {}, 63, True),
    ("xception", models.build_xception, {}, 71, True),
    ("googlenet", models.build_googlenet, {}, 32, True),
    ("shufflenet_v2", models.build_shufflenet_v2, {"width_multiplier": 0.5}, 32, True),
]


def _params(cases):
    return [pytest.param(b, k, s, id=i, marks=[pytest.mark.slow] if slow else [])
            for i, b, k, s, slow in cases]


def _batch(size: int, n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("builder,kwargs,size", _params(TRAIN_CASES))
def test_forward_and_train_step(builder, kwargs, size):
    """Forward pass (probabilities) and one SGD step that changes the weights."""
    model = builder(input_shape=(size, size, 3), classes=10, **kwargs)
    x, y = _batch(size), np.array([1, 7])
    outputs = model(x)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    for out in outputs:
        np.testing.assert_allclose(np.asarray(out).sum(axis=-1), 1.0, rtol=1e-5)
    n_out = len(model.outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=["sparse_categorical_crossentropy"] * n_out,
                  loss_weights=[1.0] + [0.3] * (n_out - 1))
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, [y] * n_out if n_out > 1 else y)
    assert np.all(np.isfinite(loss))
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


@pytest.mark.parametrize("builder,kwargs,size", _params(ONNX_CASES))
def test_onnx_export_matches_keras(builder, kwargs, size):
    """tf2onnx export; onnxruntime agrees with Keras to 1e-4 relative."""
    model = builder(input_shape=(size, size, 3), classes=10, **kwargs)
    assert_onnx_matches(model, _batch(size))


@pytest.mark.slow
def test_onnx_export_features_and_aux_outputs():
    """Multi-output models (features_only, GoogLeNet's auxiliary heads) export too."""
    assert_onnx_matches(models.build_resnet50(include_top=False, features_only=True,
                                              input_shape=(64, 64, 3)), _batch(64))
    assert_onnx_matches(models.build_googlenet(aux_logits=True, input_shape=(65, 65, 3),
                                               classes=10), _batch(65))
