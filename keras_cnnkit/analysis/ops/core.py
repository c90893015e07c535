"""What an op definition is: :class:`OpDef`, its traits and its latency classes.

An op kind is defined once, by an :class:`OpDef` subclass registered with
:func:`~keras_cnnkit.analysis.ops.registry.register`.  The class holds everything the
linter knows about the kind:

* ``kind``: the kind's name, the value of ``Node.op``;
* ``attrs``: its typed attributes (an :class:`~keras_cnnkit.analysis.ops.attrs.OpAttrs`
  dataclass; ``Node.attrs`` is checked against it when a node is made);
* :meth:`OpDef.infer_shape`: its shape rule;
* :meth:`OpDef.weights`, :meth:`OpDef.macs`, :meth:`OpDef.flops`,
  :meth:`OpDef.bytes_moved`: its cost formulas (conventions: :mod:`keras_cnnkit.analysis.cost`);
* ``traits``: the groupings it belongs to (:class:`Trait`);
* :meth:`OpDef.latency_class`: its class for a latency model (:class:`LatencyClass`);
* :meth:`OpDef.keras_layers`: its Keras codegen, or ``rebuildable = False`` with the
  reason in ``not_rebuildable``.

Every method takes the typed attributes ``a``; the cost and codegen methods also take the
node (for its inputs and shapes).  Pure Python: a definition imports Keras only inside
:meth:`OpDef.keras_layers`.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar, Mapping, Optional, Sequence

from keras_cnnkit.analysis.ops import attrs as attrs_mod
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.errors import ShapeError, UnsupportedNodeError

if TYPE_CHECKING:  # pragma: no cover
    from keras_cnnkit.analysis.ir import Node


class Trait:
    """The groupings an op kind can belong to (``OpDef.traits``).

    Each named set in the analyses (``patterns.WEIGHTED``, ``patterns.MERGES``...) is the
    set of kinds with one trait, so there is one definition of each.
    """

    #: Has a weight tensor and multiply-accumulates (convolutions, dense): the "layers"
    #: of a plain stack, and what can carry a bias.
    WEIGHTED = "weighted"
    #: Joins several tensors (element-wise merges, concatenation).
    MERGE = "merge"
    #: Unary, per element or per channel: never mixes channels or positions, so rules may
    #: look through it (batch norm, activations, dropout, identity, layer scale).
    TRANSPARENT = "transparent"
    #: Moves no data at run time: its output is its input, re-labelled (input, flatten,
    #: reshape, identity, dropout at inference); ``bytes_moved`` is 0.
    VIEW = "view"
    #: An activation function as an op of its own.
    ACTIVATION = "activation"
    #: A graph input: reads no tensor, is no layer.
    SOURCE = "source"
    #: Not analysed: no shape rule or formula applies; its parameters are the frontend's
    #: observation and its costs are unknown.
    OPAQUE = "opaque"

    ALL = frozenset({WEIGHTED, MERGE, TRANSPARENT, VIEW, ACTIVATION, SOURCE, OPAQUE})


class LatencyClass:
    """How a latency model should treat a node (:meth:`OpDef.latency_class`).

    ``conv``
        a dense spatial convolution (groups = 1, more than one tap; transposed and
        deformable convolutions too);
    ``pointwise``
        a 1×1 convolution with groups = 1 (a matrix multiply per position);
    ``depthwise``
        one group per input channel;
    ``grouped``
        1 < groups < input channels;
    ``dense``
        a matrix multiply (``Dense``);
    ``elementwise``
        arithmetic per element (activations, merges, affine rescaling, layer scale,
        bilinear up-sampling);
    ``reduction``
        a window or a whole axis reduced (pooling, global pooling);
    ``movement``
        data copied or gathered, no arithmetic (concat, pad, crop, slice, transpose,
        channel shuffle, nearest up-sampling, embedding look-up);
    ``norm``
        a normalisation (batch, layer, group, unit norm);
    ``none``
        no run-time kernel (inputs, views, dropout at inference, identity);
    ``unknown``
        not analysed (opaque ops).
    """

    CONV = "conv"
    POINTWISE = "pointwise"
    DEPTHWISE = "depthwise"
    GROUPED = "grouped"
    DENSE = "dense"
    ELEMENTWISE = "elementwise"
    REDUCTION = "reduction"
    MOVEMENT = "movement"
    NORM = "norm"
    NONE = "none"
    UNKNOWN = "unknown"

    ALL = frozenset({CONV, POINTWISE, DEPTHWISE, GROUPED, DENSE, ELEMENTWISE, REDUCTION,
                     MOVEMENT, NORM, NONE, UNKNOWN})


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Element counts of one sample of a node's tensors (all known).

    Attributes:
        out: elements of the output.
        ins: elements of each input, in argument order.
    """

    out: int
    ins: tuple


