"""Calibration: time a fixed micro-benchmark grid on the local Keras backend, fit a profile.

The grid (:func:`grid`) holds single ops of every latency class at a few sizes (from
launch-bound to compute- or memory-bound), short chains that show per-kernel launch and
element-wise fusion, and an empty model that shows the per-call overhead.  Each entry is
a small Keras model, timed as ``--benchmark`` times a fix (compiled, warm-up excluded,
synchronised; the fastest of five samples: :func:`time_side_by_side`), and turned into IR by
the live Keras frontend, so the fit sees exactly the nodes a linted model would have.

A few before/after pairs (:func:`check_cases`: the fixes of the rules whose time differs
most from their FLOPs) are timed side by side and kept out of the fit: the profile's
``errors["held_out"]`` are measured on them.

There are two fixed grids: ``"cpu"`` (sized for a 2-core machine, under 2 minutes with
compilation) and ``"gpu"`` (larger shapes: a GPU is launch-bound below them); ``"tiny"``
is for tests.  :func:`calibrate` picks by the device the backend computes on.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Optional, Sequence

from keras_cnnkit.latency.data import Case, Observation, write_measurements
from keras_cnnkit.latency.fit import evaluate, fit_profile
from keras_cnnkit.latency.nominal import nominal_profile
from keras_cnnkit.latency.profile import LOCAL, Profile, cache_dir


@dataclasses.dataclass(frozen=True)
class Entry:
    """One micro-benchmark: ``build()`` returns the Keras model; ``batches`` to time."""

    label: str
    build: Callable
    batches: tuple = (1, 32)


@dataclasses.dataclass(frozen=True)
class Pair:
    """One held-out before/after pair: ``build()`` returns ``(before, after)`` models."""

    label: str
    build: Callable
    batches: tuple = (1, 32)


def _layers():
    import keras
    return keras, keras.layers


def _model(shape: tuple, body: Callable, inputs: int = 1):
    """``keras.Model`` of ``body(*inputs)`` on ``inputs`` inputs of ``shape``."""
    keras, _ = _layers()
    xs = [keras.Input(shape) for _ in range(inputs)]
    return keras.Model(xs if inputs > 1 else xs[0], body(*xs))


def conv(c_in: int, c_out: int, size: int, kernel, groups: int = 1, chain: int = 1,
         bn_relu: bool = False) -> Callable:
    """A builder: ``chain`` convolutions (``kernel``, ``groups``), each followed by batch
    norm and ReLU when ``bn_relu``."""
    def build():
        _, layers = _layers()

        def body(x):
            for i in range(chain):
                x = layers.Conv2D(c_out if i == chain - 1 else c_in, kernel, padding="same",
                                  groups=groups)(x)
                if bn_relu:
                    x = layers.ReLU()(layers.BatchNormalization()(x))
            return x
        return _model((size, size, c_in), body)
    return build


def depthwise(channels: int, size: int, kernel: int = 3, bn_relu: bool = False) -> Callable:
    """A builder: a depthwise conv (+ batch norm and ReLU6)."""
    def build():
        _, layers = _layers()

        def body(x):
            y = layers.DepthwiseConv2D(kernel, padding="same")(x)
            return layers.ReLU(6.0)(layers.BatchNormalization()(y)) if bn_relu else y
        return _model((size, size, channels), body)
    return build


def dense(features: int, units: int, flatten_from: Optional[tuple] = None) -> Callable:
    """A builder: a dense layer (after a flatten of ``flatten_from`` when given)."""
    def build():
        _, layers = _layers()
        if flatten_from:
            return _model(flatten_from, lambda x: layers.Dense(units)(layers.Flatten()(x)))
        return _model((features,), layers.Dense(units))
    return build


def elementwise(kind: str, channels: int, size: int, repeat: int = 1) -> Callable:
    """A builder: ``repeat`` element-wise layers of ``kind`` (relu, bn, add, identity,
    gap, maxpool, shuffle)."""
    def build():
        _, layers = _layers()
        shape = (size, size, channels)
        if kind == "add":
            return _model(shape, lambda a, b: layers.Add()([a, b]), inputs=2)
        make = {"relu": layers.ReLU, "bn": layers.BatchNormalization,
                "identity": layers.Identity, "gap": layers.GlobalAveragePooling2D,
                "maxpool": lambda: layers.MaxPooling2D(3, 2, padding="same"),
                "shuffle": _shuffle}[kind]

        def body(x):
            for _ in range(repeat):
                x = make()(x)
            return x
        return _model(shape, body)
    return build


def _shuffle():
    from keras_cnnkit.layers.base import layer_class
    return layer_class("ChannelShuffle", "keras_cnnkit")(groups=4)


def _pair(before: Callable, after: Callable) -> Callable:
    return lambda: (before(), after())


def _separable(channels: int, size: int) -> Callable:
    def build():
        _, layers = _layers()
        return _model((size, size, channels), lambda x: layers.Conv2D(channels, 1)(
            layers.DepthwiseConv2D(3, padding="same")(x)))
    return build


def _bottleneck(channels: int, size: int) -> Callable:
    def build():
        _, layers = _layers()

        def body(x):
            x = layers.Conv2D(channels // 4, 1)(x)
            x = layers.Conv2D(channels // 4, 3, padding="same")(x)
            return layers.Conv2D(channels, 1)(x)
        return _model((size, size, channels), body)
    return build


def _factorised(channels: int, size: int, k: int) -> Callable:
    def build():
        _, layers = _layers()
        return _model((size, size, channels), lambda x: layers.Conv2D(
            channels, (k, 1), padding="same")(layers.Conv2D(channels, (1, k),
                                                            padding="same")(x)))
    return build


def _gap_head(channels: int, size: int, units: int) -> Callable:
    def build():
        _, layers = _layers()
        return _model((size, size, channels), lambda x: layers.Dense(units)(
            layers.GlobalAveragePooling2D()(x)))
    return build


def grid(name: str) -> list:
    """The fixed micro-benchmark grid ``name`` (``"cpu"``, ``"gpu"`` or ``"tiny"``)."""
    if name == "tiny":
        return [Entry("identity 8x8x8", elementwise("identity", 8, 8), (1,)),
                Entry("conv3x3 8->8 8x8", conv(8, 8, 8, 3), (1, 2)),
                Entry("conv5x5 8->8 8x8", conv(8, 8, 8, 5), (1,)),
                Entry("pointwise 8->16 8x8", conv(8, 16, 8, 1), (1, 2)),
                Entry("depthwise3x3 8 8x8", depthwise(8, 8), (1,)),
                Entry("dense 64->32", dense(64, 32), (1,)),
                Entry("bn 8x8x8", elementwise("bn", 8, 8), (1,)),
                Entry("conv-bn-relu 8 8x8", conv(8, 8, 8, 3, bn_relu=True), (1,))]
    if name == "cpu":
        return _cpu_grid()
    if name == "gpu":
        return _gpu_grid()
    raise ValueError(f"unknown calibration grid {name!r} (cpu, gpu, tiny)")


def _cpu_grid() -> list:
    one = (1,)
    return [
        Entry("identity 28x28x64", elementwise("identity", 64, 28)),
        Entry("conv3x3 16->16 28x28", conv(16, 16, 28, 3)),
        Entry("conv3x3 32->32 28x28", conv(32, 32, 28, 3)),
        Entry("conv3x3 64->64 14x14", conv(64, 64, 14, 3)),
        Entry("conv3x3 128->128 7x7", conv(128, 128, 7, 3)),
        Entry("conv3x3 256->256 7x7", conv(256, 256, 7, 3), one),
        Entry("conv3x3 3->32 56x56", conv(3, 32, 56, 3)),
        Entry("conv5x5 32->32 14x14", conv(32, 32, 14, 5)),
        Entry("conv7x7 32->32 14x14", conv(32, 32, 14, 7)),
        Entry("conv1x7 64->64 14x14", conv(64, 64, 14, (1, 7))),
        Entry("pointwise 64->64 28x28", conv(64, 64, 28, 1)),
        Entry("pointwise 128->512 7x7", conv(128, 512, 7, 1)),
        Entry("pointwise 256->64 14x14", conv(256, 64, 14, 1)),
        Entry("pointwise 16->64 56x56", conv(16, 64, 56, 1), one),
        Entry("depthwise3x3 32 28x28", depthwise(32, 28)),
        Entry("depthwise3x3 128 7x7", depthwise(128, 7)),
        Entry("depthwise3x3 256 14x14", depthwise(256, 14), one),
        Entry("depthwise5x5 64 14x14", depthwise(64, 14, 5), one),
        Entry("grouped1x1 g4 64 28x28", conv(64, 64, 28, 1, groups=4)),
        Entry("grouped3x3 g4 128 14x14", conv(128, 128, 14, 3, groups=4)),
        Entry("dense 2048->1000", dense(2048, 1000)),
        Entry("flatten-dense 7x7x128->1024", dense(0, 1024, (7, 7, 128))),
        Entry("bn 28x28x64", elementwise("bn", 64, 28)),
        Entry("relu 56x56x64", elementwise("relu", 64, 56)),
        Entry("add 28x28x128", elementwise("add", 128, 28)),
        Entry("gap 14x14x256", elementwise("gap", 256, 14)),
        Entry("maxpool3x3s2 56x56x64", elementwise("maxpool", 64, 56)),
        Entry("shuffle g4 28x28x64", elementwise("shuffle", 64, 28)),
        Entry("relu x4 28x28x64", elementwise("relu", 64, 28, repeat=4)),
        Entry("conv3x3 x4 16 14x14", conv(16, 16, 14, 3, chain=4)),
        Entry("conv-bn-relu 32 28x28", conv(32, 32, 28, 3, bn_relu=True)),
        Entry("pointwise-bn-relu 128->128 14x14", conv(128, 128, 14, 1, bn_relu=True)),
        Entry("depthwise-bn-relu6 64 14x14", depthwise(64, 14, bn_relu=True)),
    ]


def _gpu_grid() -> list:
    return [
        Entry("identity 56x56x128", elementwise("identity", 128, 56)),
        Entry("conv3x3 32->32 56x56", conv(32, 32, 56, 3)),
        Entry("conv3x3 64->64 112x112", conv(64, 64, 112, 3)),
        Entry("conv3x3 128->128 28x28", conv(128, 128, 28, 3)),
        Entry("conv3x3 256->256 28x28", conv(256, 256, 28, 3)),
        Entry("conv3x3 512->512 14x14", conv(512, 512, 14, 3)),
        Entry("conv3x3 1024->1024 7x7", conv(1024, 1024, 7, 3)),
        Entry("conv3x3 3->64 224x224", conv(3, 64, 224, 3)),
        Entry("conv5x5 64->64 56x56", conv(64, 64, 56, 5)),
        Entry("conv5x5 256->256 14x14", conv(256, 256, 14, 5)),
        Entry("conv7x7 64->64 56x56", conv(64, 64, 56, 7)),
        Entry("conv7x7 256->256 14x14", conv(256, 256, 14, 7)),
        Entry("conv1x7 128->128 28x28", conv(128, 128, 28, (1, 7))),
        Entry("conv1x7 512->512 7x7", conv(512, 512, 7, (1, 7))),
        Entry("pointwise 64->256 56x56", conv(64, 256, 56, 1)),
        Entry("pointwise 256->64 56x56", conv(256, 64, 56, 1)),
        Entry("pointwise 512->512 14x14", conv(512, 512, 14, 1)),
        Entry("pointwise 1024->1024 7x7", conv(1024, 1024, 7, 1)),
        Entry("depthwise3x3 64 112x112", depthwise(64, 112)),
        Entry("depthwise3x3 256 28x28", depthwise(256, 28)),
        Entry("depthwise3x3 1024 7x7", depthwise(1024, 7)),
        Entry("depthwise5x5 128 28x28", depthwise(128, 28, 5)),
        Entry("grouped1x1 g4 128 56x56", conv(128, 128, 56, 1, groups=4)),
        Entry("grouped3x3 g32 256 28x28", conv(256, 256, 28, 3, groups=32)),
        Entry("dense 4096->4096", dense(4096, 4096)),
        Entry("flatten-dense 7x7x512->1024", dense(0, 1024, (7, 7, 512))),
        Entry("bn 56x56x128", elementwise("bn", 128, 56)),
        Entry("relu 112x112x64", elementwise("relu", 64, 112)),
        Entry("add 56x56x256", elementwise("add", 256, 56)),
        Entry("gap 14x14x1024", elementwise("gap", 1024, 14)),
        Entry("maxpool3x3s2 112x112x64", elementwise("maxpool", 64, 112)),
        Entry("shuffle g4 56x56x128", elementwise("shuffle", 128, 56)),
        Entry("relu x4 56x56x128", elementwise("relu", 128, 56, repeat=4)),
        Entry("conv3x3 x4 64 28x28", conv(64, 64, 28, 3, chain=4)),
        Entry("conv-bn-relu 128 56x56", conv(128, 128, 56, 3, bn_relu=True)),
        Entry("pointwise-bn-relu 256->256 28x28", conv(256, 256, 28, 1, bn_relu=True)),
        Entry("depthwise-bn-relu6 256 28x28", depthwise(256, 28, bn_relu=True)),
    ]


def check_cases(name: str) -> list:
    """The held-out before/after pairs of grid ``name``."""
    if name == "tiny":
        return [Pair("conv3x3 -> separable 8 8x8", _pair(conv(8, 8, 8, 3), _separable(8, 8)),
                     (1,))]
    c, s = (64, 14) if name == "cpu" else (256, 28)
    return [
        Pair(f"conv3x3 -> depthwise-separable {c} {s}x{s}",
             _pair(conv(c, c, s, 3), _separable(c, s))),
        Pair(f"conv3x3 -> bottleneck {c} {s}x{s}",
             _pair(conv(c, c, s, 3), _bottleneck(c, s))),
        Pair(f"conv5x5 -> two 3x3 {c // 2} {s}x{s}",
             _pair(conv(c // 2, c // 2, s, 5), conv(c // 2, c // 2, s, 3, chain=2))),
        Pair(f"conv7x7 -> 1x7 + 7x1 {c // 2} {s}x{s}",
             _pair(conv(c // 2, c // 2, s, 7), _factorised(c // 2, s, 7))),
        Pair(f"flatten-dense -> gap-dense {c} 7x7",
             _pair(dense(0, 1024, (7, 7, c)), _gap_head(c, 7, 1024))),
    ]


# --- measuring ------------------------------------------------------------------------


def model_nodes(model) -> list:
    """The IR nodes of ``model`` (its input nodes left out: they run no kernel)."""
    from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
    graph = graph_from_keras(model)
    return [n for n in graph if n.name not in graph.inputs]


def time_side_by_side(models: Sequence, batch: int, budget_s: float) -> list:
    """ms per call of each of ``models`` (timed interleaved) at ``batch``: the one place
    this package times anything (:func:`keras_cnnkit.bench.time_models`).

    Each sample averages back-to-back calls over at least 20 ms; of the samples, the
    fastest is kept, not the median: on a shared machine other work only ever adds time,
    and a profile should describe the device, not its neighbours' load.
    """
    from keras_cnnkit.bench.timing import time_models
    timings, _ = time_models(list(models), batch, warmup=2, repeats=5, min_sample_s=0.02,
                             budget_s=budget_s, max_rel_iqr=0.15, retries=1)
    return [t.min_ms for t in timings]


def measure_grid(entries: Sequence[Entry], budget_s: float = 1.0,
                 progress: Optional[Callable[[str], None]] = None) -> list:
    """One :class:`Observation` per entry and batch; ``group`` is the entry's label."""
    out = []
    for entry in entries:
        model = entry.build()
        nodes = model_nodes(model)
        for batch in entry.batches:
            if progress:
                progress(f"{entry.label} b{batch}")
            (ms,) = time_side_by_side([model], batch, budget_s)
            out.append(Observation(nodes, batch, ms, entry.label, entry.label))
    return out


