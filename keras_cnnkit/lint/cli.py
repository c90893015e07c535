"""``cnnkit-lint``: lint Keras model files from the command line, in terminals and CI.

Usage::

    cnnkit-lint [options] PATH...
    cnnkit-lint --benchmark [--train] [--dtype DTYPE] PATH... [--batch N [N ...]]
    cnnkit-lint --fix [--fix-select RULES] [--force] [--fold-bn] [--rank R]
                [--calibration-data DATA] [--max-error X] [--finetune DATA.npz
                [--epochs N]] [--reinitialise] PATH -o FIXED
    cnnkit-lint --calibrate
    cnnkit-lint --list-rules
    cnnkit-lint --explain CODE

One finding per site (:mod:`keras_cnnkit.lint.sites`): the rules' findings on the same
layers are one finding with alternatives; the recommended one is the fastest measured
(``--benchmark``), else predicted on the device profile (``--device-profile``; default:
the calibrated local profile if any, else ``cpu-generic``), else the largest FLOP
saving, and never one measured or predicted slower.  Findings saving less than
``--min-impact`` (default 1%) of both the model's FLOPs and its parameters are counted,
not shown; the others are listed largest impact first.

Model files (``.keras``, ``.h5``/``.hdf5``, JSON configs, ``.onnx``; recognised by
content) are read statically: neither TensorFlow nor Keras is imported and nothing in the
file is executed.  Linting needs only the base install; ``.onnx`` files need the ``onnx``
package (the ``export`` extra), ``--fix`` and ``--benchmark`` a Keras backend (the
``tensorflow`` extra).  A missing one is a one-line error naming the extra, exit status 2.

Two modes import Keras:

``--benchmark``
    times each finding's fix (its original subgraph against the replacement, built from
    the statically read graph with random weights: nothing in the file runs) and the
    whole model with all fixes against the original, on the best device present
    (:mod:`keras_cnnkit.bench`).  Findings are then ordered by measured saving; what
    could not be built (opaque layers) is named as skipped.  Exit status as for linting.
``--fix``
    loads the one model file safely (a ``Lambda`` is refused, never run), applies the
    fixes of the findings it would report (after ``--select``/``--ignore``, per-layer
    ignores and the baseline; ``--fix-select`` narrows them) and writes the fixed model
    atomically to ``-o`` (here the model file, not the report), never over the input
    and over an existing file only with ``--force``.  It prints each fix, whether the
    model needs retraining, and the whole model's params and FLOPs before and after
    (JSON with ``--format json``; the other formats print text).  A bare ``--fix``
    applies each site's recommended alternative (with the exact fixes that merge into
    it), never one measured or predicted slower; ``--fix-select`` picks alternatives by
    rule, slower ones included.  The fixes carry the trained weights into their new
    layers where a method exists (exact copies; truncated SVD, Tucker-2, spatial SVD,
    depthwise × pointwise SVD, stacked-kernel least squares, GAP head: approximate, at
    the rule's width or ``--rank``); ``--reinitialise`` starts them from their
    initialisers.  Each fix's fidelity (its subgraph's relative output error, the whole
    model's output error, top-1 agreement for classifiers) is printed beside its saving,
    measured on ``--calibration-data`` (which also refits the approximate fixes by
    least squares) or on random inputs, a weak proxy; ``--max-error`` refuses the fixes
    above it; ``--finetune DATA.npz --epochs N`` distils the fixed model from the
    original before writing it.  Exit status 0 once written, 2 on any error.
``--calibrate``
    times a grid of ops on this machine (about a minute), fits a device profile and
    writes it to the user's cache directory, where it becomes the default profile.

Both modes draw a progress bar on stderr when it is a terminal (not with ``-q``) and keep
TensorFlow's C++ start-up lines off stderr (:mod:`keras_cnnkit.console`).

Exit status:

===  =====================================================================================
 0   no finding at or above ``--fail-on`` (default: ``warning``), or ``--exit-zero``
 1   at least one finding at or above ``--fail-on``
 2   usage, configuration or input error: a bad flag or config, a missing, unreadable
     or invalid model file (the other files of the run are still linted and reported)
130  interrupted (Ctrl-C)
===  =====================================================================================

Each input error is one line on stderr, ``cnnkit-lint: error: <file>: <problem>``; no
traceback is ever shown for bad input.  Every file is read and written through
:mod:`keras_cnnkit.io_guard`: inputs must be regular files; ``-o``, ``--write-baseline``
and ``--fix -o`` never resolve to an input (model, configuration, baseline), whatever
the flags; writes are atomic, with the umask's permissions; no baseline is written when a
model failed to lint.

What a model file may ask for is bounded by budgets (:mod:`keras_cnnkit.budgets`),
checked before the work: a file over budget is one line naming the budget, its limit and
the file's value, exit status 2.  ``--budget NAME=N`` (or ``[tool.cnnkit-lint.budgets]``)
raises one for a giant model.  ``--fix`` and ``--benchmark`` read the file within the
budgets before Keras sees it.

Settings come from ``pyproject.toml`` ``[tool.cnnkit-lint]``, ``setup.cfg`` or
``tox.ini`` ``[cnnkit-lint]`` (see :mod:`keras_cnnkit.lint.config`); flags override them.
"""
from __future__ import annotations

