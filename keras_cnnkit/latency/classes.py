"""Latency classes: which timing behaviour an IR node has.

The latency model fits its efficiency and launch figures per *class*, not per op kind:
a 1×1 convolution behaves like a matrix product, a depthwise one like a memory-bound
stencil, whatever layer class produced them.  Each op kind's definition in the op
registry (``keras_cnnkit.analysis.ops``) states its class (for convolutions from their
attributes: k×k / pointwise / depthwise / grouped); :func:`op_class` reads it.

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

from keras_cnnkit.analysis.ir import Node
from keras_cnnkit.analysis.ops import latency_class_of

#: Every class, in the order profiles list them.
LATENCY_CLASSES = ("conv", "pointwise", "depthwise", "grouped", "dense", "elementwise",
                   "norm", "reduction", "movement", "none")

#: Classes whose kernels a following element-wise op can be fused into (XLA's epilogue
#: and loop fusion): the "compute" kernels.
COMPUTE_CLASSES = ("conv", "pointwise", "depthwise", "grouped", "dense")

#: Classes that an XLA-style compiler fuses into their producer's kernel.
FUSABLE_CLASSES = ("elementwise", "norm")


def op_class(node: Node) -> Optional[str]:
    """The latency class of ``node`` (one of :data:`LATENCY_CLASSES`), or ``None`` for an
    opaque node or an op kind the registry does not know.

    The op registry's ``latency_class`` of each kind decides
    (:func:`keras_cnnkit.analysis.ops.latency_class_of`); nothing here switches on kinds.
    """
    cls = str(latency_class_of(node))
    return cls if cls in LATENCY_CLASSES else None
