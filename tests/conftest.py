"""Shared test fixtures and helpers (kept small)."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402  pylint: disable=wrong-import-position


def channels_first_runs() -> bool:
    """Whether channels_first convolutions execute here.

    TensorFlow's CPU kernels only run NHWC convolutions, so channels_first blocks are
    checked by shapes and parameter counts alone on a TF backend without a GPU.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@pytest.fixture
def rng():
    """A seeded numpy random generator."""
    import numpy as np

    return np.random.default_rng(0)
