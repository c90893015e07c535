"""The Python entry points of the benchmark: a model, a path or a lint report in, results out.

``benchmark(model_or_path)`` lints (for a path, with the static file frontend: nothing in
the file is imported or run), then times every fix; ``benchmark_report(report)`` times the
fixes of a report already made (every alternative of every reported site) and attaches
the result to it (:meth:`~keras_cnnkit.lint.report.Report.attach_benchmark`: the report
rebuilds its sites, so that the fastest measured alternative is recommended, and shows
the figures; the rules' findings are not edited).  The whole-model A/B applies the fixes
a bare ``--fix`` would, once the measurements are in.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Optional

from keras_cnnkit.bench.harness import BenchResult, benchmark_findings
from keras_cnnkit.lint.sites import build_sites
from keras_cnnkit.rewrite.plan import select_findings


def benchmark_report(report, model: Any = None, **kwargs: Any) -> BenchResult:
    """Benchmark the fixes of a lint ``report`` and attach the result to it.

    Args:
        report: a :class:`~keras_cnnkit.lint.report.Report` (it carries the graph).
        model: the live Keras model the report was made from, if any (a fallback for the
            whole-model A/B when the graph has opaque layers).
        **kwargs: see :func:`~keras_cnnkit.bench.harness.benchmark_findings`
            (``batches``, ``dtype``, ``train``, ``whole_model``, ``progress``...).
    """
    if getattr(report, "graph", None) is None:
        raise ValueError("the report carries no graph to benchmark")

    def choose(measured: BenchResult) -> list:
        """The bare ``--fix`` choice, with the measurements deciding."""
        sites = build_sites(report.findings, dataclasses.replace(report.context(),
                                                                 bench=measured,
                                                                 batches=measured.batches))
        return select_findings(sites, graph=report.graph)[0]

    result = benchmark_findings(report.graph, report.findings, model=model, choose=choose,
                                **kwargs)
    report.attach_benchmark(result)
    return result


def benchmark(target: Any, select: Optional[Iterable[str]] = None,
              ignore: Optional[Iterable[str]] = None, **kwargs: Any) -> tuple:
    """Lint ``target`` (a Keras model, a model file path or a graph) and time its fixes.

    Returns ``(report, result)``: the lint report, with the result attached and its
    findings ordered by measured saving, and the :class:`BenchResult`.
    """
    from keras_cnnkit.lint.api import lint
    report = lint(target, select=select, ignore=ignore)
    model = target if hasattr(target, "count_params") else None
    return report, benchmark_report(report, model=model, **kwargs)
