"""``ReLU6``: min(max(0, x), 6), MobileNet's low-precision-friendly activation.

Reference: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", 2017; Sandler et al., "MobileNetV2", 2018.
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
import keras

from keras_cnnkit.layers.base import register


@register
class ReLU6(keras.layers.Layer):
    """ReLU capped at 6: ``min(max(0, x), 6)``."""

    def call(self, inputs):
        return keras.ops.relu6(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape
