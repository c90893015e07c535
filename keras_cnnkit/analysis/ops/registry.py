"""The op registry: kind name → :class:`~keras_cnnkit.analysis.ops.core.OpDef`.

Built-in kinds register themselves when their module under ``keras_cnnkit/analysis/ops/``
is imported (the package imports them all).  Third-party packages add kinds through the
``keras_cnnkit.op_kinds`` entry-point group, each entry naming an ``OpDef`` subclass
(``my-kind = my_package.ops:MyKind``); they are loaded the first time a kind is looked up
that no built-in defines, or when every kind is listed.  A plugin that fails to import,
is not an ``OpDef``, takes a built-in's kind or lacks a piece is an
:class:`~keras_cnnkit.analysis.ops.errors.OpDefinitionError` naming the entry point, never
skipped in silence.
"""
from __future__ import annotations

import collections.abc
from importlib import metadata
from typing import Iterator, Optional

from keras_cnnkit.analysis.ops.core import OpDef, missing_pieces
from keras_cnnkit.analysis.ops.errors import OpDefinitionError, UnknownOpError

ENTRY_POINT_GROUP = "keras_cnnkit.op_kinds"

_REGISTRY: dict = {}
_PLUGINS = {"loaded": False}


def register(cls: type) -> type:
    """Class decorator: register the op definition ``cls`` (one instance) under its kind.

    Raises:
        OpDefinitionError: ``cls`` is not an ``OpDef`` subclass, has no kind name, or its
            kind is taken by another definition.
    """
    if not isinstance(cls, type) or not issubclass(cls, OpDef):
        raise OpDefinitionError(f"{cls!r} is not a subclass of OpDef")
    kind = cls.kind
    if not isinstance(kind, str) or not kind:
        raise OpDefinitionError(f"{cls.__module__}.{cls.__name__} has no kind name")
    current = _REGISTRY.get(kind)
    if current is not None and current.__class__ is not cls:
        if _same_class(current.__class__, cls):
            _REGISTRY[kind] = cls()  # the module was imported again (reload)
            return cls
        raise OpDefinitionError(f"op kind {kind!r} of {cls.__module__}.{cls.__name__} is "
                                f"taken by {current.__class__.__module__}."
                                f"{current.__class__.__name__}")
    if current is None:
        _REGISTRY[kind] = cls()
    return cls


def _same_class(a: type, b: type) -> bool:
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def unregister(kind: str) -> None:
    """Remove ``kind`` from the registry (for tests and plugins that replace a kind)."""
    _REGISTRY.pop(kind, None)


def op_def(kind: str) -> OpDef:
    """The definition of op ``kind``.

    Raises:
        UnknownOpError: no built-in or plugin defines ``kind``.
        OpDefinitionError: a plugin fails to load (looked for an unknown kind).
    """
    definition = _REGISTRY.get(kind)
    if definition is None and not _PLUGINS["loaded"]:
        load_plugins()
        definition = _REGISTRY.get(kind)
    if definition is None:
        raise UnknownOpError(f"no op definition for kind {kind!r}")
    return definition


def find(kind: str) -> Optional[OpDef]:
    """The definition of ``kind``, or ``None`` (plugins are not loaded for this)."""
    return _REGISTRY.get(kind)


def all_kinds() -> tuple:
    """Every registered kind (built-in and plugins), sorted."""
    load_plugins()
    return tuple(sorted(_REGISTRY))


def has_trait(kind: str, trait: str) -> bool:
    """Whether op ``kind`` has ``trait`` (``False`` for an unknown kind)."""
    definition = _REGISTRY.get(kind)
    return definition is not None and trait in definition.traits


class TraitSet(collections.abc.Set):
    """The set of kinds with a trait, read from the registry each time (so kinds a plugin
    registers later are members too).  Supports ``in``, iteration and set operators
    (which return a ``frozenset``)."""

    def __init__(self, trait: str):
        self.trait = trait

    def __contains__(self, kind: object) -> bool:
        return isinstance(kind, str) and has_trait(kind, self.trait)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(k for k, d in _REGISTRY.items() if self.trait in d.traits))

    def __len__(self) -> int:
        return sum(1 for d in _REGISTRY.values() if self.trait in d.traits)

    def __repr__(self) -> str:
        return f"TraitSet({self.trait!r}: {sorted(self)})"

    @classmethod
    def _from_iterable(cls, it) -> frozenset:
        return frozenset(it)


def kinds_with(trait: str) -> TraitSet:
    """The kinds with ``trait``, as a live set."""
    return TraitSet(trait)


def _entry_points() -> list:
    try:
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception:  # pylint: disable=broad-exception-caught
        # Broken distribution metadata elsewhere in the environment: built-ins only.
        return []


def load_plugins(force: bool = False) -> None:
    """Import and register the kinds of the ``keras_cnnkit.op_kinds`` entry points (once,
    unless ``force``).

    Raises:
        OpDefinitionError: naming the entry point, when one fails to import, is not an
            ``OpDef`` subclass, takes a kind already defined elsewhere, or lacks a piece
            (:func:`~keras_cnnkit.analysis.ops.core.missing_pieces`).
    """
    if _PLUGINS["loaded"] and not force:
        return
    for ep in _entry_points():
        origin = f"op-kind plugin {ep.name!r} ({ep.value})"
        try:
            cls = ep.load()
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise OpDefinitionError(f"{origin} failed to load: "
                                    f"{type(exc).__name__}: {exc}") from exc
        try:
            register(cls)
        except OpDefinitionError as exc:
            raise OpDefinitionError(f"{origin}: {exc}") from None
        missing = missing_pieces(_REGISTRY[cls.kind])
        if missing:
            unregister(cls.kind)
            raise OpDefinitionError(f"{origin}: kind {cls.kind!r} lacks "
                                    + "; ".join(missing))
    _PLUGINS["loaded"] = True
