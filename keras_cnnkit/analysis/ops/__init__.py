"""The op registry: one definition per op kind (see ``docs/ops.md``).

Each op kind of the graph IR is defined once, in one module of this package named after
it (``conv.py`` defines ``conv``; the element-wise merges share ``elementwise.py``).  The
definition — an :class:`OpDef` subclass registered with :func:`register` — holds the
kind's typed attributes, shape rule, parameter/MAC/FLOP/bytes formulas, traits, latency
class and Keras codegen.  :mod:`~keras_cnnkit.analysis.ir`,
:mod:`~keras_cnnkit.analysis.shapes`, :mod:`~keras_cnnkit.analysis.cost`,
:mod:`~keras_cnnkit.analysis.patterns` and :mod:`keras_cnnkit.rewrite.codegen` delegate to
it; frontends only map Keras classes and ONNX ops onto kinds.

Public API::

    op_def(kind) -> OpDef          all_kinds() -> tuple        find(kind) -> OpDef | None
    register (class decorator)     unregister(kind)            load_plugins(force=False)
    has_trait(kind, trait)         kinds_with(trait) -> TraitSet (a live set of kinds)
    check_attrs(kind, attrs)       typed_attrs(kind, attrs)    missing_pieces(definition)
    latency_class_of(node) -> str  (one of LatencyClass.ALL)
    OpDef, OpAttrs, Sizes, Trait, LatencyClass, ENTRY_POINT_GROUP ("keras_cnnkit.op_kinds")
    errors: ShapeError, AttrsError, OpDefinitionError, UnknownOpError, UnsupportedNodeError

Importing this package imports every module in it (registering the built-in kinds) and
nothing heavy: Keras is imported only by codegen.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Mapping

from keras_cnnkit.analysis.ops.attrs import OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes, Trait, missing_pieces
from keras_cnnkit.analysis.ops.errors import (
    AttrsError,
    OpDefinitionError,
    ShapeError,
    UnknownOpError,
    UnsupportedNodeError,
)
from keras_cnnkit.analysis.ops.registry import (
    ENTRY_POINT_GROUP,
    TraitSet,
    all_kinds,
    find,
    has_trait,
    kinds_with,
    load_plugins,
    op_def,
    register,
    unregister,
)


def check_attrs(kind: str, attrs: Mapping) -> None:
    """Check a node's ``attrs`` against op ``kind``'s typed attributes.

    Raises:
        AttrsError: an unknown kind, an undeclared key, a missing required attribute or
            a value of the wrong type.
    """
    _definition(kind).check(attrs)


def typed_attrs(kind: str, attrs: Mapping) -> OpAttrs:
    """The typed attributes of op ``kind`` read from ``attrs`` (checked, ``AttrsError``)."""
    return _definition(kind).parse(attrs)


def _definition(kind: str) -> OpDef:
    try:
        return op_def(kind)
    except UnknownOpError:
        raise AttrsError(f"unknown op kind {kind!r}") from None


def latency_class_of(node) -> str:
    """The :class:`LatencyClass` of an IR node (``unknown`` for an unregistered kind)."""
    try:
        definition = op_def(node.op)
    except UnknownOpError:
        return LatencyClass.UNKNOWN
    return definition.latency_class(definition.view(node.attrs))


def _import_definitions() -> None:
    """Import every module of this package: the built-in kinds register themselves."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_definitions()

__all__ = [
    "ENTRY_POINT_GROUP", "AttrsError", "LatencyClass", "OpAttrs", "OpDef",
    "OpDefinitionError", "ShapeError", "Sizes", "Trait", "TraitSet", "UnknownOpError",
    "UnsupportedNodeError", "all_kinds", "check_attrs", "choice", "find", "has_trait",
    "kinds_with", "latency_class_of", "load_plugins", "missing_pieces", "op_def", "register",
    "typed_attrs", "unregister",
]
