"""The errors of the op registry: bad attributes, bad shapes, broken definitions, no codegen.

Pure Python.  :class:`ShapeError` and :class:`UnsupportedNodeError` are re-exported where
they were first defined (:mod:`keras_cnnkit.analysis.shapes`,
:mod:`keras_cnnkit.rewrite.codegen`), so ``except`` clauses elsewhere keep working.
"""
from __future__ import annotations

from keras_cnnkit.errors import CnnkitError


class ShapeError(ValueError):
    """The attributes and input shapes of an op are inconsistent."""


class AttrsError(ValueError):
    """A node's attributes do not fit its op kind's typed attributes.

    Raised when a node is made (:class:`~keras_cnnkit.analysis.ir.Node`) with an attribute
    its kind does not declare, without one it requires, or with a value of the wrong type.
    """


class OpDefinitionError(CnnkitError, ImportError):
    """An op definition is unusable: no kind name, a taken kind, a missing piece, or a
    third-party plugin (entry point ``keras_cnnkit.op_kinds``) that fails to load."""


class UnknownOpError(KeyError):
    """No op definition is registered for this kind."""


class UnsupportedNodeError(ValueError):
    """An IR node cannot be turned into Keras layers (opaque op, missing attribute).

    Attributes:
        node: the node's name.
        problem: what is missing, as one line.
    """

    def __init__(self, node: str, problem: str):
        self.node = node
        self.problem = problem
        super().__init__(f"node {node!r}: {problem}")
