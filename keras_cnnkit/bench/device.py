"""Which Keras backend runs, and on which device: the best one present, a GPU if any.

Works on the ``tensorflow``, ``jax`` and ``torch`` backends; each is asked in its own
terms (``tf.config``, ``jax.devices()``, ``torch.cuda``).  Keras itself places work on
the GPU when the backend sees one, so detection is all the harness needs to do.
"""
from __future__ import annotations

import dataclasses
import os
import platform
from typing import Optional


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """The device benchmarks run on.

    Attributes:
        backend: the Keras backend (``"tensorflow"``, ``"jax"``, ``"torch"``).
        kind: ``"gpu"`` or ``"cpu"``.
        name: the device's model name (``"NVIDIA H100 80GB HBM3"``, the CPU's model).
        count: how many devices of that kind the backend sees.
    """

    backend: str
    kind: str
    name: str
    count: int = 1

    @property
    def is_gpu(self) -> bool:
        """True on a GPU."""
        return self.kind == "gpu"

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def to_dict(self) -> dict:
        """Plain-dict form for JSON reports."""
        return {"backend": self.backend, "kind": self.kind, "name": self.name,
                "count": self.count, "label": str(self)}


def cpu_name() -> str:
    """The CPU model and the number of cores this process may use."""
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "cpu"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return f"{name} ({cores} cores)"


def _tensorflow() -> tuple:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "cpu", cpu_name(), 1
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name")
    except (ValueError, RuntimeError, AttributeError):
        name = None
    return "gpu", name or gpus[0].name, len(gpus)


def _jax() -> tuple:
    import jax  # pylint: disable=import-error  # optional backend
    devices = jax.devices()
    gpus = [d for d in devices if d.platform in ("gpu", "cuda", "rocm")]
    if gpus:
        return "gpu", getattr(gpus[0], "device_kind", "gpu"), len(gpus)
    return "cpu", cpu_name(), 1


def _torch() -> tuple:
    import torch  # pylint: disable=import-error  # optional backend
    if torch.cuda.is_available():
        return "gpu", torch.cuda.get_device_name(0), torch.cuda.device_count()
    return "cpu", cpu_name(), 1


_DETECTORS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


def detect(backend: Optional[str] = None) -> DeviceInfo:
    """The device the given (default: the active) Keras backend computes on."""
    if backend is None:
        import keras
        backend = keras.backend.backend()
    detector = _DETECTORS.get(backend)
    if detector is None:
        return DeviceInfo(backend, "cpu", cpu_name())
    kind, name, count = detector()
    return DeviceInfo(backend, kind, name, count)


def set_cpu_threads(threads: int, backend: Optional[str] = None) -> None:
    """Limit the threads the backend computes with on the CPU; call before any work.

    On a shared machine, one thread per process gives far steadier timings than a
    thread pool that waits for the scheduler.  TensorFlow: intra/inter-op pools and
    XLA's Eigen pool; JAX: XLA's flags (read when JAX starts, so only before that);
    PyTorch: ``torch.set_num_threads``.

    Raises:
        RuntimeError: the backend has already started and can no longer be limited.
    """
    if backend is None:
        import keras
        backend = keras.backend.backend()
    if backend in ("tensorflow", "jax") and threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()
    if backend == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    elif backend == "torch":
        import torch  # pylint: disable=import-error  # optional backend
        torch.set_num_threads(threads)
    elif backend == "jax" and threads != 1:
        raise RuntimeError("on JAX only one CPU thread (XLA flags) can be requested")


def gpu_available(backend: Optional[str] = None) -> tuple:
    """``(True, device name)`` when the backend sees a GPU, else ``(False, reason)``."""
    try:
        info = detect(backend)
    except ImportError as exc:
        return False, f"the Keras backend cannot be imported: {exc}"
    if info.is_gpu:
        return True, info.name
    return False, f"no GPU visible to the {info.backend} backend (running on {info.name})"