import argparse
import fnmatch
import functools
import logging
import os
import re
import sys
from typing import Optional, Sequence

from keras_cnnkit import console, progress
from keras_cnnkit.budgets import BudgetError, check, parse_assignment, using
from keras_cnnkit.errors import CnnkitError, ConfigError, ModelFileError
from keras_cnnkit.io_guard import check_output_path, require_regular_file, write_atomic
from keras_cnnkit.lint import config as lint_config
from keras_cnnkit.lint import parallel
from keras_cnnkit.lint.baseline import Baseline, write_baseline
from keras_cnnkit.lint.findings import Severity
from keras_cnnkit.lint.formatters import FORMATTERS, FileResult, RuleInfo
from keras_cnnkit.lint.selectors import any_matches

PROG = "cnnkit-lint"
EXIT_OK, EXIT_FINDINGS, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
#: ``--dtype`` choices: :data:`keras_cnnkit.bench.harness.DTYPES`, repeated here because
#: importing the harness imports Keras (a test checks that they agree).
BENCH_DTYPES = ("float32", "mixed_float16", "bfloat16")

_EPILOG = f"""\
exit status: 0 no finding at or above --fail-on; 1 findings; 2 usage, config or input
error (other files are still linted); 130 interrupted.

--fix and --benchmark import Keras (pip install "keras-cnnkit[tensorflow]"); plain
linting never does.  With --fix, -o names the fixed model file (required), not the
report; --fix exits 0 once the model is written, 2 on any error.  Put PATH before
--batch (or use --).

Unknown input dimensions default to {lint_config.DEFAULT_SPATIAL} (e.g. (None, None, 3) is
linted as (224, 224, 3)); --input-shape overrides.  Settings: pyproject.toml
[tool.cnnkit-lint], setup.cfg or tox.ini [cnnkit-lint], nearest to the working directory.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line ``cnnkit-lint: error: ...`` form and exit status 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def _csv(text: str) -> list:
    return [p.strip() for p in text.split(",") if p.strip()]


def _budget(text: str) -> tuple:
    try:
        return parse_assignment(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


_RANK_RE = re.compile(r"^\s*(\d+|(energy|ratio)\s*:\s*(0?\.\d+|1(\.0*)?|0\.\d*))\s*$",
                      re.IGNORECASE)


def _rank(text: str) -> str:
    """``--rank``: ``energy:X``, ``ratio:X`` (0 < X ≤ 1) or a positive integer (checked
    again, with its reason, by :class:`keras_cnnkit.rewrite.decompose.RankRule`)."""
    match = _RANK_RE.match(text)
    if match is None or text.strip() == "0" or (
            match.group(3) is not None and float(match.group(3)) <= 0):
        raise argparse.ArgumentTypeError(
            f"not a rank: {text!r} (use energy:0.95, ratio:0.25 or an integer)")
    return text.strip().lower()


def _error_fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0.0:  # NaN too
        raise argparse.ArgumentTypeError(f"not a positive relative error: {text!r} "
                                         "(0.05 is 5%)")
    return value


def _positive_int(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    from keras_cnnkit import __version__

    parser = _Parser(prog=PROG, description="Lint Keras CNN model files: each finding "
                     "names an inefficiency and the exact parameters and FLOPs its fix "
                     "saves.", epilog=_EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="model files: .keras, .h5/.hdf5, Keras JSON configs or .onnx "
                             "(recognised by content, not by suffix)")
    parser.add_argument("-j", "--jobs", type=parallel.jobs_argument, default=1, metavar="N",
                        help="lint the files in N worker processes (0: one per CPU; "
                             "default 1); the output is the serial run's")
    out = parser.add_argument_group("output")
    out.add_argument("--format", choices=lint_config.FORMATS, default=None,
                     help="output format (default: text)")
    out.add_argument("-o", "--output", metavar="FILE",
                     help="write the report to FILE instead of standard output; with "
                          "--fix, FILE is the fixed model (.keras or .h5, required) and "
                          "the fix summary goes to standard output")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar; text format: findings only, no summary table")
    out.add_argument("--min-impact", metavar="FRACTION",
                     help="report only findings saving at least this share of the "
                          "model's FLOPs or parameters (0.01 or 1%%, the default; 0: "
                          "every finding); the others are counted in the summary")
    out.add_argument("--verbose-json", action="store_true",
                     help="json format: add each finding's replacement graph (the "
                          "linter's internal IR; outside the schema's stability promise)")
    sel = parser.add_argument_group("rule selection")
    sel.add_argument("--select", type=_csv, metavar="RULES",
                     help="comma-separated codes, code prefixes or symbols to run "
                          "(ALL: every rule)")
    sel.add_argument("--ignore", type=_csv, metavar="RULES",
                     help="comma-separated codes, code prefixes or symbols to skip")
    sel.add_argument("--fail-on", metavar="SEVERITY",
                     help="lowest severity that makes the exit status 1: info, warning "
                          "(default) or error")
    sel.add_argument("--exit-zero", action="store_true",
                     help="exit 0 even when there are findings (input errors still exit 2)")
    model = parser.add_argument_group("model")
    model.add_argument("--input-shape", metavar="SHAPE",
                       help="dims for inputs of unknown size, batch excluded: the full "
                            "shape (299,299,3) or the unknown dims (299x299); default "
                            f"{lint_config.DEFAULT_SPATIAL} for each unknown dim")
    model.add_argument("--budget", action="append", type=_budget, metavar="NAME=VALUE",
                       help="change a budget of what a model file may ask for (e.g. "
                            "max-nodes=500000, for giant models); repeatable; also "
                            "[tool.cnnkit-lint.budgets]; see the README's Safety section")
    _add_mode_arguments(parser)
    timing = parser.add_argument_group("predicted time")
    timing.add_argument("--device-profile", metavar="NAME",
                        help="device profile of the predicted speed-ups: a packaged name "
                             "(cpu-generic, h100-jax-tf32, h100-jax-bf16), 'local' or a "
                             "profile .json; default: the calibrated local profile if "
                             "any, else cpu-generic")
    timing.add_argument("--calibrate", action="store_true",
                        help="measure this machine (imports Keras; about a minute), fit "
                             "its device profile and write it to the cache directory, "
                             "where it becomes the default; then exit")
    base = parser.add_argument_group("configuration and baseline")
    base.add_argument("--config", metavar="FILE",
                      help="read settings from FILE (pyproject.toml, setup.cfg, tox.ini)")
    base.add_argument("--no-config", action="store_true",
                      help="ignore configuration files")
    base.add_argument("--baseline", metavar="FILE",
                      help="do not report findings listed in this baseline file")
    base.add_argument("--write-baseline", metavar="FILE",
                      help="write the current findings to FILE as the baseline, exit 0")
    info = parser.add_argument_group("information")
    info.add_argument("--list-rules", action="store_true", help="list the rules and exit")
    info.add_argument("--explain", metavar="RULE", help="print a rule's documentation")
    info.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def _add_mode_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--fix`` and ``--benchmark`` groups (both import Keras)."""
    fix = parser.add_argument_group("fixing (imports Keras)")
    fix.add_argument("--fix", action="store_true",
                     help="rebuild the one model file PATH with its findings' fixes and "
                          "write it to -o FILE; the input is never modified")
    fix.add_argument("--fix-select", type=_csv, metavar="RULES",
                     help="--fix: apply the alternatives of these comma-separated codes, "
                          "code prefixes or symbols, even where measured or predicted "
                          "slower (default: each reported finding's recommended "
                          "alternative)")
    fix.add_argument("--force", action="store_true",
                     help="--fix: replace -o FILE if it exists")
    fix.add_argument("--fold-bn", action="store_true",
                     help="--fix: also fold batch norms into the preceding convs "
                          "(exact in inference; the model is then for inference only)")
    fix.add_argument("--rank", type=_rank, metavar="energy:X|ratio:X|N",
                     help="--fix: rank of the fixes that carry weights approximately "
                          "(truncated SVD, Tucker-2...): keep X of the singular values' "
                          "energy, X of the full rank, or N (default: the rule's width); "
                          "the savings reported follow it")
    fix.add_argument("--calibration-data", metavar="FILE.npz|DIR",
                     help="--fix: inputs to measure each fix's fidelity on and to refit "
                          "the approximate fixes with (an .npz of inputs, or a directory "
                          "of images); default: random inputs, a weak proxy")
    fix.add_argument("--max-error", type=_error_fraction, metavar="X",
                     help="--fix: refuse the fixes whose replaced subgraph's relative "
                          "output error exceeds X (0.05 = 5%%)")
    fix.add_argument("--finetune", metavar="DATA.npz",
                     help="--fix: distil the fixed model from the original on these "
                          "inputs (and labels 'y', if any) before writing it")
    fix.add_argument("--epochs", type=_positive_int, metavar="N",
                     help="--finetune: epochs (default: 1)")
    fix.add_argument("--reinitialise", action="store_true",
                     help="--fix: start the new layers from their initialisers instead "
                          "of carrying the trained weights into them")
    bench = parser.add_argument_group("benchmarking (imports Keras)")
    bench.add_argument("--benchmark", action="store_true",
                       help="time each fix and the whole fixed model against the "
                            "original on the best device present (a GPU if any); "
                            "findings are ordered by measured saving")
    bench.add_argument("--train", action="store_true",
                       help="--benchmark: time a training step too")
    bench.add_argument("--batch", type=_positive_int, nargs="+", metavar="N",
                       help="--benchmark: batch sizes (default: 1 32)")
    bench.add_argument("--dtype", choices=BENCH_DTYPES,
                       help="--benchmark: dtype policy (default: float32)")


