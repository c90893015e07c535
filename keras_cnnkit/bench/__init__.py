"""``keras_cnnkit.bench``: measured savings of lint fixes on the best device present.

* :func:`benchmark`: lint a model (or a model file, read statically) and time every fix.
* :func:`benchmark_report`: time the fixes of a lint report already made.
* :func:`benchmark_findings`: time given findings' replacements on a graph.
* :func:`detect` / :func:`gpu_available`: backend and device detection.
* :func:`measure` / :func:`measure_interleaved` / :func:`time_model`: timing primitives.

Importing it imports Keras.
"""
from keras_cnnkit.bench.api import benchmark, benchmark_report
from keras_cnnkit.bench.device import DeviceInfo, detect, gpu_available
from keras_cnnkit.bench.harness import (DEFAULT_BATCHES, DTYPES, BenchResult, Comparison,
                                        benchmark_findings, order_findings)
from keras_cnnkit.progress import Progress
from keras_cnnkit.bench.timing import (Timing, measure, measure_interleaved, time_model,
                                       time_models)

__all__ = [
    "DEFAULT_BATCHES", "DTYPES", "BenchResult", "Comparison", "DeviceInfo", "Progress",
    "Timing", "benchmark", "benchmark_findings", "benchmark_report", "detect",
    "gpu_available", "measure", "measure_interleaved", "order_findings",
    "time_model", "time_models",
]
