"""``dropout``: dropout and the other training-only noise layers (``Dropout``,
``SpatialDropout``, ``GaussianDropout``, ``AlphaDropout``, ``GaussianNoise``, drop path;
ONNX ``Dropout``), which do nothing at inference.

A view at inference: 0 FLOPs, no bytes moved.
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, first_shape, no_flops
from keras_cnnkit.analysis.ops.registry import register

#: Keras classes of the dropout kinds that are not plain ``Dropout``.
_CLASSES = {"gaussian": "GaussianDropout", "alpha": "AlphaDropout"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DropoutAttrs(OpAttrs):
    """``rate`` (the noise's standard deviation for ``"noise"``) and ``kind``:
    ``"dropout"``, ``"spatial"``, ``"gaussian"``, ``"alpha"``, ``"noise"``,
    ``"drop_path"``."""

    rate: float = 0.5
    kind: str = choice("dropout", "spatial", "gaussian", "alpha", "noise", "drop_path")


@register
class Dropout(OpDef):
    """A dropout → the matching ``keras.layers`` class."""

    kind = OpKind.DROPOUT
    attrs = DropoutAttrs
    traits = frozenset({Trait.TRANSPARENT, Trait.VIEW})
    latency = LatencyClass.NONE
    infer_shape = first_shape
    flops = no_flops

    def keras_layers(self, node, a: DropoutAttrs, common: dict) -> list:
        rate = float(a.rate)
        if a.kind == "spatial":
            cls = kc.keras_layer(f"SpatialDropout{kc.spatial_rank(node)}D")
            return [cls(rate=rate, **common)]
        if a.kind == "noise":
            return [kc.keras_layer("GaussianNoise")(stddev=rate, **common)]
        return [kc.keras_layer(_CLASSES.get(a.kind, "Dropout"))(rate=rate, **common)]
