"""Core types of block specs: :class:`Op`, :class:`BlockGraph` and the spec registry."""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Sequence

#: Name under which a block graph refers to the block's own input tensor.
BLOCK_INPUT = "input"

_SPECS: dict[str, Callable[[dict, tuple], "BlockGraph"]] = {}
_RESOLVERS: dict[str, Callable[[dict], dict]] = {}
_DEFAULTS: dict[str, dict] = {}
_OP_BOUNDS: dict[str, Callable[[dict], int]] = {}

#: Most ops a block without an ``ops`` bound may expand to, whatever its arguments
#: (checked for every spec by ``tests/test_budgets.py``).
FIXED_OP_BOUND = 64


class _Required:
    """Marker for a block argument without a default."""

    def __repr__(self):
        return "REQUIRED"


#: Default value of a block argument that has to be given.
REQUIRED = _Required()


@dataclasses.dataclass(frozen=True)
class Op:
    """One primitive layer inside a block.

    Attributes:
        name: local name, unique in the block (``"expand"``, ``"expand_BN"``).  The Keras
            layer made from it is named ``prefix + name``.
        class_name: the layer class, e.g. ``"Conv2D"``.
        config: keyword arguments of the layer (no ``name``).
        inputs: local names of the ops feeding it; :data:`BLOCK_INPUT` is the block input.
            More than one input means a merge layer called on a list.
        package: ``"keras"`` for ``keras.layers`` classes, ``"keras_cnnkit"`` for this
            package's primitive layers (``ReLU6``, ``ChannelShuffle``, ...).
    """

    name: str
    class_name: str
    config: dict
    inputs: tuple = (BLOCK_INPUT,)
    package: str = "keras"


@dataclasses.dataclass(frozen=True)
class BlockGraph:
    """A block as a DAG of :class:`Op`, listed in a valid execution order."""

    ops: tuple
    output: str

    def __post_init__(self):
        seen = {BLOCK_INPUT}
        for op in self.ops:
            for src in op.inputs:
                if src not in seen:
                    raise ValueError(f"op {op.name!r} reads {src!r} before it is defined")
            if op.name in seen:
                raise ValueError(f"duplicate op name {op.name!r}")
            seen.add(op.name)
        if self.output not in seen:
            raise ValueError(f"block output {self.output!r} is not an op")


def register_spec(class_name: str, resolve: Callable[[dict], dict] | None = None,
                  defaults: dict | None = None, ops: Callable[[dict], int] | None = None):
    """Register ``fn(config, input_shape) -> BlockGraph`` as the spec of a block class.

    ``resolve(config) -> config`` (optional) fills in defaults and raises ``ValueError``
    for bad arguments without needing an input shape; :func:`resolve_config` runs it.
    ``defaults``: every argument of the block and its default (:data:`REQUIRED` where it
    has none), the one statement of them; the layer's signature reads them
    (:func:`spec_defaults`).  ``ops(resolved config) -> int``: an upper bound of the ops
    the block expands to, for blocks whose size grows with an argument (a layer count,
    a kernel size, a list); without it the bound is :data:`FIXED_OP_BOUND`.
    """

    def decorator(fn):
        _SPECS[class_name] = fn
        if resolve is not None:
            _RESOLVERS[class_name] = resolve
        if defaults is not None:
            _DEFAULTS[class_name] = defaults
        if ops is not None:
            _OP_BOUNDS[class_name] = ops
        return fn

    return decorator


def op_bound(class_name: str, config: dict) -> int | None:
    """How many ops block ``class_name`` with layer config ``config`` expands to, at
    most, computed from its arguments (merged with the defaults, not validated) without
    expanding it; ``None`` when ``class_name`` is not a block.  Arguments the bound
    cannot use count as one op (expanding the block fails with the config error)."""
    _ensure_loaded()
    if class_name not in _SPECS:
        return None
    bound = _OP_BOUNDS.get(class_name)
    if bound is None:
        return FIXED_OP_BOUND
    defaults = _DEFAULTS.get(class_name, {})
    args = {k: v for k, v in config.items() if k in defaults} if isinstance(config, dict) \
        else {}
    try:   # the arguments merged, not validated: validating is the expansion's work
        return max(int(bound({**defaults, **args})), 1)
    except (TypeError, ValueError, KeyError, ArithmeticError):
        return 1


def spec_defaults(class_name: str) -> dict:
    """Every argument of block ``class_name`` and its default (:data:`REQUIRED`: none)."""
    _ensure_loaded()
    return dict(_DEFAULTS[class_name])


