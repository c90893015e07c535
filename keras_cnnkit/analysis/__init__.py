"""The linter's middle end: graph IR, op registry, shape inference, cost model.

Data flows one way: frontend → IR → analyses → rules → findings → formatters.  Each op
kind of the IR is defined once, in :mod:`keras_cnnkit.analysis.ops` (typed attributes,
shape rule, cost formulas, traits, latency class, Keras codegen); shapes, costs,
patterns and codegen delegate to it.
Nothing here imports Keras or TensorFlow; the live-Keras frontend imports Keras only
when it is used.
"""
from keras_cnnkit.analysis.ir import Graph, Node, OpKind

__all__ = ["Graph", "Node", "OpKind"]