def _check_modes(parser: argparse.ArgumentParser, args) -> None:
    """Usage errors of the ``--fix`` and ``--benchmark`` flags."""
    given = {"--fix-select": args.fix_select is not None, "--force": args.force,
             "--fold-bn": args.fold_bn, "--train": args.train,
             "--batch": args.batch is not None, "--dtype": args.dtype is not None,
             "--rank": args.rank is not None,
             "--calibration-data": args.calibration_data is not None,
             "--max-error": args.max_error is not None,
             "--finetune": args.finetune is not None, "--epochs": args.epochs is not None,
             "--reinitialise": args.reinitialise}
    for flag, needs in (("--fix-select", "--fix"), ("--force", "--fix"),
                        ("--fold-bn", "--fix"), ("--train", "--benchmark"),
                        ("--batch", "--benchmark"), ("--dtype", "--benchmark"),
                        ("--rank", "--fix"), ("--calibration-data", "--fix"),
                        ("--max-error", "--fix"), ("--finetune", "--fix"),
                        ("--epochs", "--finetune"), ("--reinitialise", "--fix")):
        if given[flag] and not getattr(args, needs[2:]):
            parser.error(f"{flag} needs {needs}")
    if args.reinitialise and any(given[f] for f in ("--rank", "--calibration-data",
                                                     "--max-error", "--finetune")):
        parser.error("--reinitialise carries no weights: --rank, --calibration-data, "
                     "--max-error and --finetune need the weights carried")
    if args.benchmark and args.jobs != 1:
        parser.error("--benchmark times the fixes and cannot be combined with -j")
    if args.fix and args.benchmark:
        parser.error("--fix and --benchmark cannot be combined (benchmark, then fix)")
    if (args.fix or args.benchmark) and args.write_baseline:
        parser.error(f"{'--fix' if args.fix else '--benchmark'} and --write-baseline "
                     "cannot be combined")
    if args.fix and len(args.paths) != 1:
        parser.error(f"--fix takes exactly one model file, got {len(args.paths)}")
    if args.fix and not args.output:
        parser.error("--fix needs -o FILE, where the fixed model goes (.keras or .h5)")


