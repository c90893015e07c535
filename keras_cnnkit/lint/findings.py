"""Findings, the replacement IR fragment each carries, and the rule base class.

Pure Python: importing this module never imports Keras.
"""
from __future__ import annotations

import dataclasses
import enum
import inspect
import re
from typing import ClassVar, Iterable, Optional

from keras_cnnkit.analysis.ir import Graph, Node


class Severity(enum.IntEnum):
    """Finding severities, ordered; ``--fail-on`` compares against them."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    @classmethod
    def parse(cls, text: str) -> "Severity":
        """``"warning"`` → ``Severity.WARNING``; ``ValueError`` listing the allowed names."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            allowed = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (allowed: {allowed})") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclasses.dataclass
class Replacement:
    """The suggested fix as an IR fragment.

    Attributes:
        removed: names of the graph nodes the fix replaces (in topological order).
        nodes: the new nodes.  Their ``inputs`` name nodes of the fragment or of the
            graph (the producers of the removed nodes); shapes are filled in.
        output: the fragment node whose output replaces the last removed node's output.
        preserves_function: ``True`` when the fix keeps the model's function exactly
            (weights can be carried over); ``False`` when the model needs retraining.
    """

    removed: list
    nodes: list
    output: str
    preserves_function: bool = False


@dataclasses.dataclass
class Finding:
    """One inefficiency found in one place of a model, with before/after costs.

    ``*_before`` are the costs of the nodes in ``replacement.removed``; ``*_after``
    the costs of ``replacement.nodes``, both computed by the same cost model.  Findings
    without a replacement (advisory rules) carry ``None`` there.
    """

    code: str
    symbol: str
    severity: Severity
    layer: str
    message: str
    suggestion: str = ""
    node: str = ""
    params_before: Optional[int] = None
    params_after: Optional[int] = None
    macs_before: Optional[int] = None
    macs_after: Optional[int] = None
    flops_before: Optional[int] = None
    flops_after: Optional[int] = None
    replacement: Optional[Replacement] = None
    measurements: dict = dataclasses.field(default_factory=dict)

    @property
    def needs_retraining(self) -> bool:
        """True when applying the fix changes what the model computes."""
        return self.replacement is not None and not self.replacement.preserves_function

    @property
    def key(self) -> tuple:
        """Stable identity of a finding, independent of its position: (symbol, layer)."""
        return (self.symbol, self.layer)


_SECTION_RE = re.compile(r"^## (.+?)\s*$", re.MULTILINE)

#: The docstring sections every rule must have, in this order (ruff's layout).
DOC_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead", "References")


class Rule:
    """Base class of lint rules; one subclass per module in :mod:`lint_rules`.

    A rule's class docstring holds its documentation in the sections of
    :data:`DOC_SECTIONS` (markdown ``## `` headings); ``cnnkit-lint --explain`` and the
    README's rule table are generated from it.
    """

    code: ClassVar[str] = ""
    symbol: ClassVar[str] = ""
    severity: ClassVar[Severity] = Severity.WARNING
    fixable: ClassVar[bool] = False

    def check(self, graph: Graph) -> Iterable[Finding]:
        """Yield the findings of this rule on ``graph``."""
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        """The first line of the docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def docs(cls) -> dict:
        """The docstring's sections, by heading."""
        # Class docstrings are indented; dedent so that "## " headings start lines.
        text = inspect.cleandoc(cls.__doc__ or "")
        parts = _SECTION_RE.split(text)
        sections = {}
        for heading, body in zip(parts[1::2], parts[2::2]):
            sections[heading] = _dedent(body)
        return sections

    def finding(self, node: Node, message: str, **fields) -> Finding:
        """A finding of this rule at ``node`` (costs filled in by the caller or helper)."""
        return Finding(code=self.code, symbol=self.symbol, severity=self.severity,
                       layer=node.layer or node.name, node=node.name, message=message,
                       **fields)


def _dedent(text: str) -> str:
    lines = text.strip("\n").splitlines()
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(line[cut:] for line in lines).strip()