class OpDef:
    """The definition of one op kind (see the module docstring).

    Subclasses set the class attributes and override :meth:`infer_shape`, :meth:`flops`
    and :meth:`keras_layers` (the pieces every kind needs; :func:`missing_pieces` lists
    those left out), and :meth:`weights`/:meth:`macs` where they are not 0.
    """

    #: The kind's name: the value of ``Node.op``.
    kind: ClassVar[str] = ""
    #: The typed attributes (an :class:`OpAttrs` dataclass).
    attrs: ClassVar[type] = OpAttrs
    #: The :class:`Trait` values of this kind.
    traits: ClassVar[frozenset] = frozenset()
    #: The :class:`LatencyClass` (:meth:`latency_class` may refine it by attributes).
    latency: ClassVar[str] = LatencyClass.NONE
    #: Whether :meth:`keras_layers` can rebuild a node of this kind.
    rebuildable: ClassVar[bool] = True
    #: Why not, when ``rebuildable`` is False (shown in ``UnsupportedNodeError``).
    not_rebuildable: ClassVar[str] = ""

    def __repr__(self) -> str:
        return f"<op {self.kind!r}: {type(self).__module__}.{type(self).__name__}>"

    def has(self, trait: str) -> bool:
        """Whether this kind has ``trait``."""
        return trait in self.traits

    # -- attributes --------------------------------------------------------------------

    def check(self, attrs: Mapping) -> None:
        """Check a node's ``attrs`` against the typed attributes (``AttrsError``)."""
        attrs_mod.check(self.attrs, attrs, self.kind)

    def parse(self, attrs: Mapping) -> OpAttrs:
        """The typed attributes of a node's ``attrs``, checked (``AttrsError``)."""
        return attrs_mod.parse(self.attrs, attrs, self.kind)

    def view(self, attrs: Mapping) -> OpAttrs:
        """The typed attributes of an already checked node's ``attrs``."""
        return attrs_mod.view(self.attrs, attrs)

    # -- shape -------------------------------------------------------------------------

    def infer_shape(self, a: OpAttrs, shapes: list) -> Optional[tuple]:
        """The output shape (batch excluded) from the input shapes, all known.

        Raises ``ShapeError`` when the attributes contradict the shapes (this base: always,
        a kind must override it).
        """
        raise ShapeError(f"no shape rule for op kind {self.kind!r}")

    # -- cost --------------------------------------------------------------------------

    def weights(self, node: "Node", a: OpAttrs) -> Optional[int]:
        """Weights the node reads (shared or not); ``None`` where no formula exists."""
        del node, a
        return 0

    def macs(self, node: "Node", a: OpAttrs, sizes: Sizes) -> int:
        """Multiply-accumulates of one sample (0 except convolutions and dense)."""
        del node, a, sizes
        return 0

    def flops(self, node: "Node", a: OpAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        """FLOPs of one sample (``None`` where unknown, e.g. an activation outside the
        table; this base: always, a kind must override it)."""
        del node, a, sizes, macs

    def bytes_moved(self, node: "Node", a: OpAttrs, sizes: Sizes,
                    weights: Optional[int]) -> int:
        """Bytes read and written: inputs + weights + output (0 for a view)."""
        del node
        if self.has(Trait.VIEW):
            return 0
        return a.dtype_bytes * (sum(sizes.ins) + sizes.out + (weights or 0))

    # -- latency -----------------------------------------------------------------------

    def latency_class(self, a: OpAttrs) -> str:
        """The :class:`LatencyClass` of a node with attributes ``a``."""
        del a
        return self.latency

    # -- codegen -----------------------------------------------------------------------

    def keras_layers(self, node: "Node", a: OpAttrs, common: dict) -> list:
        """The Keras layers computing ``node``, in call order; the last is the op itself.

        ``common`` holds the keyword arguments every layer takes (``name``, maybe
        ``dtype``).  Raises ``UnsupportedNodeError`` for attributes without a Keras
        equivalent (this base: always; a rebuildable kind must override it).
        """
        del a, common
        raise UnsupportedNodeError(node.name, f"op {self.kind!r} has no Keras codegen")


#: The methods every definition must provide, with what they are.
REQUIRED = (("infer_shape", "a shape rule (infer_shape)"),
            ("flops", "a FLOP formula (flops)"))


def missing_pieces(definition: OpDef) -> list:
    """What ``definition`` lacks, as lines (empty when it is complete).

    A kind needs a name, an :class:`OpAttrs` dataclass, known traits and latency class, a
    shape rule, a FLOP formula, and a Keras codegen unless it is marked
    ``rebuildable = False`` with a reason.
    """
    cls = type(definition)
    out = []
    if not isinstance(definition.kind, str) or not definition.kind:
        out.append("a kind name (kind)")
    if not (isinstance(definition.attrs, type) and issubclass(definition.attrs, OpAttrs)
            and dataclasses.is_dataclass(definition.attrs)):
        out.append("typed attributes (attrs: an OpAttrs dataclass)")
    unknown = sorted(set(definition.traits) - Trait.ALL)
    if unknown:
        out.append(f"known traits (not {', '.join(unknown)})")
    if definition.latency not in LatencyClass.ALL:
        out.append(f"a latency class from LatencyClass (not {definition.latency!r})")
    for method, what in REQUIRED:
        if getattr(cls, method) is getattr(OpDef, method):
            out.append(what)
    if definition.rebuildable and cls.keras_layers is OpDef.keras_layers:
        out.append("a Keras codegen (keras_layers), or rebuildable = False with a reason")
    if not definition.rebuildable and not definition.not_rebuildable.strip():
        out.append("the reason it is not rebuildable (not_rebuildable)")
    return out


def first_shape(_definition: OpDef, _a: OpAttrs, shapes: Sequence) -> tuple:
    """Shape rule of ops whose output has their (first) input's shape."""
    return tuple(shapes[0])


def no_flops(_definition: OpDef, _node: "Node", _a: OpAttrs, _sizes: Sizes,
             _macs: int) -> int:
    """FLOP formula of ops that only move (or do not touch) data: 0."""
    return 0


def per_output_element(count: int):
    """FLOP formula of ``count`` FLOPs per output element."""
    def flops(_definition: OpDef, _node: "Node", _a: OpAttrs, sizes: Sizes,
              _macs: int) -> int:
        return count * sizes.out
    flops.__doc__ = f"FLOP formula: {count} per output element."
    return flops