def _rules() -> list:
    """Every registered rule, as :class:`RuleInfo`, sorted by code."""
    from keras_cnnkit.lint import registry

    return sorted((RuleInfo.from_rule(rule) for rule in registry.all_rules()),
                  key=lambda r: r.code)


def _find_rule(name: str) -> RuleInfo:
    """The rule ``--explain`` names, by code or symbol."""
    from keras_cnnkit.lint import registry

    try:
        return RuleInfo.from_rule(registry.get_rule(name))
    except ConfigError:
        raise ConfigError("--explain", f"unknown rule {name!r} (see --list-rules)") from None


def list_rules_text(rules: list, fmt: str) -> str:
    """The ``--list-rules`` output (a table, or JSON for ``--format json``)."""
    if fmt == "json":
        import json
        return json.dumps([{"code": r.code, "symbol": r.symbol, "severity": str(r.severity),
                            "fixable": r.fixable, "summary": r.summary} for r in rules],
                          indent=2) + "\n"
    width = max((len(r.symbol) for r in rules), default=0)
    return "".join(f"{r.code}  {r.symbol.ljust(width)}  {str(r.severity).ljust(7)}  "
                   f"{'fix' if r.fixable else '   '}  {r.summary}\n" for r in rules)


def _check_selection(settings: lint_config.Settings, rules: list) -> list:
    """The rules that will run, as :class:`RuleInfo`; fails early, once, on a selector
    that names no rule (not once per file)."""
    from keras_cnnkit.lint import registry

    try:
        selected = {rule.code for rule in registry.select_rules(settings.select,
                                                                settings.ignore)}
    except ConfigError as exc:
        raise ConfigError(settings.source or f"--{exc.source}",
                          f"{exc.problem} (see --list-rules)") from None
    known = [(r.code, r.symbol) for r in rules]
    for _, selectors in settings.per_layer_ignores:
        lint_config.check_selectors(selectors, known, settings.source or "per-layer-ignores")
    return [r for r in rules if r.code in selected]


