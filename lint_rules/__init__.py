"""Lint rules of keras-cnnkit, one module per rule: the one table of built-in rules.

Every module of this package (but ``common`` and the ``pylint_plugin`` package) defines
one :class:`~keras_cnnkit.lint.findings.Rule` subclass; :func:`builtin_rules` finds
them.  ``setup.cfg``'s ``keras_cnnkit.lint_rules`` entry points, through which
third-party packages add rules too, are generated from it
(``python tools/gen_readme.py``; the test suite checks that they are current).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

#: Modules of this package that hold no rule.
NOT_RULES = ("common",)


@functools.lru_cache(maxsize=1)
def builtin_rules() -> dict:
    """``{symbol: "module:Class"}`` of the built-in rules, in code order."""
    from keras_cnnkit.lint.findings import Rule

    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg or info.name in NOT_RULES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                  if issubclass(cls, Rule) and cls.__module__ == module.__name__]
    found.sort(key=lambda cls: cls.code)
    return {cls.symbol: f"{cls.__module__}:{cls.__name__}" for cls in found}


def entry_points_text() -> str:
    """The ``keras_cnnkit.lint_rules`` lines of ``setup.cfg``'s ``[options.entry_points]``."""
    return "\n".join(f"    {symbol} = {target}" for symbol, target in builtin_rules().items())
