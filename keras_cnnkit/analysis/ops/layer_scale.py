"""``layer_scale``: a learned per-channel scale, ``x · γ`` with ``γ`` of shape ``(C,)``
over the channel axis (Touvron et al., "Going deeper with Image Transformers", ICCV 2021,
https://arxiv.org/abs/2103.17239; ConvNeXt's residual branches: Liu et al. 2022).

Keras' ``keras.applications`` ConvNeXt defines it as ``LayerScale(init_values,
projection_dim)`` (channels last); an ONNX ``Mul`` by a per-channel constant that no
per-channel ``Add`` follows is one too (PyTorch's ConvNeXt: ``layer_scale`` of shape
``(C, 1, 1)``, channels first).  Unlike a batch norm it subtracts nothing: a bias before
it is scaled, not cancelled.  Parameters ``C``; FLOPs 1 per element (one multiply);
0 MACs.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Trait, per_output_element
from keras_cnnkit.analysis.ops.errors import ShapeError, UnsupportedNodeError
from keras_cnnkit.analysis.ops.registry import register

LAYER_SCALE = "layer_scale"


@dataclasses.dataclass(frozen=True, kw_only=True)
class LayerScaleAttrs(OpAttrs):
    """``channels``: the size of ``γ`` (the input's last axis); ``init_values``: the
    initial value of every ``γ``."""

    channels: int
    init_values: Optional[float] = None


@register
class LayerScale(OpDef):
    """A layer scale → Keras' own ``LayerScale`` (of ``keras.applications.convnext``)."""

    kind = LAYER_SCALE
    attrs = LayerScaleAttrs
    traits = frozenset({Trait.TRANSPARENT})
    latency = LatencyClass.ELEMENTWISE
    flops = per_output_element(1)

    def infer_shape(self, a: LayerScaleAttrs, shapes: list) -> tuple:
        axis = 0 if a.data_format == "channels_first" else -1
        if not shapes[0] or shapes[0][axis] not in (None, a.channels):
            raise ShapeError(f"a scale of {a.channels} channels on an input of shape "
                             f"{shapes[0]}")
        return tuple(shapes[0])

    def weights(self, node, a: LayerScaleAttrs) -> int:
        return a.channels

    def keras_layers(self, node, a: LayerScaleAttrs, common: dict) -> list:
        try:
            from keras.src.applications.convnext import LayerScale as KerasLayerScale
        except ImportError:
            raise UnsupportedNodeError(node.name, "this Keras has no ConvNeXt LayerScale "
                                       "layer") from None
        if a.data_format == "channels_first":
            raise UnsupportedNodeError(node.name, "Keras' LayerScale scales the last axis, "
                                       "not channels first")
        init = 1e-6 if a.init_values is None else float(a.init_values)
        return [KerasLayerScale(init_values=init, projection_dim=int(a.channels), **common)]
