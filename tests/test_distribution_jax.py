"""The builders and blocks train under ``keras.distribution`` on the JAX backend.

Eight virtual CPU devices stand in for accelerators: the ``jax-dist`` tox env (which CI
runs) sets ``KERAS_BACKEND=jax`` and ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
Elsewhere this module is skipped (or left out where JAX is not installed).

Each case trains the same model from the same initial weights on the same batch, once on
one device and once distributed (:mod:`distribution_cases` says how, and why its
tolerances hold), and compares the per-step losses and the weights after the steps,
batch-norm moving statistics included: under ``DataParallel`` batch norm normalises with
the global batch's statistics, as on one device.

Fast subset (the ``jax-dist`` env): a model chaining every block family (custom layers,
``DropPath``'s seed state created in ``__init__``), MobileNetV2 and ShuffleNetV2 under
``DataParallel``; VGG16 and MobileNetV2 under ``ModelParallel``; the docs page's
example.  Every registered
builder runs under ``DataParallel`` in the slow set (``pytest -m "distribution and
slow"`` in the jax-dist env).
"""
import os
import re
import subprocess
import sys

import distribution_cases as dc
import jax
import keras
import pytest
from jax.sharding import PartitionSpec

from keras_cnnkit import models

DEVICES = 8
pytestmark = [
    pytest.mark.distribution,
    pytest.mark.skipif(keras.backend.backend() != "jax",
                       reason="keras.distribution runs on the JAX backend"),
    pytest.mark.skipif(jax.device_count() < DEVICES,
                       reason=f"needs {DEVICES} devices: run in the jax-dist tox env "
                              "(XLA_FLAGS=--xla_force_host_platform_device_count=8)"),
]


def assert_same_training(case: str, distribution, momentum: float = 0.0):
    """``case`` trains under ``distribution`` as on one device; returns the model."""
    result = dc.compare(case, distribution.scope, momentum=momentum)
    model = result.pop("model")
    dc.check(result)
    return model


def test_blocks_data_parallel(fresh_keras_session):
    """Every block family trains under DataParallel as on one device (DropPath drawing
    the same masks), and every variable, DropPath's seed state included, is replicated
    over the 8 devices."""
    del fresh_keras_session
    model = assert_same_training("blocks", keras.distribution.DataParallel())
    for variable in model.variables:
        sharding = variable.value.sharding
        assert len(sharding.device_set) == DEVICES, variable.path
        assert sharding.is_fully_replicated, variable.path


FAST_BUILDERS = ("mobilenet_v2_a035", "shufflenet_v2_x0_5")


@pytest.mark.parametrize("case", FAST_BUILDERS)
def test_builders_data_parallel(case, fresh_keras_session):
    """Builders train under DataParallel as on one device (batch norm included)."""
    del fresh_keras_session
    assert_same_training(case, keras.distribution.DataParallel())


@pytest.mark.slow
@pytest.mark.parametrize("case", models.list_models())
def test_every_builder_data_parallel(case, fresh_keras_session):
    """Every registered builder trains under DataParallel as on one device."""
    del fresh_keras_session
    assert_same_training(case, keras.distribution.DataParallel())


def mesh_2x4():
    """2-way data parallel × 4-way model parallel over the 8 devices."""
    return keras.distribution.DeviceMesh((2, 4), ("batch", "model"),
                                         devices=keras.distribution.list_devices())


def assert_layouts(model, expected: dict):
    """Each variable named in ``expected`` has that partition spec and per-device shard
    shape."""
    for path, (spec, shard_shape) in expected.items():
        value = next(v for v in model.variables if v.path == path).value
        assert value.sharding.spec == spec, path
        assert {tuple(s.data.shape) for s in value.addressable_shards} == {shard_shape}, path


def model_parallel(case: str, **plan_kwargs):
    """``ModelParallel`` over :func:`mesh_2x4` with the plan for ``case``'s model (built
    once, outside the distribution, to plan)."""
    plan = models.propose_layout_map(dc.CASES[case][0](), mesh_2x4(), **plan_kwargs)
    return keras.distribution.ModelParallel(layout_map=plan.layout_map,
                                            batch_dim_name="batch")


def test_model_parallel_vgg16_dense_heads(fresh_keras_session):
    """VGG16's Dense layers sharded over the model axis (fc1, fc2 by output columns, the
    10-class head by input rows since 10 does not divide by 4) train as on one device;
    the momentum slots are sharded like their kernels."""
    del fresh_keras_session
    model = assert_same_training("vgg16_w025", model_parallel("vgg16_w025", min_params=1),
                                 momentum=0.9)
    # width 0.25 at 32x32: the last block has 128 channels at 1x1, so fc1 is 128 -> 4096.
    cols, rows = PartitionSpec(None, "model"), PartitionSpec("model", None)
    assert_layouts(model, {
        "fc1/kernel": (cols, (128, 4096 // 4)),
        "fc1/bias": (PartitionSpec("model"), (4096 // 4,)),
        "fc2/kernel": (cols, (4096, 4096 // 4)),
        "predictions/kernel": (rows, (4096 // 4, 10)),
        "predictions/bias": (PartitionSpec(None), (10,)),
        "block1_conv1/kernel": (PartitionSpec(None, None, None, None), (3, 3, 3, 16)),
    })
    slots = {v.path.split("/", 1)[1]: v for v in model.optimizer.variables}
    assert slots["fc2_kernel_momentum"].value.sharding.spec == cols
    assert slots["predictions_kernel_momentum"].value.sharding.spec == rows


def test_model_parallel_mobilenet_v2_1x1_convs(fresh_keras_session):
    """MobileNetV2's 1x1 convolutions sharded over the model axis train as on one
    device (batch norm over sharded channels included)."""
    del fresh_keras_session
    case = "mobilenet_v2_a035"
    model = assert_same_training(case, model_parallel(case, min_params=10_000))
    # alpha 0.35: the last block maps 56 channels, expanded 6x to 336, to 112; Conv_1
    # widens 112 to 1280; the classifier reads 1280 features.
    conv_cols = PartitionSpec(None, None, None, "model")
    assert_layouts(model, {
        "Conv_1/kernel": (conv_cols, (1, 1, 112, 1280 // 4)),
        "block_16_project/kernel": (conv_cols, (1, 1, 336, 112 // 4)),
        "predictions/kernel": (PartitionSpec("model", None), (1280 // 4, 10)),
        "expanded_conv_project/kernel": (PartitionSpec(None, None, None, None), (1, 1, 16, 8)),
    })


def docs_blocks(language: str) -> list:
    """The ``language`` code blocks of docs/distribution.md, in order."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "docs", "distribution.md")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_docs_example():
    """docs/distribution.md's example runs as written (in a fresh process) and prints
    the plan the page shows."""
    code, plan_text = docs_blocks("python")[0], docs_blocks("text")[0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert plan_text in proc.stdout
    assert "P(None, 'model')" in proc.stdout.splitlines()[-1]
