"""``GroupConv``: grouped convolution with an ONNX-exportable implementation.

Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks", NIPS 2012; Xie et al., "Aggregated Residual Transformations for Deep Neural
Networks" (ResNeXt), CVPR 2017, https://arxiv.org/abs/1611.05431 (seeds 001, 004:
parameters and FLOPs divided by the group count).

Keras' ``Conv2D(groups>1)`` does not convert with tf2onnx (tensorflow-onnx issue 2099:
the TF backend runs grouped convs through an XLA-compiled function).  ``"split"`` slices
the input and kernel per group, runs ordinary convolutions and concatenates: the same
numbers, and a graph every exporter handles.
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
import keras

from keras_cnnkit.blockspec.core import (
    channel_axis,
    check_choice,
    check_int,
    check_size,
    to_tuple,
)
from keras_cnnkit.layers.base import conv_weights, register

IMPLEMENTATIONS = ("native", "split", "auto")


def resolve_implementation(implementation: str, backend: str | None = None) -> str:
    """``"auto"`` → ``"split"`` on TensorFlow (exportable to ONNX, and TF's CPU kernels
    have no grouped conv), ``"native"`` on JAX and PyTorch (one fused kernel)."""
    if implementation != "auto":
        return implementation
    backend = backend or keras.backend.backend()
    return "split" if backend == "tensorflow" else "native"


@register
class GroupConv(keras.layers.Layer):
    """A 1D or 2D convolution whose channels are split into ``groups`` independent groups.

    Weights are those of ``keras.layers.Conv2D(groups=groups)`` (kernel
    ``(*kernel_size, C/groups, filters)``), so the two are interchangeable: parameters
    ``k²·C·filters/groups (+filters)``.

    Args:
        filters: output channels; divisible by ``groups``.
        kernel_size, strides, dilation_rate: int or tuple (rank from the input).
        groups: number of groups; divides the input channels and ``filters``.
        padding: ``"same"`` or ``"valid"``.
        use_bias: add a bias.
        implementation: ``"native"`` (one grouped ``keras.ops.conv``), ``"split"`` (one
            conv per group, concatenated) or ``"auto"`` (see
            :func:`resolve_implementation`; resolved when called, so a saved model
            runs natively on JAX/PyTorch and exportably on TF).
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        kernel_initializer, bias_initializer: Keras initializers.
    """

    def __init__(self, filters, kernel_size=3, strides=1, groups=1, padding="same",
                 dilation_rate=1, use_bias=True, implementation="auto", data_format=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int(filters, "filters")
        self.groups = check_int(groups, "groups")
        if filters % groups:
            raise ValueError(f"`filters` ({filters}) must be divisible by `groups` ({groups})")
        self.kernel_size = check_size(kernel_size, "kernel_size")
        self.strides = check_size(strides, "strides")
        self.dilation_rate = check_size(dilation_rate, "dilation_rate")
        self.padding = check_choice(padding, "padding", ("same", "valid"))
        self.use_bias = bool(use_bias)
        self.implementation = check_choice(implementation, "implementation", IMPLEMENTATIONS)
        self.data_format = data_format or keras.config.image_data_format()
        channel_axis(self.data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel = None
        self.bias = None
        self._rank = None

    def _tuple(self, value, arg_name):
        return to_tuple(value, self._rank, arg_name)

    def build(self, input_shape):
        self._rank = len(input_shape) - 2
        if self._rank not in (1, 2):
            raise ValueError(f"GroupConv takes 3D or 4D inputs, got shape {input_shape}")
        channels = input_shape[channel_axis(self.data_format)]
        if channels is None or channels % self.groups:
            raise ValueError(f"GroupConv: input channels ({channels}) must be divisible by "
                             f"`groups` ({self.groups})")
        kernel = self._tuple(self.kernel_size, "kernel_size")
        self.kernel, self.bias = conv_weights(
            self, kernel + (channels // self.groups, self.filters))
        self.built = True

    def _conv(self, inputs, kernel):
        return keras.ops.conv(inputs, kernel, strides=self._tuple(self.strides, "strides"),
                              padding=self.padding, data_format=self.data_format,
                              dilation_rate=self._tuple(self.dilation_rate, "dilation_rate"))

    def call(self, inputs):
        if resolve_implementation(self.implementation) == "native" or self.groups == 1:
            outputs = self._conv(inputs, self.kernel)
        else:
            axis = channel_axis(self.data_format)
            cin = self.kernel.shape[-2]
            cout = self.filters // self.groups
            parts = []
            for g in range(self.groups):
                if axis == -1:
                    x = inputs[..., g * cin:(g + 1) * cin]
                else:
                    x = inputs[:, g * cin:(g + 1) * cin]
                parts.append(self._conv(x, self.kernel[..., g * cout:(g + 1) * cout]))
            outputs = keras.ops.concatenate(parts, axis=axis)
        if self.use_bias:
            shape = (1,) * (self._rank + 1) + (self.filters,)
            if self.data_format == "channels_first":
                shape = (1, self.filters) + (1,) * self._rank
            outputs = outputs + keras.ops.reshape(self.bias, shape)
        return outputs

    def compute_output_shape(self, input_shape):
        rank = len(input_shape) - 2
        kernel = to_tuple(self.kernel_size, rank, "kernel_size")
        strides = to_tuple(self.strides, rank, "strides")
        dilation = to_tuple(self.dilation_rate, rank, "dilation_rate")
        spatial = input_shape[1:-1] if self.data_format == "channels_last" else input_shape[2:]
        out = []
        for size, k, s, d in zip(spatial, kernel, strides, dilation):
            if size is None:
                out.append(None)
            elif self.padding == "same":
                out.append(-(-size // s))
            else:
                out.append((size - d * (k - 1) - 1) // s + 1)
        if self.data_format == "channels_last":
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "groups": self.groups, "padding": self.padding, "dilation_rate": self.dilation_rate,
            "use_bias": self.use_bias, "implementation": self.implementation,
            "data_format": self.data_format,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config
