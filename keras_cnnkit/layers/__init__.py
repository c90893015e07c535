"""Public, serialisable Keras 3 blocks for efficient CNNs (``keras.ops`` only)."""
from keras_cnnkit.layers.activations import ReLU6
from keras_cnnkit.layers.base import SpecBlock, emit
from keras_cnnkit.layers.conv import ConvBNAct

__all__ = ["ConvBNAct", "ReLU6", "SpecBlock", "emit"]
