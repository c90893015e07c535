"""``input``: a graph input (``InputLayer``; an ONNX graph input).

Its output shape is ``attrs["shape"]``.  A view (0 FLOPs, no bytes moved), and no layer:
a model assembled from IR makes it a ``keras.Input``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, no_flops
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class InputAttrs(OpAttrs):
    """``shape`` (batch excluded; ``None``: the node's ``output_shape``) and, from a
    model file, the ``declared_shape`` before a given input shape replaced it."""

    shape: Optional[tuple[Optional[int], ...]] = None
    declared_shape: Optional[tuple] = None


@register
class Input(OpDef):
    """A graph input."""

    kind = OpKind.INPUT
    attrs = InputAttrs
    traits = frozenset({Trait.SOURCE, Trait.VIEW})
    latency = LatencyClass.NONE
    rebuildable = False
    not_rebuildable = ("a graph input is no layer: a model assembled from IR makes it a "
                       "keras.Input (keras_cnnkit.rewrite.build)")
    flops = no_flops

    def infer_shape(self, a: InputAttrs, shapes: list) -> tuple:
        if a.shape is None:
            raise ShapeError("an input node needs attrs['shape']")
        return tuple(a.shape)
