"""Parameter arithmetic behind the plugin's messages: the model linter's own.

The counts come from the cost model (:func:`keras_cnnkit.analysis.cost.node_params`, on
the IR nodes the source describes) and the stack depth from the ``large-kernel`` rule,
so the plugin and ``cnnkit-lint`` cannot disagree.  Counts are weights plus biases where
the layer has them.
"""
from __future__ import annotations

import dataclasses

from keras_cnnkit.analysis.cost import node_params
from keras_cnnkit.analysis.ir import Node, OpKind
from lint_rules.large_kernel import stack_depth as stacked_conv_count

__all__ = ["Saving", "global_pooling_head", "stacked_conv_count", "stacked_small_kernels"]


@dataclasses.dataclass(frozen=True)
class Saving:
    """Parameters before and after a rewrite."""

    before: int
    after: int

    @property
    def saves(self) -> bool:
        """True when the rewrite has fewer parameters."""
        return self.after < self.before

    def __str__(self) -> str:
        return f"{self.before:,} → {self.after:,}"


def _conv(kernel: tuple, in_channels: int, filters: int, use_bias: bool) -> int:
    return node_params(Node("conv", OpKind.CONV, attrs={
        "kernel": kernel, "in_channels": in_channels, "filters": filters, "groups": 1,
        "use_bias": use_bias}))


def _dense(in_features: int, units: int, use_bias: bool) -> int:
    return node_params(Node("dense", OpKind.DENSE, attrs={
        "in_features": in_features, "units": units, "use_bias": use_bias}))


def stacked_small_kernels(kernel: int, rank: int, in_channels: int, out_channels: int,
                          use_bias: bool) -> Saving:
    """One ``kernel``-wide conv versus ``stacked_conv_count(kernel)`` stacked 3-wide convs.

    The first stacked conv maps ``in_channels → out_channels``, the others
    ``out_channels → out_channels``; ``rank`` is the number of spatial axes (1, 2, 3).
    """
    small = (3,) * rank
    count = stacked_conv_count(kernel)
    before = _conv((kernel,) * rank, in_channels, out_channels, use_bias)
    after = (_conv(small, in_channels, out_channels, use_bias)
             + (count - 1) * _conv(small, out_channels, out_channels, use_bias))
    return Saving(before, after)


def global_pooling_head(positions: int, channels: int, units: int, use_bias: bool) -> Saving:
    """``Flatten → Dense(units)`` over ``positions × channels`` versus global pooling first."""
    return Saving(_dense(positions * channels, units, use_bias),
                  _dense(channels, units, use_bias))
