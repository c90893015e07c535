"""The training runs the distribution tests compare, for any backend.

A *case* is a model builder and an input size.  :func:`compare` trains it from the same
initial weights on the same batch, once on one device and once inside a distribution's
scope (``keras.distribution`` on JAX, a ``tf.distribute`` strategy on TensorFlow), and
returns what the tests assert on: both runs' losses and how far the distributed weight
updates are from the single-device ones.

Why the settings: batch-norm networks at initialisation have exploding gradients (Yang
et al., "A Mean Field Theory of Batch Normalization", ICLR 2019; MobileNetV2 at alpha
0.35 on this batch: gradient norm about 500), so on a random batch their SGD trajectory
is chaotic: at lr 1e-4 a 1e-6 relative perturbation of the single-device weights moves
the loss by 1e-3 after one step and 1e-2 after two, and the distributed program, which
reduces in another order (float32 rounding), drifts as far.  So each step moves the
weights by a fixed small distance: SGD with ``global_clipnorm=1`` and :data:`LR`, an
update of norm 2e-5 whatever the model's gradient scale.  Three such steps stay in the
linear regime, where rounding moves the losses by about 1e-6 relative, while each
step's update is still hundreds of float32 spacings for the largest weights' updates.
A real distribution bug (per-replica batch statistics, a missing gradient all-reduce)
moves the first step's loss or update by 1e-2 or more.

So :func:`check` is strict where the runs start from the same weights (the first loss
to 1e-5, the first update to 1e-2 of its largest element) and allows the drift of
chaos afterwards (the later losses to 1e-3; measured: up to 9e-4 for MobileNetV2 under
``ModelParallel`` whether or not any kernel is sharded, from a first update within
9e-4 of one device's).
"""
from __future__ import annotations

import contextlib
import functools

import keras
import numpy as np

from keras_cnnkit import layers as cl
from keras_cnnkit import models

STEPS, LR, BATCH, CLASSES = 3, 2e-5, 16, 10
#: Tolerances of :func:`check` (see the module docstring).
FIRST_LOSS_RTOL, LOSS_RTOL, UPDATE_TOL = 1e-5, 1e-3, 1e-2
#: The smallest input each registered builder accepts (32 where not listed).
MIN_SIZE = {"inception_v3": 75, "xception": 71, "alexnet": 63}


def blocks_model(size: int = 16, drop_path: float = 0.3):
    """One small model through every block family (``GroupConv`` and
    ``DeformableConv2D`` create their kernels in ``build``, ``DropPath`` its seed state
    in ``__init__``)."""
    inputs = keras.Input((size, size, 3))
    x = cl.ConvBNAct(16, 3, name="stem")(inputs)
    x = cl.ResidualBlock(4, use_se=True, name="res")(x)
    x = cl.DropPath(drop_path, seed=7, name="drop")(x)
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


def _builder(name: str, size: int, **kwargs):
    return functools.partial(models.create_model, name, input_shape=(size, size, 3),
                             classes=CLASSES, **kwargs)


#: case -> (build, input size).  The named small variants keep the fast set cheap;
#: every registered builder is a case of its own (at its smallest input).
CASES = {
    "blocks": (blocks_model, 16),
    "blocks_no_drop_path": (functools.partial(blocks_model, drop_path=0.0), 16),
    "mobilenet_v2_a035": (_builder("mobilenet_v2", 32, alpha=0.35), 32),
    "shufflenet_v2_x0_5": (_builder("shufflenet_v2_x0_5", 32), 32),
    "vgg16_w025": (_builder("vgg16", 32, width_multiplier=0.25), 32),
}
for _name in models.list_models():
    _size = MIN_SIZE.get(_name, 32)
    CASES[_name] = (_builder(_name, _size), _size)


def batch(size: int, n: int = BATCH):
    """A fixed random batch of images and labels."""
    rng = np.random.default_rng(0)
    return (rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"),
            rng.integers(0, CLASSES, n))


def train(case: str, scope=None, weights=None, momentum: float = 0.0, prepare=None):
    """Build ``case`` inside ``scope``, load ``weights``, ``prepare(model)``, take
    :data:`STEPS` SGD steps; returns ``(initial weights, losses, weights after the first
    step, model)``.

    The steps are ``fit`` epochs of one batch: ``fit`` splits each batch over the
    replicas.  (``train_on_batch`` under a ``MirroredStrategy`` does not: it gives every
    replica the whole batch.)
    """
    build, size = CASES[case]
    x, y = batch(size)
    with scope if scope is not None else contextlib.nullcontext():
        keras.utils.set_random_seed(0)
        model = build()
        if weights is not None:
            model.set_weights(weights)
        if prepare is not None:
            prepare(model)
        initial = model.get_weights()
        model.compile(optimizer=keras.optimizers.SGD(LR, momentum=momentum,
                                                     global_clipnorm=1.0),
                      loss="sparse_categorical_crossentropy")
        losses, first = [], None
        for _ in range(STEPS):
            history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
            losses.append(float(history.history["loss"][0]))
            first = first or model.get_weights()
    return initial, losses, first, model


def update_error(initial: list, single: list, distributed: list) -> float:
    """How far the distributed weights are from the single-device ones after the first
    step (taken from the same weights: no chaos yet), less two float32 spacings of each
    weight, relative to the largest single-device update (``inf`` if an integer state,
    a seed generator's, differs)."""
    scale = max(float(np.abs(s - i).max(initial=0.0)) for i, s in zip(initial, single))
    worst = 0.0
    for w_single, w_dist in zip(single, distributed):
        if w_single.dtype.kind != "f":
            if not np.array_equal(w_single, w_dist):
                return float("inf")
            continue
        slack = 2 * np.spacing(np.maximum(np.abs(w_single), np.abs(w_dist)))
        excess = np.maximum(np.abs(w_dist - w_single) - slack, 0)
        worst = max(worst, float(excess.max(initial=0.0)))
    return worst / scale


def compare(case: str, scope_factory, momentum: float = 0.0, prepare=None) -> dict:
    """Train ``case`` on one device, then inside ``scope_factory()`` from the same
    weights; ``{"single", "distributed": losses, "update_error", "model"}``.

    Assert with :func:`check`."""
    initial, single_losses, single_final, _ = train(case, momentum=momentum)
    _, dist_losses, dist_final, model = train(case, scope_factory(), initial,
                                              momentum=momentum, prepare=prepare)
    return {"single": single_losses, "distributed": dist_losses,
            "update_error": update_error(initial, single_final, dist_final), "model": model}


def check(result: dict) -> None:
    """Assert that a :func:`compare` result matches one device."""
    single, distributed = result["single"], result["distributed"]
    assert abs(distributed[0] - single[0]) <= FIRST_LOSS_RTOL * abs(single[0]), result
    for got, want in zip(distributed[1:], single[1:]):
        assert abs(got - want) <= LOSS_RTOL * abs(want), result
    assert result["update_error"] < UPDATE_TOL, result
