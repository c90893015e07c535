"""Reading Keras layer and op configs: the typed-field helpers the layer table
(:mod:`keras_cnnkit.analysis.keras_layers`) and the op-call table
(:mod:`keras_cnnkit.analysis.keras_ops`) share.

Pure Python.  Every helper raises :class:`LayerConfigError` on a value of the wrong type
or out of range, so a malformed model file is a one-line error, never a crash.  Axes
are Keras' (batch included, maybe negative) on input; the helpers return indices into
batch-excluded shapes, as the IR keeps them.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from keras_cnnkit.analysis.ir import Shape
from keras_cnnkit.analysis.ops.activation_table import canonical_name
from keras_cnnkit.analysis.shapes import ShapeError


class LayerConfigError(ValueError):
    """A layer's config cannot be understood (missing or ill-typed field)."""


class NotAnalysable(LayerConfigError):
    """A well-formed layer or call the IR cannot express (a recurrent layer returning its
    states, a reshape fixing the batch size): an opaque node saying why, not an error."""


def activation_name(value: Any) -> Optional[str]:
    """A Keras ``activation`` config value → canonical name (``None`` when linear).

    Accepts a name, a serialized dict (``{"class_name": ..., "config": ...}``) and the
    Keras 3 ``"silu"``/Keras 2 ``"swish"`` spellings (both → ``"silu"``); the spellings
    are the activation table's (:mod:`keras_cnnkit.analysis.ops.activation_table`).
    """
    try:
        return canonical_name(value)
    except TypeError as exc:
        raise LayerConfigError(str(exc)) from None


def ints(value: Any, rank: int, key: str) -> tuple:
    """``value`` (one int, or ``rank`` ints) as a tuple of ``rank`` ints."""
    if isinstance(value, bool):
        raise LayerConfigError(f"`{key}` must be an int or {rank} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * rank
    if isinstance(value, (list, tuple)) and len(value) == rank and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise LayerConfigError(f"`{key}` must be an int or {rank} ints, got {value!r}")


def positive(value: Any, key: str) -> int:
    """``value``, checked to be a positive int."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise LayerConfigError(f"`{key}` must be a positive int, got {value!r}")
    return value


def positive_ints(value: Any, rank: int, key: str) -> tuple:
    """:func:`ints`, each positive."""
    out = ints(value, rank, key)
    for v in out:
        positive(v, key)
    return out


def value_of(config: dict, key: str, default: Any = None) -> Any:
    """``config[key]``, or ``default`` when missing or ``None``."""
    value = config.get(key, default)
    return default if value is None else value


def data_format_of(config: dict) -> str:
    """The config's ``data_format`` (``channels_last`` when not given)."""
    fmt = value_of(config, "data_format", "channels_last")
    if fmt not in ("channels_last", "channels_first"):
        raise LayerConfigError(f"unknown data_format {fmt!r}")
    return fmt


def channels_of(shape: Optional[Shape], fmt: str) -> Optional[int]:
    """The channel count of a batch-excluded ``shape`` in layout ``fmt``."""
    if shape is None or not shape:
        return None
    return shape[0] if fmt == "channels_first" else shape[-1]


def axis_index(axis: Any, rank: int) -> int:
    """A Keras axis (batch included, maybe negative) → index into a batch-excluded shape."""
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            raise LayerConfigError(f"expected one axis, got {axis!r}")
        axis = axis[0]
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise LayerConfigError(f"`axis` must be an int, got {axis!r}")
    full = axis + rank + 1 if axis < 0 else axis
    if not 1 <= full <= rank:
        raise LayerConfigError(f"axis {axis} is out of range for rank {rank} inputs")
    return full - 1


def axes_indices(axis: Any, rank: int) -> tuple:
    """One Keras axis or a list of them → indices into a batch-excluded shape."""
    if isinstance(axis, (list, tuple)):
        return tuple(axis_index(a, rank) for a in axis)
    return (axis_index(axis, rank),)


def pads(value: Any, rank: int, key: str) -> tuple:
    """ZeroPadding/Cropping config → ((begin, end), ...) per spatial dim."""
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * rank
    if isinstance(value, (list, tuple)):
        if rank == 1 and len(value) == 2 and all(isinstance(v, int) for v in value):
            return (tuple(value),)
        if len(value) == rank:
            out = []
            for v in value:
                if isinstance(v, int) and not isinstance(v, bool):
                    out.append((v, v))
                elif isinstance(v, (list, tuple)) and len(v) == 2:
                    out.append((int(v[0]), int(v[1])))
                else:
                    raise LayerConfigError(f"bad `{key}` {value!r}")
            return tuple(out)
    raise LayerConfigError(f"bad `{key}` {value!r}")


def in_channels(shapes: Sequence, fmt: str, class_name: str) -> int:
    """The first input's channel count; a ``ShapeError`` when unknown."""
    channels = channels_of(shapes[0], fmt)
    if channels is None:
        raise ShapeError(f"{class_name} needs a known channel count, got input {shapes[0]}")
    return channels
