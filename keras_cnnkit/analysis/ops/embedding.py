"""``embedding``: a table look-up (``Embedding``): integer ids → ``output_dim`` vectors.

Output shape: the input's + ``(output_dim,)``.  Parameters ``input_dim · output_dim``;
0 MACs, 0 FLOPs (a gather).
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, no_flops
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class EmbeddingAttrs(OpAttrs):
    """Vocabulary size ``input_dim`` and vector size ``output_dim``."""

    input_dim: int
    output_dim: int


@register
class Embedding(OpDef):
    """An embedding table → ``keras.layers.Embedding``."""

    kind = OpKind.EMBEDDING
    attrs = EmbeddingAttrs
    latency = LatencyClass.MOVEMENT
    flops = no_flops

    def infer_shape(self, a: EmbeddingAttrs, shapes: list) -> tuple:
        return tuple(shapes[0]) + (a.output_dim,)

    def weights(self, node, a: EmbeddingAttrs) -> int:
        return a.input_dim * a.output_dim

    def keras_layers(self, node, a: EmbeddingAttrs, common: dict) -> list:
        return [kc.keras_layer("Embedding")(int(a.input_dim), int(a.output_dim), **common)]
