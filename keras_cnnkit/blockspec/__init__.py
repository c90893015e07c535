"""Pure-Python descriptions of every composite block, as a small graph of primitive layers.

A block spec is the single source of truth for a block's structure.  Three consumers
read it:

* the Keras layer classes in :mod:`keras_cnnkit.layers` build their sub-layers from it
  and run it in ``call``;
* the builders in :mod:`keras_cnnkit.models` emit it into a functional graph as plain
  Keras layers (so keras.applications weight files load);
* the linter frontends in :mod:`keras_cnnkit.analysis` expand a block found in a model
  into the ops it is made of, so that rules see inside blocks.

This package must never import Keras or TensorFlow.
"""
from keras_cnnkit.blockspec.core import (
    BlockGraph,
    Op,
    channel_axis,
    channels_of,
    get_spec,
    make_divisible,
    op_bound,
    register_spec,
    registered_specs,
    to_tuple,
)

__all__ = [
    "BlockGraph",
    "Op",
    "channel_axis",
    "channels_of",
    "get_spec",
    "make_divisible",
    "op_bound",
    "register_spec",
    "registered_specs",
    "to_tuple",
]
