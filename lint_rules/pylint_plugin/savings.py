"""Parameter arithmetic behind the plugin's messages (the model linter's formulas).

Counts are weights plus biases where the layer has them.
"""
from __future__ import annotations

import dataclasses
import math


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


def stacked_conv_count(kernel: int) -> int:
    """How many stacked 3-wide convs cover a ``kernel``-wide receptive field: ⌈(k − 1)/2⌉."""
    return math.ceil((kernel - 1) / 2)


def stacked_small_kernels(kernel: int, rank: int, in_channels: int, out_channels: int,
                          use_bias: bool) -> Saving:
    """One ``kernel``-wide conv versus ``stacked_conv_count(kernel)`` stacked 3-wide convs.

    The first stacked conv maps ``in_channels → out_channels``, the others
    ``out_channels → out_channels``; ``rank`` is the number of spatial axes (1, 2, 3).
    """
    taps = 3 ** rank
    count = stacked_conv_count(kernel)
    biases = out_channels if use_bias else 0
    before = kernel ** rank * in_channels * out_channels + biases
    after = (taps * in_channels * out_channels
             + (count - 1) * taps * out_channels * out_channels + count * biases)
    return Saving(before, after)


def global_pooling_head(positions: int, channels: int, units: int, use_bias: bool) -> Saving:
    """``Flatten → Dense(units)`` over ``positions × channels`` versus global pooling first."""
    biases = units if use_bias else 0
    return Saving(positions * channels * units + biases, channels * units + biases)
