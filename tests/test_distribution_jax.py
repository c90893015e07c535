"""The builders and blocks train under ``keras.distribution`` on the JAX backend.

Eight virtual CPU devices stand in for accelerators: the ``jax-dist`` tox env (which CI
runs) sets ``KERAS_BACKEND=jax`` and ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
Elsewhere this module is skipped (or left out where JAX is not installed).

Each case trains the same model from the same initial weights on the same batch, once on
one device and once distributed, and compares the per-step losses and the weights after
the steps (batch-norm moving statistics included: under ``DataParallel`` batch norm must
normalise with the global batch's statistics, as on one device).

Why the tolerances hold and what they do not claim: the distributed program reduces in
another order, so the gradients differ from the single-device ones by float32 rounding
(about 1e-6 relative).  Batch-norm networks at initialisation on a small random batch are
chaotic (a 1e-6 relative perturbation of the single-device weights moves the loss by
1e-2 after four SGD steps at lr 1e-3), so the cases take few steps at a small learning
rate; a lost all-reduce or per-shard batch statistics show up at 1e-2 or more in the
first step.

Fast subset (the ``jax-dist`` env): a model chaining every block family (custom layers,
``DropPath``'s seed state created in ``__init__``), MobileNetV2 and ShuffleNetV2 under
``DataParallel``, VGG16 and MobileNetV2 under ``ModelParallel``.  Every other registered
builder runs under ``DataParallel`` in the slow set (``pytest -m "distribution and
slow"`` in the jax-dist env).
"""
import functools

import jax
import keras
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from keras_cnnkit import layers as cl
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

STEPS, LR, BATCH, CLASSES = 3, 1e-4, 16, 10


def blocks_model(size: int = 16):
    """One small model through every block family (``GroupConv`` and
    ``DeformableConv2D`` create their kernels in ``build``; ``DropPath`` its seed state
    in ``__init__``)."""
    inputs = keras.Input((size, size, 3))
    x = cl.ConvBNAct(16, 3, name="stem")(inputs)
    x = cl.ResidualBlock(4, use_se=True, name="res")(x)
    x = cl.DropPath(0.3, seed=7, name="drop")(x)
    x = cl.InvertedResidual(16, strides=2, name="inv")(x)
    x = cl.DepthwiseSeparableConv(16, name="dws")(x)
    x = cl.ShuffleUnit(16, version=2, name="shuffle")(x)
    x = cl.GroupConv(16, 3, groups=4, name="group")(x)
    x = cl.DeformableConv2D(8, 3, modulated=True, name="deform")(x)
    x = cl.InceptionModule("v1", filters=(4, 4, 6, 2, 3, 3), name="inception")(x)
    x = cl.DenseBlock(2, growth_rate=4, name="dense")(x)
    x = cl.TransitionBlock(0.5, name="transition")(x)
    x = cl.FactorizedConv(8, 5, name="factorized")(x)
    outputs = cl.ClassifierHead(CLASSES, "gap", name="head")(x)
    return keras.Model(inputs, outputs, name="blocks")


def batch(size: int, n: int = BATCH):
    """A fixed random batch of images and labels."""
    rng = np.random.default_rng(0)
    return (rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"),
            rng.integers(0, CLASSES, n))


def train(build, size: int, distribution=None, weights=None, momentum: float = 0.0):
    """Build (inside ``distribution``'s scope), load ``weights``, take :data:`STEPS` SGD
    steps; ``(initial weights, losses, final weights, model)``."""
    x, y = batch(size)
    scope = distribution.scope() if distribution is not None else _no_scope()
    with scope:
        keras.utils.set_random_seed(0)
        model = build()
        if weights is not None:
            model.set_weights(weights)
        initial = model.get_weights()
        model.compile(optimizer=keras.optimizers.SGD(LR, momentum=momentum),
                      loss="sparse_categorical_crossentropy")
        losses = [float(model.train_on_batch(x, y)) for _ in range(STEPS)]
    return initial, losses, model.get_weights(), model


class _no_scope:  # pylint: disable=invalid-name
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@functools.lru_cache(maxsize=None)
def single_device(case: str):
    """The single-device run of a case (shared by the tests that compare with it)."""
    build, size = CASES[case]
    initial, losses, final, _ = train(build, size, momentum=0.9 if case in MOMENTUM else 0.0)
    return initial, losses, final


def assert_same_training(case: str, distribution):
    """The distributed run of ``case`` matches the single-device one; returns its model."""
    build, size = CASES[case]
    initial, losses, final = single_device(case)
    _, dist_losses, dist_final, model = train(
        build, size, distribution, initial, momentum=0.9 if case in MOMENTUM else 0.0)
    np.testing.assert_allclose(dist_losses, losses, rtol=1e-4)
    # Weights move by about LR * gradient per step; the difference is rounding noise.
    for w_dist, w_single, w_init, variable in zip(dist_final, final, initial, model.weights):
        np.testing.assert_allclose(w_dist - w_init, w_single - w_init, rtol=1e-3,
                                   atol=1e-6, err_msg=variable.path)
    return model


