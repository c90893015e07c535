"""Rule selectors: the one matcher behind ``--select``, ``--ignore``, per-layer ignores
and ``--fix-select``.

A selector names rules by code (``CNK105``, any case: ``cnk105``), by code prefix
(``CNK1``), by symbol (``flatten-dense-head``) or all of them (``ALL``, any case).
Pure Python: importing this module imports nothing heavy.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

#: Selector meaning every rule.
ALL = "ALL"

_CODE_LIKE = re.compile(r"[A-Za-z]+\d*")


def selector_matches(selector: str, code: str, symbol: str) -> bool:
    """Whether ``selector`` (a code, a code prefix, a symbol or ``ALL``) names the rule
    with this ``code`` and ``symbol``."""
    sel = selector.strip()
    if not sel:
        return False
    if sel.upper() == ALL or sel == symbol:
        return True
    return _CODE_LIKE.fullmatch(sel) is not None and code.upper().startswith(sel.upper())


def any_matches(selectors: Iterable[str], code: str, symbol: str) -> bool:
    """Whether one of ``selectors`` names the rule."""
    return any(selector_matches(sel, code, symbol) for sel in selectors)


def finding_selected(finding, selectors: Optional[Iterable[str]]) -> bool:
    """Whether ``selectors`` (``None``: every rule) name the rule of ``finding``."""
    return selectors is None or any_matches(selectors, finding.code, finding.symbol)
