"""Timing compiled forward passes and training steps on any Keras backend.

Method (the same for every backend):

* The model is compiled first: ``tf.function(jit_compile=True)`` (XLA) on TensorFlow,
  ``jax.jit`` on JAX; PyTorch runs eagerly (``torch.compile`` is optional and off).
* Warm-up calls, which include compilation, are not timed.
* Each call is synchronised before the clock is read: one element of each output read
  back with ``.numpy()`` on TensorFlow (the device queue is in order), ``block_until_ready``
  on JAX, ``torch.cuda.synchronize()`` on PyTorch.
* A sample is the mean over enough back-to-back synchronised calls to last
  ``min_sample_s``; several samples give the median and the inter-quartile range.
* Models compared with each other (a fix's before and after) are timed with their
  samples interleaved, so that both see the same machine load.
* Optionally (``max_rel_iqr``), a measurement whose spread is too wide (inter-quartile
  range over median, on any side) is taken again, up to ``retries`` times, and the
  steadiest attempt is kept: on a shared machine a burst of other work during one
  measurement shows as a wide IQR, and retaking it is cheaper than trusting it.

A training step is forward, a mean-square loss on the output, backward, and an SGD
update of every trainable variable, compiled as one function.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Optional, Sequence

import keras
import numpy as np

#: What ``compile_mode`` names per backend (the default mode first).
COMPILE_MODES = {"tensorflow": ("xla", "graph", "eager"), "jax": ("jit",),
                 "torch": ("eager", "compile")}

_LEARNING_RATE = 1e-3


@dataclasses.dataclass
class Timing:
    """Per-call times of one measured function, in milliseconds.

    Attributes:
        samples_ms: one mean per-call time per sample.
        calls_per_sample: synchronised calls averaged into each sample.
    """

    samples_ms: list
    calls_per_sample: int = 1
    attempts: int = 1

    @property
    def median_ms(self) -> float:
        """Median per-call time."""
        return float(np.median(self.samples_ms))

    @property
    def iqr_ms(self) -> float:
        """Inter-quartile range of the samples (spread)."""
        q1, q3 = np.percentile(self.samples_ms, [25, 75])
        return float(q3 - q1)

    @property
    def rel_iqr(self) -> float:
        """Spread relative to the median (IQR / median)."""
        median = self.median_ms
        return self.iqr_ms / median if median > 0 else 0.0

    @property
    def min_ms(self) -> float:
        """Fastest sample."""
        return float(np.min(self.samples_ms))

    def to_dict(self) -> dict:
        """Plain-dict form for JSON reports."""
        return {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms, "min_ms": self.min_ms,
                "samples": len(self.samples_ms), "calls_per_sample": self.calls_per_sample,
                "attempts": self.attempts}


def measure(run: Callable[[], object], sync: Callable[[object], None], warmup: int = 3,
            repeats: int = 10, min_sample_s: float = 0.02, budget_s: float = 20.0,
            clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Time ``sync(run())``: warm-up excluded, median over ``repeats`` samples.

    Args:
        run: launches one call and returns its outputs.
        sync: blocks until those outputs are computed.
        warmup: untimed calls first (compilation happens there).
        repeats: samples to take; fewer (at least 3) when ``budget_s`` would be exceeded.
        min_sample_s: each sample averages enough calls to last at least this long.
        budget_s: rough time budget for all samples of this measurement.
        clock: the timer (monotonic seconds).
    """
    return measure_interleaved([(run, sync)], warmup=warmup, repeats=repeats,
                               min_sample_s=min_sample_s, budget_s=budget_s, clock=clock)[0]


