"""Structural re-parameterisation: parallel linear branches summed → one convolution.

The inference transform behind ``mergeable-branches``: every sum that
:func:`keras_cnnkit.analysis.branches.branch_sums` finds (RepVGG's 3×3 + 1×1 + BN
identity, ACNet's 3×3 + 1×3 + 3×1, MobileOne's k-way over-parameterised branches) becomes
one convolution with a bias.  With ``s = γ / √(σ² + ε)`` per output channel, a branch
``BN(W * x + b)`` is the conv ``(s·W) * x + (s·(b − μ) + β)``; a BN of ``x`` alone is the
same with ``W`` the identity kernel (one tap per channel, at the centre offset); a
trailing rescaling ``·a + c`` scales kernel and bias and shifts the bias.  The kernels
are zero-padded to the merged window at their offsets and added up (Ding et al., RepVGG,
CVPR 2021, §3.3).

:func:`reparameterize` applies it to a whole Keras model, like
:func:`~keras_cnnkit.rewrite.apply.fold_batchnorm`; :func:`finding_substitution` is the
substitution of one ``mergeable-branches`` finding (what ``--fix`` applies).  The outputs
in inference are unchanged to float rounding; the result is an inference model.
"""
from __future__ import annotations

from typing import Callable, Optional

import keras
import numpy as np

from keras_cnnkit.analysis.branches import BranchSum, branch_sums, merged_conv
from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.lint.findings import Finding
from keras_cnnkit.rewrite import fold
from keras_cnnkit.rewrite.apply import (RewriteError, RewriteResult, Substitution,
                                        apply_substitutions)
from keras_cnnkit.rewrite.codegen import node_layers


def reparameterize(model: keras.Model, graph: Optional[Graph] = None) -> RewriteResult:
    """Inference transform: merge every sum of parallel linear branches into one conv.

    ``model`` is not modified.  The rebuilt model computes the same outputs in inference
    (to float rounding); its merged convs have no batch norm to train.
    """
    if graph is None:
        from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
        graph = graph_from_keras(model)
    return apply_substitutions(model, [merge_substitution(graph, merge)
                                       for merge in branch_sums(graph)])


def finding_substitution(finding: Finding, graph: Graph, dtype=None) -> Substitution:
    """The substitution of one ``mergeable-branches`` finding on ``graph``."""
    output = finding.replacement.removed[-1]
    for merge in branch_sums(graph):
        if merge.output.name == output:
            return merge_substitution(graph, merge, finding=finding, dtype=dtype)
    raise RewriteError(f"{finding.code} at {finding.layer!r}: no mergeable branches end "
                       f"at {output!r}")


def merge_substitution(graph: Graph, merge: BranchSum, finding: Optional[Finding] = None,
                       dtype=None) -> Substitution:
    """The :class:`Substitution` replacing ``merge``'s branches and adds by one conv."""
    node = merged_conv(graph, merge)

    def make(_originals: dict, name_for: Callable[[str], str]) -> list:
        return node_layers(node, name=name_for(node.name), dtype=dtype)

    def carry(originals: dict, new: dict) -> None:
        conv = new[node.name]
        kernel, bias = merged_weights(merge, originals, tuple(conv.kernel.shape))
        conv.set_weights([kernel.astype(conv.kernel.dtype), bias.astype(conv.kernel.dtype)])

    return Substitution([n.name for n in merge.removed], node.name,
                        [(node.name, make, [merge.source.name])], carry=carry,
                        finding=finding, preserves_function=True)


def merged_weights(merge: BranchSum, layers: dict, shape: tuple) -> tuple:
    """``(kernel, bias)`` of the merged conv (Keras layout ``shape``), in float64, from
    the branches' Keras layers (IR name → layer)."""
    layout = "depthwise" if merge.depthwise else "out_last"
    kernel = np.zeros(shape, dtype=np.float64)
    bias = np.zeros(merge.filters, dtype=np.float64)
    for branch, offset in zip(merge.branches, merge.offsets):
        if branch.conv is not None:
            k, b = _conv_weights(layers[branch.conv.name], layout, merge.filters)
        else:
            k, b = _identity_kernel(merge, shape, layout), np.zeros(merge.filters)
        if branch.bn is not None:
            gamma, beta, mean, var, eps = fold.bn_stats(layers[branch.bn.name])
            scale = gamma / np.sqrt(var + eps)
            k = fold.scale_out_channels(k, scale, layout)
            b = (b - mean) * scale + beta
        if branch.rescale is not None:
            a, c = _rescaling(layers[branch.rescale.name], merge.filters)
            k, b = fold.scale_out_channels(k, a, layout), b * a + c
        window = tuple(slice(o, o + n) for o, n in zip(offset, k.shape[:-2]))
        kernel[window] += k
        bias += b
    return kernel, bias


def _conv_weights(conv, layout: str, channels: int) -> tuple:
    """``(kernel, bias)`` of a branch's Keras conv in float64, its kernel in the merged
    conv's ``layout`` (a ``Conv`` with one group per channel is depthwise)."""
    if type(conv).__name__ not in fold.KERNEL_LAYOUTS:
        raise RewriteError(f"cannot merge {type(conv).__name__} {conv.name!r}")
    weights = conv.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float64)
    if fold.KERNEL_LAYOUTS[type(conv).__name__] != layout:  # (..., 1, C) ↔ (..., C, 1)
        kernel = np.swapaxes(kernel, -1, -2)
    bias = np.asarray(weights[1], dtype=np.float64) if len(weights) > 1 else np.zeros(channels)
    return kernel, bias


def _identity_kernel(merge: BranchSum, shape: tuple, layout: str) -> np.ndarray:
    """The 1-tap kernel (``shape``'s last two axes) that passes each channel through."""
    ones = (1,) * (len(shape) - 2)
    kernel = np.zeros(ones + tuple(shape[-2:]), dtype=np.float64)
    if layout == "depthwise":  # (..., in, multiplier 1)
        kernel[..., np.arange(merge.filters), 0] = 1.0
    else:  # (..., in/groups, out): output o reads input o of its group
        per_group = shape[-2]
        kernel[..., np.arange(merge.filters) % per_group, np.arange(merge.filters)] = 1.0
    return kernel


def _rescaling(layer, channels: int) -> tuple:
    """``(scale, offset)`` per channel of a Keras ``Rescaling`` layer."""
    if type(layer).__name__ != "Rescaling":
        raise RewriteError(f"cannot merge a branch through {type(layer).__name__} "
                           f"{layer.name!r}")
    scale = np.broadcast_to(np.asarray(layer.scale, dtype=np.float64), (channels,))
    offset = np.broadcast_to(np.asarray(layer.offset, dtype=np.float64), (channels,))
    return scale, offset