def _settings(args) -> lint_config.Settings:
    """File settings overridden by the flags given."""
    settings = lint_config.load_settings(args.config, isolated=args.no_config)
    if args.select is not None:
        settings.select = args.select
    if args.ignore is not None:
        settings.ignore = args.ignore
    if args.fail_on is not None:
        settings.fail_on = lint_config.parse_severity(args.fail_on)
    if args.format is not None:
        settings.format = args.format
    if args.input_shape is not None:
        settings.input_shape = lint_config.parse_input_shape(args.input_shape)
    if args.baseline is not None:
        settings.baseline = args.baseline
    settings.budgets = {**settings.budgets, **dict(args.budget or ())}
    if args.min_impact is not None:
        settings.min_impact = lint_config.parse_min_impact(args.min_impact, "--min-impact")
    if args.device_profile is not None:
        settings.device_profile = args.device_profile
    return settings


def _suppressed(finding, per_layer: list) -> bool:
    return any(fnmatch.fnmatchcase(finding.layer, glob)
               and any_matches(selectors, finding.code, finding.symbol)
               for glob, selectors in per_layer)


def _reported(path: str, report, settings: lint_config.Settings,
              baseline: Optional[Baseline]) -> tuple:
    """Drop from ``report`` the alternatives that per-layer ignores name and the sites
    the baseline holds (its sites are rebuilt from the rest); returns ``(suppressed,
    baselined)``: the rule findings (alternatives) the ignores dropped, and the sites the
    baseline accepted."""
    from keras_cnnkit.lint.sites import alternatives_of

    kept = [f for f in report.rule_findings
            if not _suppressed(f, settings.per_layer_ignores)]
    suppressed = len(report.rule_findings) - len(kept)
    if suppressed:
        report.regroup(kept)
    baselined = 0
    if baseline is not None:
        _, accepted = baseline.filter(path, report.findings)
        if accepted:
            dropped = {id(f) for site in accepted for f in alternatives_of(site)}
            report.regroup([f for f in report.rule_findings if id(f) not in dropped])
        baselined = len(accepted)
    return suppressed, baselined


def _lint(target, settings: lint_config.Settings):
    """``lint(target)`` with the run's settings."""
    from keras_cnnkit.lint.api import lint

    return lint(target, select=settings.select, ignore=settings.ignore or None,
                input_shape=settings.input_shape, min_impact=settings.min_impact,
                profile=settings.device_profile)