CASES = {
    "blocks": (blocks_model, 16),
    "mobilenet_v2": (functools.partial(models.build_mobilenet_v2, alpha=0.35,
                                       input_shape=(32, 32, 3), classes=CLASSES), 32),
    "shufflenet_v2": (functools.partial(models.build_shufflenet_v2, width_multiplier=0.5,
                                        input_shape=(32, 32, 3), classes=CLASSES), 32),
    "vgg16": (functools.partial(models.build_vgg16, width_multiplier=0.25,
                                input_shape=(32, 32, 3), classes=CLASSES), 32),
}
#: Cases trained with SGD momentum, so that optimizer slots exist to check layouts of.
MOMENTUM = ("vgg16",)
#: (registered name, kwargs, input size) of the slow set: every registered builder.
SLOW_BUILDERS = [(name, {}, 75 if name == "inception_v3" else 71 if name == "xception"
                  else 63 if name == "alexnet" else 32) for name in models.list_models()]
for _name, _kwargs, _size in SLOW_BUILDERS:
    CASES.setdefault(_name, (functools.partial(models.create_model, _name, input_shape=(
        _size, _size, 3), classes=CLASSES, **_kwargs), _size))


def test_blocks_data_parallel():
    """Every block family trains under DataParallel as on one device, and every
    variable (DropPath's seed state included) is replicated over the 8 devices."""
    model = assert_same_training("blocks", keras.distribution.DataParallel())
    for variable in model.variables:
        sharding = variable.value.sharding
        assert len(sharding.device_set) == DEVICES, variable.path
        assert sharding.is_fully_replicated, variable.path


@pytest.mark.parametrize("case", ["mobilenet_v2", "shufflenet_v2"])
def test_builders_data_parallel(case):
    """Builders train under DataParallel as on one device (batch norm included)."""
    assert_same_training(case, keras.distribution.DataParallel())


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n, _, _ in SLOW_BUILDERS
                                  if n not in ("mobilenet_v2", "shufflenet_v2")])
def test_every_builder_data_parallel(name, fresh_keras_session):
    """Every registered builder trains under DataParallel as on one device."""
    del fresh_keras_session
    assert_same_training(name, keras.distribution.DataParallel())


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


def test_model_parallel_vgg16_dense_heads():
    """VGG16's Dense layers sharded over the model axis (fc1, fc2 by output columns, the
    10-class head by input rows since 10 does not divide by 4) train as on one device;
    the momentum slots are sharded like their kernels."""
    mesh = mesh_2x4()
    plan = models.propose_layout_map(CASES["vgg16"][0](), mesh, min_params=1)
    model = assert_same_training("vgg16", keras.distribution.ModelParallel(
        layout_map=plan.layout_map, batch_dim_name="batch"))
    # width 0.25 at 32x32: the last block has 128 channels at 1x1, so fc1 is 128 -> 4096.
    model_cols, model_rows = PartitionSpec(None, "model"), PartitionSpec("model", None)
    assert_layouts(model, {
        "fc1/kernel": (model_cols, (128, 4096 // 4)),
        "fc1/bias": (PartitionSpec("model"), (4096 // 4,)),
        "fc2/kernel": (model_cols, (4096, 4096 // 4)),
        "predictions/kernel": (model_rows, (4096 // 4, 10)),
        "predictions/bias": (PartitionSpec(None), (10,)),
        "block1_conv1/kernel": (PartitionSpec(None, None, None, None), (3, 3, 3, 16)),
    })
    slots = {v.path.split("/", 1)[1]: v for v in model.optimizer.variables}
    assert slots["fc2_kernel_momentum"].value.sharding.spec == model_cols
    assert slots["predictions_kernel_momentum"].value.sharding.spec == model_rows


def test_model_parallel_mobilenet_v2_1x1_convs():
    """MobileNetV2's 1x1 convolutions sharded over the model axis train as on one
    device (batch norm on sharded channels included)."""
    mesh = mesh_2x4()
    plan = models.propose_layout_map(CASES["mobilenet_v2"][0](), mesh, min_params=10_000)
    model = assert_same_training("mobilenet_v2", keras.distribution.ModelParallel(
        layout_map=plan.layout_map, batch_dim_name="batch"))
    # alpha 0.35: the last block maps 56 channels, expanded 6x to 336, to 112; Conv_1
    # widens 112 to 1280; the classifier reads 1280 features.
    assert_layouts(model, {
        "Conv_1/kernel": (PartitionSpec(None, None, None, "model"), (1, 1, 112, 1280 // 4)),
        "block_16_project/kernel": (PartitionSpec(None, None, None, "model"),
                                    (1, 1, 336, 112 // 4)),
        "predictions/kernel": (PartitionSpec("model", None), (1280 // 4, 10)),
        "expanded_conv_project/kernel": (PartitionSpec(None, None, None, None), (1, 1, 16, 8)),
    })
