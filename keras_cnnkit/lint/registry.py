"""The rule registry: rules come from the ``keras_cnnkit.lint_rules`` entry-point group.

Each entry point names a :class:`~keras_cnnkit.lint.findings.Rule` subclass
(``large-kernel = lint_rules.large_kernel:LargeKernel``); third-party packages add rules
by declaring entry points in the same group.  The built-in rules are always available:
they are the rule modules of :mod:`lint_rules` (:func:`lint_rules.builtin_rules`, the one
table, from which ``setup.cfg``'s entry points are generated), so missing or stale
distribution metadata (a source checkout, a zipapp) loses none of them.  A third-party
rule that fails to load is an error naming the entry point, never skipped in silence.
"""
from __future__ import annotations

import functools
import importlib
from importlib import metadata
from typing import Iterable, Optional

from keras_cnnkit.errors import CnnkitError, ConfigError
from keras_cnnkit.lint.findings import DOC_SECTIONS, Rule
from keras_cnnkit.lint.selectors import any_matches, selector_matches
from lint_rules import builtin_rules

ENTRY_POINT_GROUP = "keras_cnnkit.lint_rules"

class RuleLoadError(CnnkitError, ImportError):
    """A rule plugin cannot be imported, or is not a valid :class:`Rule`."""


def _load_object(target: str):
    module_name, _, attr = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def validate_rule(obj, origin: str) -> type:
    """Check that ``obj`` is a usable rule class; :class:`RuleLoadError` naming ``origin``."""
    if not isinstance(obj, type) or not issubclass(obj, Rule):
        raise RuleLoadError(f"rule plugin {origin}: {obj!r} is not a subclass of "
                            "keras_cnnkit.lint.findings.Rule")
    if not obj.code or not obj.symbol:
        raise RuleLoadError(f"rule plugin {origin}: {obj.__name__} has no code or symbol")
    missing = [s for s in DOC_SECTIONS if s not in obj.docs()]
    if missing:
        raise RuleLoadError(f"rule plugin {origin}: {obj.__name__}'s docstring lacks the "
                            f"section(s) {', '.join(missing)}")
    return obj


def _entry_points() -> list:
    try:
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # pylint: disable=broad-exception-caught
        # Broken distribution metadata elsewhere in the environment: built-ins only.
        return []


@functools.lru_cache(maxsize=1)
def all_rules() -> tuple:
    """Every rule class (built-in and plugins), sorted by code.

    Raises:
        RuleLoadError: a plugin fails to import, is not a rule, or reuses a code/symbol.
    """
    builtin = builtin_rules()
    rules = {symbol: validate_rule(_load_object(target), f"{symbol!r} ({target})")
             for symbol, target in builtin.items()}
    for ep in _entry_points():
        if ep.name in builtin and ep.value.replace(" ", "") == builtin[ep.name]:
            continue
        origin = f"{ep.name!r} ({ep.value})"
        try:
            obj = ep.load()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise RuleLoadError(f"rule plugin {origin} failed to load: "
                                f"{type(exc).__name__}: {exc}") from exc
        rule = validate_rule(obj, origin)
        if rule.symbol in rules and rules[rule.symbol] is not rule:
            raise RuleLoadError(f"rule plugin {origin}: symbol {rule.symbol!r} is taken by "
                                f"{rules[rule.symbol].__module__}")
        rules[rule.symbol] = rule
    codes: dict = {}
    for rule in rules.values():
        if codes.setdefault(rule.code, rule) is not rule:
            raise RuleLoadError(f"rules {codes[rule.code].symbol!r} and {rule.symbol!r} "
                                f"share the code {rule.code}")
    return tuple(sorted(set(rules.values()), key=lambda r: r.code))


def get_rule(selector: str) -> type:
    """The rule named by a code or a symbol; :class:`ConfigError` if none is."""
    for rule in all_rules():
        if selector.strip() in (rule.symbol, rule.code) or selector.strip().upper() == rule.code:
            return rule
    raise ConfigError("rule", f"unknown rule {selector!r}")


def _as_list(selectors) -> list:
    return [selectors] if isinstance(selectors, str) else list(selectors)


def select_rules(select: Optional[Iterable[str]] = None,
                 ignore: Optional[Iterable[str]] = None) -> list:
    """The rule classes named by ``select`` (default: all) minus those named by ``ignore``.

    Selectors are codes, code prefixes, symbols or ``"ALL"``.  One that names no rule is a
    :class:`ConfigError` (a typo must not silently lint nothing).
    """
    rules = all_rules()
    chosen = list(rules)
    for source, selectors in (("select", select), ("ignore", ignore)):
        if selectors is None:
            continue
        selectors = _as_list(selectors)
        for sel in selectors:
            if not any(selector_matches(sel, r.code, r.symbol) for r in rules):
                raise ConfigError(source, f"unknown rule {sel!r}")
        if source == "select":
            chosen = [r for r in rules if any_matches(selectors, r.code, r.symbol)]
        else:
            chosen = [r for r in chosen if not any_matches(selectors, r.code, r.symbol)]
    return chosen


def instantiate(rules: Iterable[type], options: Optional[dict] = None) -> list:
    """Rule instances; ``options`` maps a symbol or code to keyword arguments."""
    options = options or {}
    out = []
    for rule in rules:
        kwargs = options.get(rule.symbol, options.get(rule.code, {}))
        try:
            out.append(rule(**kwargs))
        except TypeError as exc:
            raise ConfigError(rule.symbol, f"bad rule options {kwargs!r}: {exc}") from None
    return out
