"""The input shape a user asks for, and where it came from.

``cnnkit-lint --input-shape 299x299`` and ``input-shape = [224, 224, 3]`` in a
configuration file both give dims for the inputs a model leaves unknown, but they do not
weigh the same:

* a **flag** (or a ``lint(..., input_shape=...)`` argument) is an order: a full shape
  whose known dims disagree with the model's declared input is an error;
* a **configuration value** is a project-wide default: it fills only the dims a model
  leaves unknown and never conflicts with a model's own declared input (a model that
  declares every dim ignores it).

Errors name the origin: ``--input-shape (224, 224, 3) conflicts with ...`` for a flag,
``input-shape (224, 224, 3) from pyproject.toml does not fit ...`` for a file.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence


class InputShape(tuple):
    """Batch-excluded dims, with their origin; a tuple, so plain tuples work alike.

    Attributes:
        source: ``"--input-shape"`` or the configuration file's path.
        default: ``True`` for a configuration value (fills unknown dims only).
    """

    source: str
    default: bool

    def __new__(cls, dims: Iterable[int], source: str = "--input-shape",
                default: bool = False):
        shape = super().__new__(cls, (int(d) for d in dims))
        shape.source = source
        shape.default = default
        return shape

    def __getnewargs__(self):
        return (tuple(self), self.source, self.default)

    def describe(self) -> str:
        """How an error names it: ``--input-shape (224, 224)`` or ``input-shape (224,
        224, 3) from pyproject.toml``."""
        dims = "(" + ", ".join(str(d) for d in self) + ")"
        return f"input-shape {dims} from {self.source}" if self.default else \
            f"--input-shape {dims}"


def as_input_shape(value: Optional[Sequence[int]]) -> Optional[InputShape]:
    """``value`` as an :class:`InputShape` (a plain sequence counts as a flag)."""
    if value is None or isinstance(value, InputShape):
        return value
    return InputShape(value)


def fill_unknown(declared: Sequence[Optional[int]], requested: InputShape) -> Optional[tuple]:
    """``declared`` with its unknown (``None``) dims taken from ``requested``.

    ``requested`` gives either the full shape or one value per unknown dim.  A flag's
    full shape replaces the declared one (the caller checks agreement); a default's
    fills the unknown dims only.  ``None`` when ``requested`` fits neither way.
    """
    unknown = [i for i, d in enumerate(declared) if d is None]
    if requested.default and not unknown:
        return tuple(declared)
    if len(requested) == len(declared):
        if not requested.default:
            return tuple(requested)
        return tuple(want if have is None else have
                     for have, want in zip(declared, requested))
    if unknown and len(requested) == len(unknown):
        dims = list(declared)
        for i, value in zip(unknown, requested):
            dims[i] = value
        return tuple(dims)
    return None


def format_shape(shape: Sequence[Optional[int]]) -> str:
    """``(None, None, 3)``: a batch-excluded shape as the notes print it."""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def add_input_node(graph, name: str, declared: Sequence[Optional[int]], shape: tuple,
                   why: str) -> str:
    """Add the INPUT node ``name`` analysed at ``shape`` to ``graph``; where that differs
    from the ``declared`` shape, the node records it and the graph's notes say so,
    with ``why`` (how to choose another size, or that it was asked for)."""
    from keras_cnnkit.analysis.keras_layers import convert_layer

    node = convert_layer(name, "InputLayer", {"batch_shape": (None, *shape)}, [], []).nodes[0]
    declared = tuple(declared)
    if tuple(shape) != declared:
        node.attrs["declared_shape"] = declared
        graph.notes.append(f"input {name!r} of unknown size {format_shape(declared)} "
                           f"analysed at {format_shape(shape)} ({why})")
    graph.add(node)
    return name