def _lint_report(path: str, settings: lint_config.Settings):
    """The lint report of one file, or the one-line problem (a string) on error."""
    try:
        return _lint(path, settings)
    except CnnkitError as exc:
        return getattr(exc, "problem", str(exc))
    except RecursionError:
        return "model nested too deeply to analyse"
    except MemoryError:
        return "out of memory while analysing the model"
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A bug of ours (or of a third-party rule) must not hide the other files'
        # results behind a traceback; it is reported as an error of this file.
        return f"internal error while linting ({type(exc).__name__}: {exc}); please report it"


def lint_path(path: str, settings: lint_config.Settings, baseline: Optional[Baseline],
              bench: Optional[dict] = None) -> FileResult:
    """Lint one file; an input error becomes ``FileResult.error``.

    ``bench``: keyword arguments of :func:`keras_cnnkit.bench.benchmark_report`
    (``--benchmark``): the reported findings' fixes are timed, and the findings come
    back with measurements, ordered by measured saving.
    """
    report = _lint_report(path, settings)
    if isinstance(report, str):
        return FileResult(path, error=report)
    suppressed, baselined = _reported(path, report, settings, baseline)
    result = FileResult(path, summary=report.summary, suppressed=suppressed,
                        baselined=baselined,
                        source_lines=dict(getattr(report.graph, "source_lines", None) or {}))
    if bench is not None:
        from keras_cnnkit.bench import benchmark_report

        try:   # the benchmark builds the model in Keras, all its weights allocated
            check(path, "max-params", report.summary.params or 0,
                  f"--benchmark would have Keras allocate {report.summary.params:,} "
                  "parameters")
        except BudgetError as exc:
            return FileResult(path, error=exc.problem)
        try:
            result.benchmark = benchmark_report(report, **bench)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # As for linting: one file's failure is an error of that file.
            return FileResult(path, error=f"internal error while benchmarking "
                                          f"({type(exc).__name__}: {exc}); please report it")
    result.findings = list(report.findings)
    result.below_impact = len(report.below_impact)
    result.min_impact = report.min_impact
    result.savings = report.savings()
    result.profile = report.profile
    result.profile_note = report.profile_note
    return result


def _import_keras(mode: str) -> None:
    """Import Keras for ``--fix`` or ``--benchmark``: a one-line error naming the extra
    when its backend is not installed, a progress bar while it loads, TensorFlow's
    start-up lines filtered (:func:`keras_cnnkit.console.import_keras`)."""
    console.require(mode, keras=True)
    with progress.Progress(1, f"{PROG} {mode}") as meter:
        meter.step("importing Keras and its backend")
        console.import_keras()


def _bench_options(args) -> dict:
    """``benchmark_report`` keyword arguments from the flags; imports Keras."""
    _import_keras("--benchmark")
    try:
        import keras_cnnkit.bench  # noqa: F401  pylint: disable=unused-import
    except ImportError as exc:
        missing = console.missing_dependency(exc, "--benchmark")
        if missing is None:
            raise
        raise missing from None
    options = {"train": args.train}
    if args.batch is not None:
        options["batches"] = tuple(args.batch)
    if args.dtype is not None:
        options["dtype"] = args.dtype
    return options


