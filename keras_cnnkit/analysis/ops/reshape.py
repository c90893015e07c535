"""``reshape``: the same elements in another shape (``Reshape``; ONNX ``Reshape``).

``target_shape`` may hold one ``-1``, inferred from the input's size.  A view: 0 FLOPs,
no bytes moved.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, no_flops
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReshapeAttrs(OpAttrs):
    """``target_shape``: batch excluded, at most one ``-1``."""

    target_shape: tuple[Optional[int], ...]


@register
class Reshape(OpDef):
    """A reshape → ``keras.layers.Reshape``."""

    kind = OpKind.RESHAPE
    attrs = ReshapeAttrs
    traits = frozenset({Trait.VIEW})
    latency = LatencyClass.NONE
    flops = no_flops

    def infer_shape(self, a: ReshapeAttrs, shapes: list) -> tuple:
        target = list(a.target_shape)
        total = prod(shapes[0])
        if -1 in target:
            known = prod([d for d in target if d != -1])
            if total is None or known is None:
                target[target.index(-1)] = None
            else:
                if known == 0 or total % known:
                    raise ShapeError(f"cannot reshape {shapes[0]} to {tuple(a.target_shape)}")
                target[target.index(-1)] = total // known
        elif total is not None and prod(target) not in (None, total):
            raise ShapeError(f"cannot reshape {shapes[0]} to {tuple(target)}")
        return tuple(target)

    def keras_layers(self, node, a: ReshapeAttrs, common: dict) -> list:
        target = a.target_shape or node.output_shape
        return [kc.keras_layer("Reshape")(tuple(int(d) for d in target), **common)]