def measure_pairs(pairs: Sequence[Pair], budget_s: float = 2.0,
                  progress: Optional[Callable[[str], None]] = None) -> list:
    """One :class:`Case` per pair and batch, both sides timed interleaved."""
    out = []
    for pair in pairs:
        before, after = pair.build()
        nodes = (model_nodes(before), model_nodes(after))
        for batch in pair.batches:
            if progress:
                progress(f"{pair.label} b{batch}")
            before_ms, after_ms = time_side_by_side([before, after], batch, budget_s)
            out.append(Case(pair.label, pair.label, batch, nodes[0], nodes[1], before_ms,
                            after_ms))
    return out


def default_grid() -> str:
    """``"gpu"`` when the Keras backend computes on a GPU, else ``"cpu"``."""
    from keras_cnnkit.bench.device import detect
    return "gpu" if detect().is_gpu else "cpu"


def calibrate(name: str = LOCAL, grid_name: Optional[str] = None,
              cpu_threads: Optional[int] = None, path: Optional[str] = None,
              progress: Optional[Callable[[str], None]] = None,
              dtype: str = "float32", measurements_path: Optional[str] = None) -> tuple:
    """Measure the local device on a fixed grid, fit its profile and write it.

    Args:
        name: the profile's name (``local``: the default profile from then on).
        grid_name: ``"cpu"``, ``"gpu"`` or ``"tiny"``; default by the device.
        cpu_threads: limit the backend's CPU threads first (1 gives steadier timings on
            a shared machine; the profile records it).
        path: where to write the profile; default ``<cache_dir()>/<name>.json``.
        progress: called with a short label before each measurement.
        dtype: the dtype the profile is for (only ``float32`` is measured here).
        measurements_path: also write the raw measurements there
            (:func:`~keras_cnnkit.latency.data.write_measurements`), to refit later.

    Returns:
        ``(profile, path)``.
    """
    from keras_cnnkit.bench.device import detect, set_cpu_threads
    if cpu_threads:
        set_cpu_threads(cpu_threads)
    device = detect()
    grid_name = grid_name or ("gpu" if device.is_gpu else "cpu")
    started = time.perf_counter()
    observations = measure_grid(grid(grid_name), progress=progress)
    cases = measure_pairs(check_cases(grid_name), progress=progress)
    seconds = time.perf_counter() - started
    meta = {"device": device.to_dict(), "backend": device.backend, "dtype": dtype,
            "cpu_threads": cpu_threads, "grid": grid_name, "date": time.strftime("%Y-%m-%d"),
            "seconds": round(seconds, 1)}
    if measurements_path:
        write_measurements(measurements_path, meta, observations, cases)
    profile = fit_from_measurements(
        observations, cases, name=name, kind=device.kind, device_name=device.name,
        backend=device.backend, dtype=dtype, cpu_threads=cpu_threads,
        provenance={"source": f"calibrate() grid {grid_name!r} on this machine",
                    "grid": grid_name, "measure_seconds": round(seconds, 1)})
    path = path or os.path.join(cache_dir(), f"{name}.json")
    profile.save(path)
    return profile, path


def fit_from_measurements(observations: Sequence[Observation], cases: Sequence[Case],
                          name: str, kind: str, device_name: str, backend: str,
                          dtype: str = "float32", cpu_threads: Optional[int] = None,
                          provenance: Optional[dict] = None) -> Profile:
    """A profile fitted on ``observations`` (and the training sides of nothing else),
    with its error figures measured on the held-out ``cases``."""
    compile_mode = {"tensorflow": "xla", "jax": "jit"}.get(backend, "eager")
    start = nominal_profile(name, kind, device_name, backend, dtype, compile_mode,
                            cpu_threads)
    # a calibration grid times each kernel size other than 3×3 at one or two shapes:
    # one power law in taps over them is steadier than a factor per size (the packaged
    # profiles, fitted on rule grids that time each size at many shapes, use factors)
    profile = fit_profile(observations, start, name, provenance=provenance,
                          kernel_fit="power")
    profile.errors = {"held_out": evaluate(cases, profile) if cases else {},
                      "held_out_source": "the calibration's before/after pairs "
                                         "(not in the fit)"}
    return profile
