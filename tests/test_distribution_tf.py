"""The builders and blocks train under ``tf.distribute.MirroredStrategy`` (TensorFlow).

Two logical CPUs stand in for two GPUs.  The runs happen in a fresh process
(``mirrored_training.py``: TensorFlow's logical devices must be configured before it
initialises); :mod:`distribution_cases` says how they compare and why the tolerances
hold.

Under a ``tf.distribute`` strategy each replica normalises batch norm with its own
slice's statistics unless the layer is ``synchronized``:
:func:`keras_cnnkit.models.synchronize_batch_norm` turns that on, and the synchronised
runs match one device; an unsynchronised run is shown to differ from the first step.
``DropPath`` (like Keras' ``Dropout``) draws each replica's mask from the same seed
state, so the replicas' masks repeat and differ from one device's: the TensorFlow cases
train the blocks model without it (the JAX tests cover it, where draws are global).

Fast: the blocks model (synchronised and not) and VGG16 (no batch norm).  Slow: every
registered builder, synchronised.
"""
import json
import os
import subprocess
import sys

import distribution_cases as dc
import keras
import pytest

from keras_cnnkit import models

pytestmark = [
    pytest.mark.distribution,
    pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                       reason="tf.distribute needs the TensorFlow backend"),
    pytest.mark.usefixtures("tensorflow_installed"),
]
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def tensorflow_installed():
    """Skip where TensorFlow is missing."""
    pytest.importorskip("tensorflow")


def mirrored(*specs, timeout: int = 1800) -> dict:
    """``mirrored_training.py`` on ``specs``, in a fresh process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "mirrored_training.py"),
                           *specs], capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fast_runs():
    """The fast cases, in one process."""
    return mirrored("blocks_no_drop_path", "blocks_no_drop_path:unsynced", "vgg16_w025")


def assert_same_training(result: dict) -> None:
    """The mirrored run matches the single-device run."""
    assert result["mirrored"]
    dc.check(result)


def test_blocks_mirrored_with_synchronized_batch_norm(fast_runs):
    """Every block family (DropPath aside) trains under MirroredStrategy as on one
    device once its batch norms (those nested in the blocks too) are synchronised."""
    result = fast_runs["blocks_no_drop_path"]
    assert_same_training(result)
    assert result["synchronized"] > 0


def test_unsynchronized_batch_norm_differs(fast_runs):
    """Without synchronisation the replicas' batch statistics differ from the global
    batch's: the first step's loss is already off by more than 1e-3."""
    result = fast_runs["blocks_no_drop_path:unsynced"]
    assert result["synchronized"] == 0
    first_single, first_mirrored = result["single"][0], result["distributed"][0]
    assert abs(first_mirrored - first_single) > 1e-3 * first_single


def test_vgg16_mirrored(fast_runs):
    """VGG16 has no batch norm: nothing to synchronise, and it matches as it is."""
    result = fast_runs["vgg16_w025"]
    assert result["synchronized"] == 0
    assert_same_training(result)


@pytest.mark.slow
def test_every_builder_mirrored():
    """Every registered builder trains under MirroredStrategy as on one device; in
    MobileNetV2 all 52 batch norms of keras.applications' twin are synchronised."""
    results = mirrored(*models.list_models(), timeout=7200)
    twin = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    assert results["mobilenet_v2"]["synchronized"] == sum(
        isinstance(layer, keras.layers.BatchNormalization) for layer in twin.layers) == 52
    for result in results.values():
        assert_same_training(result)
