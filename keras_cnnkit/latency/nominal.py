"""Starting profiles: a device's nominal peak and bandwidth, with textbook efficiencies.

A fit starts from, and is weakly regularised towards, a nominal profile
(:func:`nominal_profile`).  Its peak FLOP rate and memory bandwidth come from the
vendor's spec sheet for the GPUs in :data:`GPU_SPECS` (dense tensor-core rates: ``float32``
means TF32, which is what the backends use by default on these GPUs); for a CPU they
are round reference figures, since only ``peak · efficiency`` matters and the fit finds
that product.  The starting efficiencies and launch times are typical values, not
measurements; a class the measurements do not cover keeps them, marked ``fitted: false``.
"""
from __future__ import annotations

import time
from typing import Optional

from keras_cnnkit.latency.classes import LATENCY_CLASSES
from keras_cnnkit.latency.profile import ClassParams, Profile

#: Spec-sheet figures (SXM parts, dense): bytes/s and FLOP/s per dtype.
GPU_SPECS = {
    "H200": {"bandwidth": 4.8e12, "float32": 494.7e12, "bfloat16": 989.4e12,
             "float16": 989.4e12, "source": "NVIDIA H200 SXM spec sheet (dense tensor core)"},
    "H100": {"bandwidth": 3.35e12, "float32": 494.7e12, "bfloat16": 989.4e12,
             "float16": 989.4e12, "source": "NVIDIA H100 SXM spec sheet (dense tensor core)"},
    "A100": {"bandwidth": 2.039e12, "float32": 156e12, "bfloat16": 312e12,
             "float16": 312e12, "source": "NVIDIA A100 80GB SXM spec sheet (dense tensor core)"},
}
#: Reference figures for a GPU not in :data:`GPU_SPECS`, and for a CPU (per profile).
GENERIC_GPU = {"bandwidth": 1e12, "peak": 100e12}
GENERIC_CPU = {"bandwidth": 2e10, "peak": 1e11}

#: Starting (efficiency F, efficiency B, launch ms, depth rate FLOP/s) per class and
#: device kind.  A GPU needs many outputs in flight to reach its peak: the depth rate
#: gives a kernel with few outputs a floor of ``depth / rate``.  A CPU thread has no such
#: floor (``None``).
_START = {
    "gpu": {"conv": (0.5, 0.5, 0.004, 1e9), "pointwise": (0.5, 0.6, 0.004, 1e9),
            "depthwise": (0.05, 0.4, 0.004, 1e9), "grouped": (0.1, 0.4, 0.004, 1e9),
            "dense": (0.5, 0.7, 0.004, 1e9), "elementwise": (1.0, 0.7, 0.003, None),
            "norm": (1.0, 0.6, 0.003, None), "reduction": (1.0, 0.5, 0.004, 1e9),
            "movement": (1.0, 0.5, 0.003, None), "none": (1.0, 1.0, 0.0, None)},
    "cpu": {"conv": (0.5, 0.5, 0.002, None), "pointwise": (0.6, 0.5, 0.002, None),
            "depthwise": (0.1, 0.3, 0.002, None), "grouped": (0.2, 0.3, 0.002, None),
            "dense": (0.5, 0.5, 0.002, None), "elementwise": (1.0, 0.5, 0.002, None),
            "norm": (1.0, 0.5, 0.002, None), "reduction": (1.0, 0.5, 0.002, None),
            "movement": (1.0, 0.4, 0.002, None), "none": (1.0, 1.0, 0.0, None)},
}
_OVERHEAD_MS = {"gpu": 0.05, "cpu": 0.1}
#: Starting channel tile (output channels per kernel tile) of the matrix-product classes.
_TILE = {"gpu": {"conv": 32.0, "pointwise": 32.0, "grouped": 32.0, "dense": 32.0},
         "cpu": {}}


def gpu_spec(device_name: str) -> Optional[dict]:
    """The :data:`GPU_SPECS` entry whose key is in ``device_name``, or ``None``."""
    for key, spec in GPU_SPECS.items():
        if key in device_name.upper():
            return spec
    return None


def nominal_profile(name: str, kind: str, device_name: str, backend: str,
                    dtype: str = "float32", compile_mode: str = "",
                    cpu_threads: Optional[int] = None) -> Profile:
    """A starting profile for a device of ``kind`` (``"gpu"`` or ``"cpu"``)."""
    dtype_bytes = 2 if dtype in ("bfloat16", "float16", "mixed_float16",
                                 "mixed_bfloat16") else 4
    spec = gpu_spec(device_name) if kind == "gpu" else None
    if spec is not None:
        key = "float32" if dtype_bytes == 4 else ("float16" if "float16" in dtype
                                                  else "bfloat16")
        peak, bandwidth, source = spec[key], spec["bandwidth"], spec["source"]
    else:
        ref = GENERIC_GPU if kind == "gpu" else GENERIC_CPU
        peak, bandwidth = ref["peak"], ref["bandwidth"]
        source = "reference figures (not a spec sheet): only peak × efficiency matters"
    math_mode = "tf32" if kind == "gpu" and dtype_bytes == 4 and spec is not None else dtype
    start = _START[kind]
    return Profile(
        name=name, device={"kind": kind, "name": device_name}, backend=backend, dtype=dtype,
        dtype_bytes=dtype_bytes, math=math_mode, compile=compile_mode,
        cpu_threads=cpu_threads, date=time.strftime("%Y-%m-%d"), peak_flops=peak,
        bandwidth=bandwidth, peak_source=source, call_overhead_ms=_OVERHEAD_MS[kind],
        classes={c: ClassParams(*start[c], channel_tile=_TILE[kind].get(c))
                 for c in LATENCY_CLASSES},
        fusion={"after_compute": 1.0, "after_elementwise": 0.1})
