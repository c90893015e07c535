"""``DeformableConv2D``: deformable convolution, v1 and modulated v2, in ``keras.ops``.

* Dai et al., "Deformable Convolutional Networks", ICCV 2017,
  https://arxiv.org/abs/1703.06211 (v1; seeds 001, 004: an extra conv predicts
  per-position sampling offsets for the main kernel).
* Zhu, Hu, Lin & Dai, "Deformable ConvNets v2: More Deformable, Better Results",
  CVPR 2019, https://arxiv.org/abs/1811.11168 (v2: a learned modulation per tap).

Sampling is bilinear with zeros outside the image (torchvision's ``deform_conv2d``
convention), written with ``keras.ops`` gathers, so the layer runs and differentiates on
TensorFlow, JAX and PyTorch.
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
import keras

from keras_cnnkit.blockspec.core import channel_axis, check_choice, check_int, to_tuple
from keras_cnnkit.layers.base import conv_weights, register


def _same_pad_before(size, out_size, stride: int, effective_kernel: int):
    """TensorFlow's "same" padding before the data along one axis."""
    total = keras.ops.maximum((out_size - 1) * stride + effective_kernel - size, 0)
    return total // 2


def deform_conv2d(inputs, offsets, kernel, mask=None, strides=(1, 1), padding="valid",
                  dilation_rate=(1, 1), deformable_groups: int = 1):
    """Deformable 2D convolution of channels_last ``inputs`` (no bias).

    Output position ``p`` samples tap ``k`` of the kernel at
    ``p·s − pad + k·d + Δp_k`` (bilinear, zero outside) and, when ``mask`` is given,
    scales it by ``m_k``.

    Args:
        inputs: ``(B, H, W, C)``.
        offsets: ``(B, H_out, W_out, G·K·2)``, ordered ``[group][tap][(dy, dx)]`` with
            tap ``k = i·kw + j``; ``G`` is ``deformable_groups`` (each group of ``C/G``
            channels has its own offsets), ``K = kh·kw``.
        kernel: ``(kh, kw, C, filters)``, as ``keras.layers.Conv2D``.
        mask: ``(B, H_out, W_out, G·K)`` modulation, or ``None`` (v1).
        strides, dilation_rate: pairs of ints.
        padding: ``"valid"`` or ``"same"`` (TensorFlow's convention).
        deformable_groups: G.

    Returns:
        ``(B, H_out, W_out, filters)``.
    """
    ops = keras.ops
    kh, kw, channels, filters = kernel.shape
    taps, groups = kh * kw, deformable_groups
    cg = channels // groups
    shape = ops.shape(inputs)
    batch, height, width = shape[0], shape[1], shape[2]
    out_shape = ops.shape(offsets)
    out_h, out_w = out_shape[1], out_shape[2]
    (sh, sw), (dh, dw) = strides, dilation_rate
    dtype = inputs.dtype
    if padding == "same":
        pad_top = _same_pad_before(height, out_h, sh, (kh - 1) * dh + 1)
        pad_left = _same_pad_before(width, out_w, sw, (kw - 1) * dw + 1)
    else:
        pad_top = pad_left = 0
    # Sampling positions (B, H_out, W_out, G, K).
    base_y = ops.cast(ops.arange(out_h) * sh - pad_top, dtype)
    base_x = ops.cast(ops.arange(out_w) * sw - pad_left, dtype)
    tap_y = ops.cast(ops.repeat(ops.arange(kh) * dh, kw), dtype)
    tap_x = ops.cast(ops.tile(ops.arange(kw) * dw, [kh]), dtype)
    offsets = ops.reshape(offsets, (batch, out_h, out_w, groups, taps, 2))
    y = (ops.reshape(base_y, (1, -1, 1, 1, 1)) + ops.reshape(tap_y, (1, 1, 1, 1, taps))
         + offsets[..., 0])
    x = (ops.reshape(base_x, (1, 1, -1, 1, 1)) + ops.reshape(tap_x, (1, 1, 1, 1, taps))
         + offsets[..., 1])
    y0, x0 = ops.floor(y), ops.floor(x)
    ly, lx = y - y0, x - x0
    if mask is not None:
        mask = ops.reshape(mask, (batch, out_h, out_w, groups, taps))

    # Values gathered per group: (B, G, H·W, C/G).
    flat = ops.transpose(ops.reshape(inputs, (batch, height * width, groups, cg)), (0, 2, 1, 3))
    count = out_h * out_w * taps
    sampled = 0.0
    for cy, cx, weight in ((y0, x0, (1 - ly) * (1 - lx)), (y0, x0 + 1, (1 - ly) * lx),
                           (y0 + 1, x0, ly * (1 - lx)), (y0 + 1, x0 + 1, ly * lx)):
        inside = ((cy >= 0) & (cy <= ops.cast(height - 1, dtype))
                  & (cx >= 0) & (cx <= ops.cast(width - 1, dtype)))
        weight = weight * ops.cast(inside, dtype)
        if mask is not None:
            weight = weight * mask
        index = (ops.cast(ops.clip(cy, 0, ops.cast(height - 1, dtype)), "int32") * width
                 + ops.cast(ops.clip(cx, 0, ops.cast(width - 1, dtype)), "int32"))
        index = ops.reshape(ops.transpose(index, (0, 3, 1, 2, 4)), (batch, groups, count, 1))
        values = ops.take_along_axis(
            flat, ops.broadcast_to(index, (batch, groups, count, cg)), axis=2)
        weight = ops.reshape(ops.transpose(weight, (0, 3, 1, 2, 4)), (batch, groups, count, 1))
        sampled = sampled + values * weight
    # (B, G, H_out, W_out, K, C/G) → (B, H_out, W_out, K·C), tap-major as the kernel.
    sampled = ops.reshape(sampled, (batch, groups, out_h, out_w, taps, cg))
    sampled = ops.reshape(ops.transpose(sampled, (0, 2, 3, 4, 1, 5)),
                          (batch, out_h, out_w, taps * channels))
    return ops.matmul(sampled, ops.reshape(kernel, (taps * channels, filters)))