def fix_model(path: str, args, settings: lint_config.Settings,
              baseline: Optional[Baseline]) -> str:
    """``--fix``: fix ``path`` into ``args.output``; returns the summary to print.

    The findings fixed are those ``cnnkit-lint`` would report for the file (rule
    selection, per-layer ignores, baseline), narrowed by ``--fix-select``.

    Raises:
        CnnkitError: the input cannot be loaded safely, the output cannot be written,
            ``--fix-select`` names no rule, or fixing failed.
    """
    from keras_cnnkit.lint import registry
    from keras_cnnkit.lint.fix import SAVE_SUFFIXES, fix_file, fix_steps

    # Bad paths fail here, before Keras is imported; fix_file checks again.
    require_regular_file(path)
    inputs = run_inputs(args, settings)
    check_output_path(args.output, inputs, force=args.force, suffixes=SAVE_SUFFIXES)
    from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras
    check_before_keras(path, "--fix")   # within the budgets, before Keras is imported
    if args.fix_select:
        try:
            registry.select_rules(args.fix_select, None)
        except ConfigError as exc:
            raise ConfigError("--fix-select", f"{exc.problem} (see --list-rules)") from None

    def reported(model):
        report = _lint(model, settings)
        _reported(path, report, settings, baseline)
        return report

    for flag, data in (("--calibration-data", args.calibration_data),
                       ("--finetune", args.finetune)):
        if data is not None and not os.path.exists(data):
            raise ConfigError(flag, f"{data}: no such file or directory")
    console.require("--fix", keras=True)
    # Measuring fidelity runs many small probe models: TensorFlow's retracing warnings
    # about them are noise here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    steps = 1 + fix_steps(args.fold_bn, args.finetune is not None)
    with progress.Progress(steps, f"{PROG} --fix") as meter:
        meter.step("importing Keras and its backend")
        try:
            console.import_keras()
            from keras_cnnkit.rewrite.decompose import RankRule
            try:
                RankRule.parse(args.rank)
            except ValueError as exc:
                raise ConfigError("--rank", str(exc)) from None
            # Without --calibration-data the summary says that random inputs are a weak
            # proxy (FixResult.format_text; "note" in the JSON).
            calibration = args.calibration_data
            try:
                result = fix_file(path, args.output, select=args.fix_select or None,
                                  force=args.force, fold_bn=args.fold_bn, lint=reported,
                                  inputs=inputs, progress=meter,
                                  carry_weights=not args.reinitialise, rank=args.rank,
                                  calibration=calibration, max_error=args.max_error,
                                  finetune=args.finetune, epochs=args.epochs or 1)
            except ValueError as exc:
                if not _data_error(exc):
                    raise
                raise ConfigError("--calibration-data/--finetune", str(exc)) from None
        except CnnkitError:
            raise
        except ImportError as exc:
            missing = console.missing_dependency(exc, "--fix")
            if missing is None:
                raise ModelFileError(path, f"internal error while fixing (ImportError: "
                                           f"{exc}); please report it") from None
            raise missing from None
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise ModelFileError(path, f"internal error while fixing ({type(exc).__name__}: "
                                       f"{exc}); please report it") from None
    if settings.format == "json":
        import json
        return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return result.format_text() + "\n"


def _data_error(exc: ValueError) -> bool:
    """Whether a ``ValueError`` from fixing is about the calibration or fine-tuning data
    (their readers' messages), not an internal error."""
    from keras_cnnkit.rewrite.fidelity import CalibrationDataError
    if isinstance(exc, CalibrationDataError):
        return True
    text = str(exc)
    return any(word in text for word in ("calibration", ".npz", "inputs of shape",
                                         "directory of images", "labels"))


def calibrate_text() -> str:
    """``--calibrate``: measure this machine, fit and write its profile; returns what to
    print (where the profile went, and its error figures)."""
    _check_profile_output()
    _import_keras("--calibrate")
    try:
        from keras_cnnkit.bench.calibration import calibrate, check_cases, grid
        from keras_cnnkit.bench.device import detect
        from keras_cnnkit.progress import Progress
    except ImportError as exc:
        raise ConfigError("--calibrate", f"needs Keras with an installed backend and "
                                         f"scipy ({exc})") from None
    kind = "gpu" if detect().is_gpu else "cpu"
    with Progress(len(grid(kind)) + len(check_cases(kind)), "calibrating") as meter:
        profile, path = calibrate(grid_name=kind, progress=meter.step)
    return (f"wrote device profile {profile.label()} to {path}\n"
            f"{profile.error_summary()}\n"
            "cnnkit-lint now predicts speed-ups with it by default.\n")


def _check_profile_output() -> None:
    """Before a minute of measuring: the cache directory (``$KERAS_CNNKIT_CACHE_DIR``...)
    can be made and the profile written there."""
    from keras_cnnkit.latency.profile import LOCAL, cache_dir
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ConfigError("--calibrate", f"cannot create the profile directory {folder}: "
                                         f"{exc.strerror or exc}") from None
    check_output_path(os.path.join(folder, f"{LOCAL}.json"), force=True)


def run_inputs(args, settings: lint_config.Settings) -> list:
    """Every file the run reads: the model files, the configuration file and the baseline
    (unless ``--write-baseline`` replaces it).  No output may be one of them."""
    inputs = list(getattr(args, "paths", None) or [])
    if settings.source:
        inputs.append(settings.source)
    if settings.baseline and not getattr(args, "write_baseline", None):
        inputs.append(settings.baseline)
    return inputs


