"""Typed op attributes: the frozen dataclass each op kind declares for its ``Node.attrs``.

``Node.attrs`` stays a plain ``dict`` (rules read ``node.attrs["kernel"]`` and
``node.attrs.get("groups", 1)``, reports dump it as JSON, and a rewrite may set a key), but
its keys and value types are not free: every op kind declares an :class:`OpAttrs`
subclass, and the dict is checked against it when a node is made (:func:`parse`): no key
the kind does not declare, every required field present, every value of its declared
type.  Op definitions read attributes through the typed instance
(``a.kernel``, ``a.groups``), whose defaults are the one place a missing key's meaning is
written.

Field types are checked with :func:`checker`, which understands ``int``, ``float``,
``bool``, ``str``, ``tuple``, ``tuple[X, ...]``, ``Optional``/``Union`` and ``Any``
(numpy scalars count as the matching Python type).  A field may restrict its values with
``field(..., metadata={"choices": (...)})`` (see :func:`choice`).
"""
from __future__ import annotations

import dataclasses
import functools
import numbers
import types
import typing
from typing import Any, Mapping, Optional, Union

from keras_cnnkit.analysis.ops.errors import AttrsError

#: Padding of a windowed op: ``"same"``/``"valid"``/``"causal"``, or explicit pads
#: (``((begin, end), ...)`` per spatial axis, or ONNX's flat begins-then-ends).
Padding = Union[str, tuple, int]

#: A tuple of positive ints, one per spatial axis (kernel, strides, pool size...).
Ints = tuple[int, ...]


def choice(default: Any, *others: Any) -> Any:
    """A dataclass field defaulting to ``default`` whose value must be one of
    ``(default, *others)``."""
    # A field() made here is used as a default inside the attrs dataclasses.
    return dataclasses.field(  # pylint: disable=invalid-field-call
        default=default, metadata={"choices": (default, *others)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class OpAttrs:
    """Attributes every op kind has.

    Attributes:
        data_format: ``"channels_last"`` or ``"channels_first"``: where a node's channels
            are in its shapes (ops without a layout of their own carry their producer's).
        shares_weights_with: on a later call of a shared layer, the node of its first call
            (its weights are counted there).
        dtype_bytes: bytes per element of the node's tensors and weights.
        inferred_shape: the live frontend's note of the shape the IR inferred where the
            framework reported another (the framework's wins).
    """

    data_format: str = choice("channels_last", "channels_first")
    shares_weights_with: Optional[str] = None
    dtype_bytes: int = 4
    inferred_shape: Optional[tuple] = None


@functools.lru_cache(maxsize=None)
def _fields(cls: type) -> dict:
    """Field name → (type hint, value check, choices or None, required) of an attrs class."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        required = (f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING)
        out[f.name] = (hints[f.name], checker(hints[f.name]), f.metadata.get("choices"),
                       required)
    return out


def field_names(cls: type) -> frozenset:
    """The attribute names an attrs class declares."""
    return frozenset(_fields(cls))


def _is_int(value: Any) -> bool:
    return type(value) is int or (  # pylint: disable=unidiomatic-typecheck
        isinstance(value, numbers.Integral) and not isinstance(value, bool))


def _is_float(value: Any) -> bool:
    return type(value) in (float, int) or (  # pylint: disable=unidiomatic-typecheck
        isinstance(value, numbers.Real) and not isinstance(value, bool))


def _is_bool(value: Any) -> bool:
    return value is True or value is False or value.__class__.__name__ == "bool_"


_SIMPLE = {int: _is_int, float: _is_float, bool: _is_bool, Any: lambda value: True,
           types.NoneType: lambda value: value is None}


def checker(hint: Any):
    """A function telling whether a value is of the (typing) type ``hint``: ``int``,
    ``float``, ``bool``, ``str``, ``tuple``, ``tuple[X, ...]``, ``Optional``/``Union``,
    ``Any`` or a class (numpy scalars count as the matching Python type)."""
    if hint in _SIMPLE:
        return _SIMPLE[hint]
    origin = typing.get_origin(hint)
    if origin is Union:
        options = [checker(h) for h in typing.get_args(hint)]
        return lambda value: any(check(value) for check in options)
    if origin is tuple or hint is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item = checker(args[0])
            return lambda value: (isinstance(value, (tuple, list))
                                  and all(item(v) for v in value))
        items = [checker(h) for h in args]
        return lambda value: isinstance(value, (tuple, list)) and (not items or (
            len(items) == len(value) and all(c(v) for c, v in zip(items, value))))
    return lambda value: isinstance(value, hint)


def conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the (typing) type ``hint`` (see :func:`checker`)."""
    return checker(hint)(value)


def check(cls: type, attrs: Mapping, kind: str) -> None:
    """Check a node's ``attrs`` mapping against the attrs class of op ``kind``.

    Raises:
        AttrsError: an undeclared key, a missing required field, a value of the wrong
            type or outside the field's choices.
    """
    fields = _fields(cls)
    for key, value in attrs.items():
        spec = fields.get(key)
        if spec is None:
            unknown = sorted(k for k in attrs if k not in fields)
            raise AttrsError(f"op {kind!r} has no attribute(s) "
                             f"{', '.join(map(repr, unknown))} (it declares: "
                             f"{', '.join(sorted(fields))})")
        hint, is_valid, choices, _ = spec
        if not is_valid(value):
            raise AttrsError(f"op {kind!r}: attribute {key!r} must be {_describe(hint)}, "
                             f"got {value!r}")
        if choices is not None and value not in choices:
            raise AttrsError(f"op {kind!r}: attribute {key!r} must be one of "
                             f"{', '.join(map(repr, choices))}, got {value!r}")
    missing = sorted(k for k, spec in fields.items() if spec[3] and k not in attrs)
    if missing:
        raise AttrsError(f"op {kind!r} needs the attribute(s) {', '.join(map(repr, missing))}")


def parse(cls: type, attrs: Mapping, kind: str) -> OpAttrs:
    """The typed attributes of an op ``kind`` from a node's ``attrs`` mapping, checked
    (:func:`check`)."""
    check(cls, attrs, kind)
    return view(cls, attrs)


def view(cls: type, attrs: Mapping) -> OpAttrs:
    """The typed attributes of an already checked ``attrs`` mapping (keys the class does
    not declare are ignored; a missing required field raises ``TypeError``)."""
    fields = _fields(cls)
    return cls(**{k: v for k, v in attrs.items() if k in fields})


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
