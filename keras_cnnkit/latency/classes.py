"""Latency classes: which timing behaviour an IR node has.

The latency model fits its efficiency and launch figures per *class*, not per op kind:
a 1×1 convolution behaves like a matrix product, a depthwise one like a memory-bound
stencil, whatever layer class produced them.  :func:`op_class` is the one place that
decides a node's class.  When the op registry (``keras_cnnkit.analysis.ops``) gives every
op kind a ``latency_class`` trait, this function becomes a look-up of that trait plus the
shape split of convolutions (k×k / pointwise / depthwise / grouped), which depends on the
node's attributes rather than its kind.

Classes
    ``conv``        k×k convolution (any kernel with more than one tap; transposed and
                    deformable convolutions too), ``groups == 1``;
    ``pointwise``   1×1 convolution, ``groups == 1`` (a matrix product);
    ``depthwise``   one group per input channel;
    ``grouped``     other grouped convolutions;
    ``dense``       fully connected layers;
    ``elementwise`` activations, element-wise merges, rescaling;
    ``norm``        batch / layer / group normalisation (inference form);
    ``reduction``   pooling, global pooling;
    ``movement``    concat, transpose, slice, pad, crop, channel shuffle, up-sampling,
                    embedding look-up: data moved, nothing computed;
    ``none``        no kernel at all: inputs, views (flatten, reshape, identity),
                    dropout at inference.

An opaque node has no class (``None``): its time is unknown, never 0.
"""
from __future__ import annotations

from typing import Optional

from keras_cnnkit.analysis.ir import Node, OpKind

#: Every class, in the order profiles list them.
LATENCY_CLASSES = ("conv", "pointwise", "depthwise", "grouped", "dense", "elementwise",
                   "norm", "reduction", "movement", "none")

#: Classes whose kernels a following element-wise op can be fused into (XLA's epilogue
#: and loop fusion): the "compute" kernels.
COMPUTE_CLASSES = ("conv", "pointwise", "depthwise", "grouped", "dense")

#: Classes that an XLA-style compiler fuses into their producer's kernel.
FUSABLE_CLASSES = ("elementwise", "norm")

_ELEMENTWISE = (OpKind.ACTIVATION, OpKind.ADD, OpKind.SUBTRACT, OpKind.MULTIPLY,
                OpKind.AVERAGE, OpKind.MAXIMUM, OpKind.MINIMUM, OpKind.RESCALE)
_MOVEMENT = (OpKind.CONCAT, OpKind.TRANSPOSE, OpKind.SLICE, OpKind.PAD, OpKind.CROP,
             OpKind.CHANNEL_SHUFFLE, OpKind.UPSAMPLE, OpKind.EMBEDDING)
_NONE = (OpKind.INPUT, OpKind.FLATTEN, OpKind.RESHAPE, OpKind.IDENTITY, OpKind.DROPOUT)
_CONVS = (OpKind.CONV, OpKind.CONV_TRANSPOSE, OpKind.DEFORM_CONV)


def _conv_class(node: Node) -> str:
    groups = node.attrs.get("groups", 1) or 1
    if groups > 1:
        in_channels = node.attrs.get("in_channels")
        return "depthwise" if groups == in_channels else "grouped"
    kernel = tuple(node.attrs.get("kernel") or ())
    if node.op == OpKind.CONV and kernel and all(k == 1 for k in kernel):
        return "pointwise"
    return "conv"


def op_class(node: Node) -> Optional[str]:
    """The latency class of ``node`` (one of :data:`LATENCY_CLASSES`), or ``None`` for an
    opaque node or an op kind this module does not know."""
    op = node.op
    if op == OpKind.DEPTHWISE_CONV:
        return "depthwise"
    if op in _CONVS:
        return _conv_class(node)
    if op == OpKind.DENSE:
        return "dense"
    if op in _ELEMENTWISE:
        return "elementwise"
    if op in (OpKind.BATCHNORM, OpKind.NORM):
        return "norm"
    if op in (OpKind.POOL, OpKind.GLOBAL_POOL):
        return "reduction"
    if op in _MOVEMENT:
        return "movement"
    if op in _NONE:
        return "none"
    return None
