"""The Python API of the linter: ``keras_cnnkit.lint(model_or_path, ...) -> Report``.

The pipeline, one stage per module: a frontend makes the graph IR
(:mod:`~keras_cnnkit.analysis.frontends.keras_live` for a live model, the static file
frontend for a path), the cost model summarises it (:mod:`keras_cnnkit.analysis.cost`),
the selected rules (:mod:`keras_cnnkit.lint.registry`) yield findings, and a
:class:`~keras_cnnkit.lint.report.Report` holds both.  Importing this module imports
neither Keras nor TensorFlow.
"""
from __future__ import annotations

import os
from typing import Iterable, Mapping, Optional, Sequence, Union

from keras_cnnkit.analysis.cost import summarize
from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.budgets import Budgets, using
from keras_cnnkit.errors import CnnkitError, ConfigError
from keras_cnnkit.latency import Profile, ProfileError, resolve_profile
from keras_cnnkit.lint import registry
from keras_cnnkit.lint.report import Report
from keras_cnnkit.lint.sites import DEFAULT_MIN_IMPACT

__all__ = ["Report", "RuleError", "graph_of", "lint", "lint_graph"]


class RuleError(CnnkitError, RuntimeError):
    """A rule raised an exception while checking a graph."""


def graph_of(model_or_path, input_shape: Optional[Sequence[int]] = None) -> Graph:
    """The graph IR of a live Keras model, a model file path or a :class:`Graph`."""
    if isinstance(model_or_path, Graph):
        if input_shape is None:
            return model_or_path
        from keras_cnnkit.analysis.shapes import propagate_shapes
        return propagate_shapes(model_or_path,
                                {model_or_path.inputs[0]: tuple(input_shape)})
    if isinstance(model_or_path, (str, os.PathLike)):
        return _file_graph(os.fspath(model_or_path), input_shape)
    if hasattr(model_or_path, "layers") and hasattr(model_or_path, "count_params"):
        from keras_cnnkit.analysis.frontends.keras_live import (
            UnsupportedModelError,
            graph_from_keras,
        )
        try:
            return graph_from_keras(model_or_path, input_shape=input_shape)
        except UnsupportedModelError:
            # A subclassed model: trace it through ONNX (needs input_shape).
            from keras_cnnkit.analysis.frontends.trace import graph_from_subclassed
            return graph_from_subclassed(model_or_path, input_shape)
    raise TypeError(f"lint() takes a Keras model, a model file path or a Graph, got "
                    f"{type(model_or_path).__name__}")


def _file_graph(path: str, input_shape: Optional[Sequence[int]]) -> Graph:
    """The static frontend's graph of model file ``path``; any problem with the file is
    a :class:`~keras_cnnkit.errors.ModelFileError` (see
    :func:`~keras_cnnkit.analysis.frontends.keras_gate.read_statically`)."""
    try:
        from keras_cnnkit.analysis.frontends.keras_gate import read_statically
    except ImportError as exc:
        raise CnnkitError(f"{path}: linting model files needs the static file frontend, "
                          f"which cannot be imported ({exc})") from exc
    return read_statically(path, input_shape)


def device_profile(name=None) -> tuple:
    """``(profile, note)`` of a ``device_profile`` argument: a :class:`Profile` as is;
    ``False`` for no predictions (``(None, "")``); else a profile name or path, ``None``
    for the default (the calibrated local profile if any, else ``cpu-generic``), as
    :func:`keras_cnnkit.latency.resolve_profile` chooses it.

    Raises:
        ConfigError: no such profile, or an unreadable one.
    """
    if name is False:
        return None, ""
    if isinstance(name, Profile):
        return name, f"device profile {name.label()} (given)"
    try:
        return resolve_profile(name)
    except (ProfileError, OSError) as exc:
        raise ConfigError("--device-profile", str(exc)) from None


def lint_graph(graph: Graph, select: Optional[Iterable[str]] = None,
               ignore: Optional[Iterable[str]] = None, rules: Optional[list] = None,
               options: Optional[dict] = None, min_impact: float = DEFAULT_MIN_IMPACT,
               profile=None) -> Report:
    """Lint a graph IR.

    Args:
        graph: the model's graph.
        select / ignore: rule selectors (codes like ``"CNK103"``, code prefixes like
            ``"CNK1"``, symbols like ``"missing-bottleneck"``, or ``"ALL"``); default:
            every registered rule.  They choose the rules that run, so an ignored rule's
            alternative is in no site.
        rules: rule instances to run instead of selecting from the registry.
        options: keyword arguments per rule symbol or code (``{"plain-deep-stack":
            {"min_depth": 30}}``).
        min_impact: sites saving less than this share of both the model's FLOPs and its
            parameters are kept in ``Report.below_impact``, not reported (0: report all).
        profile: the device profile of the predicted speed-ups (see
            :func:`device_profile`).

    Raises:
        ConfigError: a selector names no rule, or no such device profile.
        RuleError: a rule failed.
    """
    if rules is None:
        rules = registry.instantiate(registry.select_rules(select, ignore), options)
    findings = []
    for rule in rules:
        try:
            findings.extend(rule.check(graph))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise RuleError(f"rule {rule.code} {rule.symbol} failed on model "
                            f"{graph.name!r}: {type(exc).__name__}: {exc}") from exc
    chosen, note = device_profile(profile)
    return Report(model=graph.name, source=graph.source, summary=summarize(graph),
                  findings=findings, rules=[r.code for r in rules], graph=graph,
                  min_impact=min_impact, profile=chosen, profile_note=note)


def lint(model_or_path, select: Optional[Iterable[str]] = None,
         ignore: Optional[Iterable[str]] = None,
         input_shape: Optional[Sequence[int]] = None,
         options: Optional[dict] = None, min_impact: float = DEFAULT_MIN_IMPACT,
         profile=None,
         budgets: Union[None, Budgets, Mapping[str, int]] = None) -> Report:
    """Lint a Keras model or a model file.

    Args:
        model_or_path: a built Functional or Sequential ``keras.Model``; a path to a
            ``.keras``/``.h5``/``.json``/``.onnx`` model file (read statically, never
            executed); or a :class:`~keras_cnnkit.analysis.ir.Graph`.
        select / ignore: rule selectors (codes, code prefixes, symbols or ``"ALL"``).
        input_shape: batch-excluded input shape for models whose spatial size is unknown.
        options: keyword arguments per rule (see :func:`lint_graph`).
        min_impact: the reporting threshold (default 1%; see :func:`lint_graph`).
        profile: device profile name or path, a :class:`~keras_cnnkit.latency.Profile`,
            ``None`` for the default, ``False`` for no predictions.
        budgets: the budgets reading a file may use (:mod:`keras_cnnkit.budgets`): a
            ``Budgets`` or a mapping of the ones to change (``{"max-nodes": 500_000}``);
            default: the current ones.

    Returns:
        a :class:`~keras_cnnkit.lint.report.Report`: one finding per site, the sites
        under ``min_impact`` in ``below_impact``.

    Raises:
        ModelFileError: ``model_or_path`` is a file that cannot be read or analysed, for
            whatever reason (``BudgetError``, its subclass, when it asks for more than
            a budget allows); nothing else is raised for a bad file.
        ConfigError: a selector names no rule, a budget is not a positive integer, or
            no such device profile.
    """
    with using(budgets):
        graph = graph_of(model_or_path, input_shape=input_shape)
    return lint_graph(graph, select=select, ignore=ignore, options=options,
                      min_impact=min_impact, profile=profile)