def resolve_config(class_name: str, config: dict) -> dict:
    """``config`` of block ``class_name`` with defaults filled in, validated."""
    _ensure_loaded()
    resolve = _RESOLVERS.get(class_name)
    return resolve(dict(config)) if resolve is not None else dict(config)


#: What a ``data_format`` of ``None`` (Keras' default) means where Keras is not asked:
#: Keras' own default.  A layer resolves ``None`` with ``keras.config`` first.
DEFAULT_DATA_FORMAT = "channels_last"


def with_defaults(block: str, config: dict, defaults: dict) -> dict:
    """Merge ``config`` over ``defaults``; reject unknown and missing arguments.

    A ``data_format`` of ``None`` becomes :data:`DEFAULT_DATA_FORMAT`.
    """
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"{block} got unknown argument(s): {', '.join(unknown)}")
    merged = {**defaults, **config}
    if "data_format" in merged and merged["data_format"] is None:
        merged["data_format"] = DEFAULT_DATA_FORMAT
    for key, value in merged.items():
        if value is REQUIRED:
            raise ValueError(f"{block} needs the argument `{key}`")
    return merged


def check_int(value: Any, arg_name: str, minimum: int = 1) -> int:
    """Raise ``ValueError`` naming ``arg_name`` unless ``value`` is an int >= ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{arg_name}` must be an int >= {minimum}, got {value!r}")
    return value


def check_number(value: Any, arg_name: str, low: float, high: float | None = None,
                 low_inclusive: bool = True) -> float:
    """Raise ``ValueError`` unless ``low <= value`` (``<`` if exclusive) and ``value <= high``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = value >= low if low_inclusive else value > low
        ok = ok and (high is None or value <= high)
    if not ok:
        bound = f"{'[' if low_inclusive else '('}{low}, {high if high is not None else 'inf'}"
        raise ValueError(f"`{arg_name}` must be a number in {bound}], got {value!r}")
    return value


def check_choice(value: Any, arg_name: str, choices: Sequence) -> Any:
    """Raise ``ValueError`` naming ``arg_name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"`{arg_name}` must be one of {list(choices)}, got {value!r}")
    return value


def get_spec(class_name: str) -> Callable[[dict, tuple], BlockGraph]:
    """The spec function of block ``class_name``; ``KeyError`` if it has none."""
    _ensure_loaded()
    return _SPECS[class_name]


def registered_specs() -> dict:
    """All registered block specs, by class name."""
    _ensure_loaded()
    return dict(_SPECS)


def _ensure_loaded():
    # Importing the spec modules registers them.
    importlib.import_module("keras_cnnkit.blockspec.specs")


def to_tuple(value: Any, rank: int, arg_name: str = "value") -> tuple:
    """Normalise an int or a sequence to a tuple of ``rank`` positive ints (Keras' style)."""
    if isinstance(value, int) and not isinstance(value, bool):
        out = (value,) * rank
    elif isinstance(value, Sequence) and len(value) == rank:
        out = tuple(value)
    else:
        raise ValueError(f"`{arg_name}` must be an int or a sequence of {rank} ints, got {value!r}")
    for v in out:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{arg_name}` must hold positive ints, got {value!r}")
    return out


def check_size(value: Any, arg_name: str) -> Any:
    """Raise ``ValueError`` unless ``value`` is a positive int or a sequence of them.

    Used where the rank is not known yet (before the input shape is).
    """
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not items or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in items):
        raise ValueError(f"`{arg_name}` must be a positive int or a sequence of them, "
                         f"got {value!r}")
    return value


def channel_axis(data_format: str) -> int:
    """-1 for ``channels_last``, 1 for ``channels_first`` (batch included)."""
    if data_format == "channels_last":
        return -1
    if data_format == "channels_first":
        return 1
    raise ValueError(
        f"`data_format` must be 'channels_last' or 'channels_first', got {data_format!r}"
    )


def channels_of(input_shape: Sequence, data_format: str) -> int:
    """The channel count of a batched shape."""
    c = input_shape[channel_axis(data_format)]
    if c is None:
        raise ValueError("the channel dimension of the input must be known")
    return int(c)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None,
                   round_limit: float = 0.9) -> int:
    """Round ``value`` to a multiple of ``divisor`` without dropping more than 10%.

    The rounding rule used by MobileNetV2, EfficientNet and timm.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value