@register
class DeformableConv2D(keras.layers.Layer):
    """Deformable 2D convolution: a zero-initialised conv predicts the sampling offsets.

    ``offset_conv`` (same kernel, strides, padding and dilation as the main conv, with
    bias) outputs ``2·K·deformable_groups`` offsets per position, plus ``K·G``
    modulation logits when ``modulated`` (v2; the modulation is their sigmoid).  It
    starts at zero, so a fresh v1 layer equals ``Conv2D`` with the same kernel and a
    fresh v2 layer scales every tap by 0.5 (the paper's initialisation).

    Parameters: ``k²·C·filters (+filters)`` for the main kernel and
    ``k²·C·(2|3)·K·G + (2|3)·K·G`` for the offset conv.

    Args:
        filters: output channels.
        kernel_size, strides, dilation_rate: int or pair.
        padding: ``"same"`` or ``"valid"``.
        deformable_groups: channel groups with their own offsets (divides the input
            channels).
        modulated: DCNv2 modulation.
        use_bias: bias of the main conv.
        activation: applied to the output.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        kernel_initializer, bias_initializer: of the main conv.
    """

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", dilation_rate=1,
                 deformable_groups=1, modulated=False, use_bias=True, activation=None,
                 data_format=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters = check_int(filters, "filters")
        self.kernel_size = to_tuple(kernel_size, 2, "kernel_size")
        self.strides = to_tuple(strides, 2, "strides")
        self.dilation_rate = to_tuple(dilation_rate, 2, "dilation_rate")
        self.padding = check_choice(padding, "padding", ("same", "valid"))
        self.deformable_groups = check_int(deformable_groups, "deformable_groups")
        self.modulated = bool(modulated)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        self.data_format = data_format or keras.config.image_data_format()
        channel_axis(self.data_format)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        taps = self.kernel_size[0] * self.kernel_size[1]
        self.offset_conv = keras.layers.Conv2D(
            taps * self.deformable_groups * (3 if self.modulated else 2), self.kernel_size,
            strides=self.strides, padding=self.padding, dilation_rate=self.dilation_rate,
            kernel_initializer="zeros", bias_initializer="zeros",
            data_format="channels_last", name="offset_conv")
        self.kernel = None
        self.bias = None

    def _nhwc(self, shape):
        shape = tuple(shape)
        if self.data_format == "channels_first":
            return (shape[0], *shape[2:], shape[1])
        return shape

    def build(self, input_shape):
        shape = self._nhwc(input_shape)
        if len(shape) != 4:
            raise ValueError(f"DeformableConv2D takes 4D inputs, got shape {input_shape}")
        channels = shape[-1]
        if channels is None or channels % self.deformable_groups:
            raise ValueError(f"DeformableConv2D: input channels ({channels}) must be divisible"
                             f" by `deformable_groups` ({self.deformable_groups})")
        self.offset_conv.build(shape)
        self.kernel, self.bias = conv_weights(self, self.kernel_size + (channels, self.filters))
        self.built = True

    def call(self, inputs):
        if self.data_format == "channels_first":
            inputs = keras.ops.transpose(inputs, (0, 2, 3, 1))
        raw = self.offset_conv(inputs)
        count = 2 * self.kernel_size[0] * self.kernel_size[1] * self.deformable_groups
        mask = keras.ops.sigmoid(raw[..., count:]) if self.modulated else None
        outputs = deform_conv2d(inputs, raw[..., :count], self.kernel, mask,
                                strides=self.strides, padding=self.padding,
                                dilation_rate=self.dilation_rate,
                                deformable_groups=self.deformable_groups)
        if self.use_bias:
            outputs = outputs + self.bias
        outputs = self.activation(outputs)
        if self.data_format == "channels_first":
            outputs = keras.ops.transpose(outputs, (0, 3, 1, 2))
        return outputs

    def compute_output_shape(self, input_shape):
        shape = self.offset_conv.compute_output_shape(self._nhwc(input_shape))
        shape = (*shape[:-1], self.filters)
        if self.data_format == "channels_first":
            return (shape[0], shape[-1], *shape[1:-1])
        return shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides,
            "padding": self.padding, "dilation_rate": self.dilation_rate,
            "deformable_groups": self.deformable_groups, "modulated": self.modulated,
            "use_bias": self.use_bias,
            "activation": keras.activations.serialize(self.activation),
            "data_format": self.data_format,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        })
        return config
