"""The three required builders run a forward pass and a training step on any backend.

Marked ``backend_agnostic``: the tox matrix runs this module under the jax and torch
Keras backends (without TensorFlow installed); the default run covers TensorFlow.
"""

import pytest

keras = pytest.importorskip("keras")

# pylint: disable=wrong-import-position
import numpy as np  # noqa: E402

from keras_cnnkit import models  # noqa: E402

pytestmark = [pytest.mark.backend_agnostic, pytest.mark.usefixtures("fresh_keras_session")]


@pytest.mark.parametrize("builder,kwargs,size", [
    (models.build_mobilenet_v2, {"alpha": 0.35, "drop_path_rate": 0.1}, 32),
    (models.build_densenet121, {}, 32),
    (models.build_inception_v3, {}, 75),
], ids=["mobilenet_v2", "densenet121", "inception_v3"])
def test_forward_and_train_step(builder, kwargs, size):
    """Probabilities out; one SGD step changes the weights and gives a finite loss."""
    model = builder(input_shape=(size, size, 3), classes=10, **kwargs)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    y = np.array([3, 5])
    probs = keras.ops.convert_to_numpy(model(x))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-5)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))
    features = builder(include_top=False, features_only=True, input_shape=(size, size, 3),
                       **kwargs)
    assert [f.stride for f in features.feature_info] == [4, 8, 16, 32]
    assert len(features(x)) == 4