def measure_interleaved(runs: Sequence[tuple], warmup: int = 3, repeats: int = 10,
                        min_sample_s: float = 0.02, budget_s: float = 20.0,
                        clock: Callable[[], float] = time.perf_counter,
                        max_rel_iqr: Optional[float] = None, retries: int = 2) -> list:
    """Time several ``(run, sync)`` pairs with their samples interleaved (A B A B ...).

    Interleaving makes a before/after comparison robust to slow drifts of the machine's
    load: both sides see the same conditions.  Arguments as :func:`measure`; the
    budget is shared.  With ``max_rel_iqr``, the whole interleaved measurement is taken
    again (at most ``retries`` more times) while any side's IQR / median exceeds it, and
    the attempt with the smallest worst-side spread is returned (each :class:`Timing`
    records how many ``attempts`` were made).  Returns one :class:`Timing` per pair.
    """
    calls = []
    for run, sync in runs:
        for _ in range(max(1, warmup)):
            sync(run())
        start = clock()
        sync(run())
        single = max(clock() - start, 1e-7)
        calls.append((max(1, min(1000, math.ceil(min_sample_s / single))), single))
    per_round = sum(n * single for n, single in calls)
    repeats = max(3, min(repeats, int(budget_s / per_round) or 3))

    def attempt() -> list:
        samples: list = [[] for _ in runs]
        for _ in range(repeats):
            for i, (run, sync) in enumerate(runs):
                n = calls[i][0]
                start = clock()
                for _ in range(n):
                    sync(run())
                samples[i].append((clock() - start) * 1000.0 / n)
        return [Timing(s, n) for s, (n, _) in zip(samples, calls)]

    best = attempt()
    tries = 1
    while (max_rel_iqr is not None and tries <= retries
           and max(t.rel_iqr for t in best) > max_rel_iqr):
        again = attempt()
        tries += 1
        if max(t.rel_iqr for t in again) < max(t.rel_iqr for t in best):
            best = again
    for timing in best:
        timing.attempts = tries
    return best


def random_inputs(model: keras.Model, batch: int, seed: int = 0) -> list:
    """Random normal inputs (never zeros) for ``model`` at ``batch``, in the inputs' dtypes.

    Raises:
        ValueError: an input has an unknown (``None``) non-batch dimension.
    """
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = tuple(tensor.shape[1:])
        if any(d is None for d in shape):
            raise ValueError(f"input {tensor.name!r} has an unknown dimension: {shape}")
        data = rng.standard_normal((batch,) + shape).astype(np.float32)
        arrays.append(data)
    return arrays


def _cast_inputs(model: keras.Model, arrays: Sequence[np.ndarray]) -> list:
    return [keras.ops.cast(keras.ops.convert_to_tensor(a), t.dtype)
            for a, t in zip(arrays, model.inputs)]


def _args(values: list):
    return values[0] if len(values) == 1 else values


def _mse(out):
    return keras.ops.mean(keras.ops.square(keras.ops.cast(out, "float32")))


def runner(model: keras.Model, arrays: Sequence[np.ndarray], train: bool = False,
           compile_mode: Optional[str] = None) -> tuple:
    """``(run, sync, compile_mode)`` for one forward pass (or training step) of ``model``.

    ``compile_mode`` defaults to the backend's first entry of :data:`COMPILE_MODES`.
    """
    backend = keras.backend.backend()
    modes = COMPILE_MODES.get(backend, ("eager",))
    compile_mode = compile_mode or modes[0]
    if compile_mode not in modes:
        raise ValueError(f"compile mode {compile_mode!r} is not one of {modes} on {backend}")
    build = {"tensorflow": _tf_runner, "jax": _jax_runner, "torch": _torch_runner}.get(
        backend, _eager_runner)
    run, sync = build(model, arrays, train, compile_mode)
    return run, sync, compile_mode


def _to_numpy(out) -> None:
    for value in keras.tree.flatten(out):
        keras.ops.convert_to_numpy(value)


def _eager_runner(model, arrays, train, compile_mode):
    del compile_mode
    inputs = _args(_cast_inputs(model, arrays))
    if train:
        raise ValueError(f"training steps are not timed on the {keras.backend.backend()} "
                         "backend")
    return (lambda: model(inputs, training=False)), _to_numpy


