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

    A rule yields plain findings.  The report holds *site* findings
    (:mod:`keras_cnnkit.lint.sites`): one per set of nodes that fixes would replace,
    whose flat fields are those of its recommended (else first) alternative, and which
    also carry ``alternatives`` (:class:`Alternative`, every rule's own finding there),
    ``recommended`` (the index of the recommended alternative, ``None`` when no
    alternative may be recommended), ``why`` (the reason, one line) and the saving as a
    share of the model's FLOPs and parameters (``flops_share``, ``params_share``;
    ``None`` when unknown).  A rule's own finding leaves them empty.
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
    alternatives: list = dataclasses.field(default_factory=list)
    recommended: Optional[int] = None
    why: str = ""
    flops_share: Optional[float] = None
    params_share: Optional[float] = None

    @property
    def needs_retraining(self) -> bool:
        """True when applying the fix changes what the model computes."""
        return self.replacement is not None and not self.replacement.preserves_function

    @property
    def key(self) -> tuple:
        """Stable identity of a finding, independent of its position: (symbol, layer)."""
        return (self.symbol, self.layer)


#: :attr:`Alternative.weights` of a function-preserving fix: the weights carry over.
EXACT_WEIGHTS = "exact"
#: :attr:`Alternative.weights` of a fix whose new layers start from their initialisers.
REINITIALISED_WEIGHTS = "reinitialised"
#: The prefix of :attr:`Alternative.weights` of a fix that carries the trained weights
#: into its new layers approximately: ``"approximate: <method> rank <r>"``.
APPROXIMATE_WEIGHTS = "approximate"

#: Rule symbol → the method by which ``cnnkit-lint --fix`` carries a trained model's
#: weights into that rule's new layers (:mod:`keras_cnnkit.rewrite.weights`; the words
#: here name it in reports).  A rule not listed here re-initialises its new layers.
CARRYING_METHODS = {
    "missing-bottleneck": "Tucker-2 HOSVD",
    "depthwise-separable-candidate": "depthwise × pointwise SVD per input channel",
    "asymmetric-factorization": "spatial SVD",
    "large-kernel": "least-squares fit of the stacked kernels",
    "flatten-dense-head": "GAP head from the Dense kernel summed over positions",
    "truncated-svd-dense": "truncated SVD",
    "relu-after-projection": "weights kept, activation dropped",
    "group-conv-without-shuffle": "weights kept, channels shuffled",
}


def approximate_weights(method: str, ranks=()) -> str:
    """``"approximate: truncated SVD rank 64"`` (``"ranks 16/32"`` for several, nothing
    for none)."""
    ranks = [int(r) for r in ranks]
    if len(ranks) == 1:
        return f"{APPROXIMATE_WEIGHTS}: {method} rank {ranks[0]}"
    if ranks:
        return f"{APPROXIMATE_WEIGHTS}: {method} ranks {'/'.join(map(str, ranks))}"
    return f"{APPROXIMATE_WEIGHTS}: {method}"


def declared_weights(finding: "Finding") -> str:
    """How ``finding``'s fix carries weights, as the lint report declares it (from the
    fragment alone, before any weights are read): ``exact`` for a function-preserving
    fix; ``approximate: <method> rank <r>`` where a carrying method exists for the rule
    (rank: the width of the fragment's first new layer, the rule's proposed one;
    ``--fix --rank`` changes it); ``reinitialised`` otherwise; empty without a fix.
    ``--fix`` reports what it actually did, which may differ (a fragment the method
    does not recognise is re-initialised; stacked "valid" kernels may be exact)."""
    rep = finding.replacement
    if rep is None:
        return ""
    if rep.preserves_function:
        return EXACT_WEIGHTS
    method = CARRYING_METHODS.get(finding.symbol)
    if method is None:
        return REINITIALISED_WEIGHTS
    first = rep.nodes[0] if rep.nodes else None
    width = None if first is None else (first.attrs.get("filters") or first.attrs.get("units"))
    if finding.symbol in ("flatten-dense-head", "relu-after-projection",
                          "group-conv-without-shuffle") or width is None:
        return approximate_weights(method)
    if finding.symbol == "depthwise-separable-candidate":
        return approximate_weights(method, [first.attrs.get("depth_multiplier", 1) or 1])
    return approximate_weights(method, [width])


@dataclasses.dataclass
class Alternative:
    """One way to fix a site: a rule's own finding, with its speed.

    Attributes:
        finding: the rule's finding (code, symbol, message, suggestion, costs,
            replacement).
        predicted: batch size → predicted speed-up of the fix (time before / after,
            inside the model; ``None`` where the time is unknown), on ``profile``.
        profile: the name of the device profile of ``predicted`` (empty: none).
        measured: batch size → measured speed-up (``--benchmark``; forward pass).
        weights: how the fixed layers get their weights (:func:`declared_weights`):
            ``"exact"`` (the fix keeps the function), ``"approximate: <method> rank
            <r>"`` where ``--fix`` carries the trained weights approximately (e.g.
            ``"approximate: Tucker-2 HOSVD rank 32"``), or ``"reinitialised"``; empty for
            advice without a fix.
        slower: measured, or else predicted, slower (see
            :func:`keras_cnnkit.lint.sites.is_slower`): never recommended, and never
            applied by a bare ``--fix``.
        companion: an exact fix applied together with the recommended alternative
            (merged into its last layer), not instead of it.
    """

    finding: Finding
    predicted: dict = dataclasses.field(default_factory=dict)
    profile: str = ""
    measured: dict = dataclasses.field(default_factory=dict)
    weights: str = ""
    slower: bool = False
    companion: bool = False

    def __post_init__(self):
        if not self.weights:
            self.weights = declared_weights(self.finding)


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
