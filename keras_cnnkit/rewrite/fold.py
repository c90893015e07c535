"""Weight arithmetic of the function-preserving rewrites (numpy only).

* Bias into batch norm: ``BN(W·x + b)`` with moving mean ``μ`` equals ``BN'(W·x)`` with
  moving mean ``μ − b``, in inference; in training the batch mean absorbs the bias
  anyway.  (``bias-before-batchnorm``.)
* Batch norm into the conv (inference only): with ``s = γ / √(σ² + ε)``,
  ``BN(W·x + b) = (s·W)·x + (s·(b − μ) + β)``; ``s`` scales the kernel's output
  channels.
"""
from __future__ import annotations

import numpy as np

#: Layer classes whose kernel's last axis (Conv, Dense) or (in, multiplier) pair
#: (DepthwiseConv) indexes the output channels.
KERNEL_LAYOUTS = {
    "Conv1D": "out_last", "Conv2D": "out_last", "Conv3D": "out_last", "Dense": "out_last",
    "DepthwiseConv1D": "depthwise", "DepthwiseConv2D": "depthwise",
}


def bn_stats(bn) -> tuple:
    """``(gamma, beta, mean, variance, epsilon)`` of a Keras ``BatchNormalization``."""
    mean = np.asarray(bn.moving_mean.numpy(), dtype=np.float64)
    var = np.asarray(bn.moving_variance.numpy(), dtype=np.float64)
    gamma = (np.asarray(bn.gamma.numpy(), dtype=np.float64) if bn.scale
             else np.ones_like(mean))
    beta = (np.asarray(bn.beta.numpy(), dtype=np.float64) if bn.center
            else np.zeros_like(mean))
    return gamma, beta, mean, var, float(bn.epsilon)


def scale_out_channels(kernel: np.ndarray, scale: np.ndarray, layout: str) -> np.ndarray:
    """``kernel`` with output channel ``o`` multiplied by ``scale[o]``."""
    if layout == "out_last":
        return kernel * scale
    if layout == "depthwise":  # (..., in, multiplier); output o = i * multiplier + m
        in_ch, mult = kernel.shape[-2], kernel.shape[-1]
        return kernel * scale.reshape(in_ch, mult)
    raise ValueError(f"unknown kernel layout {layout!r}")


def fold_bn_into_kernel(kernel: np.ndarray, bias, bn, layout: str) -> tuple:
    """``(kernel', bias')`` of the conv/dense that computes ``BN(conv(x))`` in inference."""
    gamma, beta, mean, var, eps = bn_stats(bn)
    scale = gamma / np.sqrt(var + eps)
    bias = np.zeros_like(mean) if bias is None else np.asarray(bias, dtype=np.float64)
    new_kernel = scale_out_channels(np.asarray(kernel, dtype=np.float64), scale, layout)
    new_bias = (bias - mean) * scale + beta
    return new_kernel.astype(kernel.dtype), new_bias.astype(kernel.dtype)


def fold_bias_into_bn(bias: np.ndarray, bn) -> None:
    """Subtract the removed ``bias`` from ``bn``'s moving mean, in place."""
    mean = bn.moving_mean.numpy()
    bn.moving_mean.assign((mean.astype(np.float64) - bias).astype(mean.dtype))