def _tf_runner(model, arrays, train, compile_mode):
    import tensorflow as tf
    inputs = _args(_cast_inputs(model, arrays))
    variables = model.trainable_variables

    def forward(x):
        return model(x, training=False)

    def step(x):
        with tf.GradientTape() as tape:
            loss = _mse(model(x, training=True))
        grads = tape.gradient(loss, variables)
        for var, grad in zip(variables, grads):
            if grad is not None:
                var.assign_sub(tf.cast(grad, var.dtype) * _LEARNING_RATE)
        return loss

    fn = step if train else forward
    if compile_mode != "eager":
        fn = tf.function(fn, jit_compile=compile_mode == "xla")

    def sync(out) -> None:
        # One element of each output, read on the host: the device's queue is in order,
        # so this waits for the whole computation without copying the whole output.
        for value in tf.nest.flatten(out):
            tf.reshape(value, [-1])[:1].numpy()
    return (lambda: fn(inputs)), sync


def _jax_runner(model, arrays, train, compile_mode):
    del compile_mode
    import jax  # pylint: disable=import-error  # optional backend
    inputs = _args(_cast_inputs(model, arrays))
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    if not train:
        @jax.jit
        def forward(tv, ntv, x):
            return model.stateless_call(tv, ntv, x, training=False)[0]
        return (lambda: forward(trainable, non_trainable, inputs)), jax.block_until_ready

    def loss_fn(tv, ntv, x):
        out, new_ntv = model.stateless_call(tv, ntv, x, training=True)
        return _mse(out), new_ntv

    @jax.jit
    def step(tv, ntv, x):
        (loss, new_ntv), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv, x)
        new_tv = [v - (g * _LEARNING_RATE).astype(v.dtype) for v, g in zip(tv, grads)]
        return new_tv, new_ntv, loss

    return (lambda: step(trainable, non_trainable, inputs)), jax.block_until_ready


def _torch_runner(model, arrays, train, compile_mode):
    import torch  # pylint: disable=import-error  # optional backend
    inputs = _args(_cast_inputs(model, arrays))
    cuda = torch.cuda.is_available()

    def sync(_out) -> None:
        if cuda:
            torch.cuda.synchronize()

    call = model
    if compile_mode == "compile":
        call = torch.compile(model)
    if not train:
        def forward():
            with torch.no_grad():
                return call(inputs, training=False)
        return forward, sync
    params = [v.value for v in model.trainable_variables]

    def step():
        loss = _mse(call(inputs, training=True))
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        with torch.no_grad():
            for param, grad in zip(params, grads):
                if grad is not None:
                    param.sub_(grad.to(param.dtype) * _LEARNING_RATE)
        return loss
    return step, sync


def time_model(model: keras.Model, batch: int, train: bool = False,
               compile_mode: Optional[str] = None, seed: int = 0, **measure_kwargs) -> tuple:
    """``(Timing, compile_mode)`` of ``model`` on random inputs at ``batch``."""
    timings, mode = time_models([model], batch, train=train, compile_mode=compile_mode,
                                seed=seed, **measure_kwargs)
    return timings[0], mode


def time_models(models: Sequence[keras.Model], batch: int, train: bool = False,
                compile_mode: Optional[str] = None, seed: int = 0,
                **measure_kwargs) -> tuple:
    """``([Timing per model], compile_mode)``: the models timed interleaved, each on its
    own random inputs at ``batch`` (see :func:`measure_interleaved`)."""
    runs, mode = [], compile_mode
    for model in models:
        arrays = random_inputs(model, batch, seed=seed)
        run, sync, mode = runner(model, arrays, train=train, compile_mode=compile_mode)
        runs.append((run, sync))
    return measure_interleaved(runs, **measure_kwargs), mode
