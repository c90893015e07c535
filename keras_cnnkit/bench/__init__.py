"""``keras_cnnkit.bench``: measured savings of lint fixes on the best device present.

* :func:`benchmark`: lint a model (or take a report) and time every fix.
* :func:`benchmark_findings`: time given findings' replacements on a graph.
* :func:`detect` / :func:`gpu_available`: backend and device detection.
* :func:`measure` / :func:`time_model`: the timing primitives.
"""
import importlib

_EXPORTS = {
    "benchmark": "api", "benchmark_report": "api",
    "benchmark_findings": "harness", "BenchResult": "harness", "Comparison": "harness",
    "order_findings": "harness", "finding_label": "harness", "DTYPES": "harness",
    "DEFAULT_BATCHES": "harness",
    "detect": "device", "gpu_available": "device", "DeviceInfo": "device",
    "measure": "timing", "time_model": "timing", "Timing": "timing",
    "Progress": "progress",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    """Import the submodule defining ``name`` on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
