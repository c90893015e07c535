"""Cost formulas the weighted op definitions share.

The conventions are stated in :mod:`keras_cnnkit.analysis.cost`.
"""
from __future__ import annotations

from typing import Optional

from keras_cnnkit.analysis.ops.activation_table import flops_per_element
from keras_cnnkit.analysis.ops.core import Sizes


def weighted_flops(use_bias: bool, activation: Optional[str], sizes: Sizes,
                   macs: int) -> Optional[int]:
    """FLOPs of a conv or dense node: ``2 × MACs``, + 1 per output element for the bias,
    + the fused activation's count per output element (``None`` when that is unknown)."""
    act = flops_per_element(activation)
    if act is None:
        return None
    return 2 * macs + (sizes.out if use_bias else 0) + act * sizes.out
