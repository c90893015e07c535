"""The linter's middle end: graph IR, shape inference, cost model.

Data flows one way: frontend → IR → analyses → rules → findings → formatters.
Nothing here imports Keras or TensorFlow; the live-Keras frontend imports Keras only
when it is used.
"""
from keras_cnnkit.analysis.ir import Graph, Node, OpKind

__all__ = ["Graph", "Node", "OpKind"]
