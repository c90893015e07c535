"""``deform_conv``: the sampling half of a deformable convolution (Dai et al. 2017;
modulated: Zhu et al. 2019), as ``keras_cnnkit.layers.DeformableConv2D`` computes it.

The IR splits a ``DeformableConv2D`` into its offset convolution (a ``conv`` node,
``2·k²`` offsets per deformable group, ``+k²`` when modulated) and this node, which reads
``(x, offsets)``.  Shape and parameters are a convolution's.  MACs: the convolution's +
4 per (output position, kernel tap, input channel) for bilinear sampling; FLOPs: ``2 ×
MACs`` + bias + activation, + 1 per (position, tap, input channel) for the modulation
mask when ``modulated``.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops.conv_family import ConvAttrs, ConvFamily
from keras_cnnkit.analysis.ops.core import Sizes, Trait
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.ops.registry import register


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeformConvAttrs(ConvAttrs):
    """A convolution's attributes plus ``deformable_groups`` (channel groups with their
    own offsets) and ``modulated`` (DCNv2's learned mask)."""

    deformable_groups: int = 1
    modulated: bool = False


@register
class DeformConv(ConvFamily):
    """The sampling convolution of a deformable convolution (not rebuildable alone)."""

    kind = OpKind.DEFORM_CONV
    attrs = DeformConvAttrs
    traits = frozenset({Trait.WEIGHTED})
    rebuildable = False
    not_rebuildable = (
        "the IR splits DeformableConv2D into its offset conv and this sampling conv, which "
        "reads the offsets as an input; keras_cnnkit.layers.DeformableConv2D computes its "
        "offsets inside, and no Keras layer samples with given offsets")

    def macs(self, node, a: DeformConvAttrs, sizes: Sizes) -> int:
        positions = sizes.out // a.filters
        return (super().macs(node, a, sizes)
                + 4 * positions * prod(a.kernel) * a.in_channels)

    def flops(self, node, a: DeformConvAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        flops = super().flops(node, a, sizes, macs)
        if flops is not None and a.modulated:
            # the modulation mask: one multiply per (position, tap, input channel)
            flops += sizes.out // a.filters * prod(a.kernel) * a.in_channels
        return flops