def _write(text: str, output: Optional[str], inputs: Sequence[str] = ()) -> None:
    """Print ``text``, or write it atomically to ``output`` (never over an input)."""
    if output is not None:
        write_atomic(output, text, inputs, force=True)
        return
    stream = sys.stdout
    encoding = stream.encoding or "utf-8"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        text = (text.replace("→", "->").replace("−", "-").replace("×", "x")
                .encode(encoding, "replace").decode(encoding))
    stream.write(text)
    stream.flush()


def _load_baseline(settings: lint_config.Settings, args) -> Baseline:
    """The baseline the settings name; a missing one says where it was named and how to
    make it."""
    try:
        return Baseline.load(settings.baseline)
    except ConfigError:
        if os.path.lexists(settings.baseline):
            raise
        origin = ("--baseline" if args.baseline is not None
                  else f"the baseline setting of {settings.source}")
        raise ConfigError(settings.baseline, f"no such baseline file (named by {origin}); "
                                             "write it first with --write-baseline "
                                             f"{settings.baseline}") from None


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {' '.join(message.split())}\n")
    sys.stderr.flush()


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, lint, report; returns the exit status (may raise CnnkitError)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    progress.set_quiet(args.quiet)
    settings = _settings(args)
    with using(settings.budgets):
        return _run(parser, args, settings)


def _run(parser: argparse.ArgumentParser, args, settings: lint_config.Settings) -> int:
    """:func:`run` once the settings (and so the budgets) are known."""
    if args.verbose_json and settings.format != "json":
        parser.error("--verbose-json needs --format json")
    rules = _rules()
    inputs = run_inputs(args, settings)
    if args.list_rules:
        _write(list_rules_text(rules, settings.format), args.output, inputs)
        return EXIT_OK
    if args.explain:
        _write(_find_rule(args.explain).explain(), args.output, inputs)
        return EXIT_OK
    if args.calibrate:
        if args.paths:
            parser.error("--calibrate takes no model files")
        _write(calibrate_text(), args.output, inputs)
        return EXIT_OK
    if not args.paths:
        parser.error("no model files given (try --help)")
    _check_modes(parser, args)
    selected = _check_selection(settings, rules)
    from keras_cnnkit.lint.api import device_profile
    device_profile(settings.device_profile)   # an unknown profile fails once, here
    baseline = None
    if settings.baseline and not args.write_baseline:
        baseline = _load_baseline(settings, args)
    if args.fix:
        _write(fix_model(args.paths[0], args, settings, baseline), None)
        return EXIT_OK
    for output in (args.output, args.write_baseline):
        if output is not None:   # fail before linting, not after
            check_output_path(output, inputs, force=True)
    bench = _bench_options(args) if args.benchmark else None
    results = []
    lint_one = functools.partial(lint_path, settings=settings, baseline=baseline, bench=bench)
    for path, result in zip(args.paths, parallel.lint_paths(args.paths, lint_one, args.jobs)):
        if result.error is not None:
            _error(f"{path}: {result.error}")
        results.append(result)
    failed = [r.path for r in results if r.error is not None]
    if args.write_baseline:
        if failed:
            # A baseline of a partial run would silently accept too little.
            _error(f"{args.write_baseline}: not written: {len(failed)} model file(s) "
                   "could not be linted")
            return EXIT_ERROR
        count = write_baseline(args.write_baseline, [(r.path, r.findings) for r in results],
                               inputs)
        sys.stderr.write(f"{PROG}: wrote {count} finding(s) to {args.write_baseline}\n")
        return EXIT_OK
    options = {"text": {"show_summary": not args.quiet},
               "json": {"verbose": args.verbose_json}}.get(settings.format, {})
    text = FORMATTERS[settings.format](results, selected, **options)
    _write(text, args.output, inputs)
    if failed:
        return EXIT_ERROR
    failing = any(Severity(f.severity) >= settings.fail_on
                  for r in results for f in r.findings)
    return EXIT_FINDINGS if failing and not args.exit_zero else EXIT_OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console-script entry point: :func:`run` with every error turned into one line.

    Returns the exit status (also for ``--help``, ``--version`` and usage errors).
    """
    try:
        return run(argv)
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except CnnkitError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except ImportError as exc:  # an optional package, imported late
        missing = console.missing_dependency(exc, PROG)
        if missing is None:
            raise
        _error(str(missing))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``cnnkit-lint ... | head``): not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
