"""ShuffleNet primitives and units: ``ChannelShuffle``, ``ChannelSlice``, ``ShuffleUnit``.

* Zhang, Zhou, Lin & Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural
  Network for Mobile Devices", CVPR 2018, https://arxiv.org/abs/1707.01083 (v1; seeds
  001, 004: channel shuffle lets stacked group convs exchange information).
* Ma, Zhang, Zheng & Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN
  Architecture Design", ECCV 2018, https://arxiv.org/abs/1807.11164 (v2: channel split).
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
import keras

from keras_cnnkit.blockspec.core import channel_axis, check_int, spec_defaults
from keras_cnnkit.layers.base import SpecBlock, register


def _data_format(data_format):
    data_format = data_format or keras.config.image_data_format()
    channel_axis(data_format)
    return data_format


@register
class ChannelShuffle(keras.layers.Layer):
    """Permute channels so that each group receives channels from every group.

    Channels viewed as ``(groups, C/groups)`` are transposed to ``(C/groups, groups)``:
    output channel ``i·groups + g`` is input channel ``g·(C/groups) + i``.  Any rank.

    Args:
        groups: number of groups; must divide the channels.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
    """

    def __init__(self, groups: int = 2, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.groups = check_int(groups, "groups")
        self.data_format = _data_format(data_format)

    def build(self, input_shape):
        channels = input_shape[channel_axis(self.data_format)]
        if channels is not None and channels % self.groups:
            raise ValueError(f"ChannelShuffle: channels ({channels}) must be divisible by "
                             f"`groups` ({self.groups})")
        self.built = True

    def call(self, inputs):
        ops = keras.ops
        shape = ops.shape(inputs)
        if self.data_format == "channels_last":
            channels = inputs.shape[-1]
            x = ops.reshape(inputs, (-1,) + tuple(shape[1:-1])
                            + (self.groups, channels // self.groups))
            x = ops.swapaxes(x, -1, -2)
        else:
            channels = inputs.shape[1]
            x = ops.reshape(inputs, (-1, self.groups, channels // self.groups)
                            + tuple(shape[2:]))
            x = ops.swapaxes(x, 1, 2)
        return ops.reshape(x, shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"groups": self.groups, "data_format": self.data_format})
        return config


@register
class ChannelSlice(keras.layers.Layer):
    """Channels ``start:stop`` of the input (ShuffleNet V2's channel split).

    Args:
        start: first channel kept (>= 0).
        stop: one past the last channel kept (``None``: to the end).
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
    """

    def __init__(self, start: int = 0, stop: int | None = None, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.start = check_int(start, "start", minimum=0)
        self.stop = None if stop is None else check_int(stop, "stop", minimum=start + 1)
        self.data_format = _data_format(data_format)

    def _bounds(self, channels):
        stop = channels if self.stop is None else self.stop
        if channels is not None and stop > channels:
            raise ValueError(f"ChannelSlice: `stop` ({stop}) exceeds the {channels} channels")
        return self.start, stop

    def build(self, input_shape):
        self._bounds(input_shape[channel_axis(self.data_format)])
        self.built = True

    def call(self, inputs):
        if self.data_format == "channels_last":
            start, stop = self._bounds(inputs.shape[-1])
            return inputs[..., start:stop]
        start, stop = self._bounds(inputs.shape[1])
        return inputs[:, start:stop]

    def compute_output_shape(self, input_shape):
        axis = channel_axis(self.data_format)
        start, stop = self._bounds(input_shape[axis])
        shape = list(input_shape)
        shape[axis] = None if stop is None else stop - start
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"start": self.start, "stop": self.stop, "data_format": self.data_format})
        return config


@register
class ShuffleUnit(SpecBlock):
    """A ShuffleNet v1 or v2 unit (2D).

    v1: 1×1 group conv → BN → ReLU → channel shuffle → 3×3 depthwise/s → BN → 1×1 group
    conv → BN; stride 1 adds the input, stride 2 concatenates a 3×3/2 average pool of
    the input (so the branch makes ``filters − C`` channels); ReLU last.
    v2: stride 1 splits the channels in half (``ChannelSlice``), runs 1×1 → BN → ReLU →
    3×3 depthwise → BN → 1×1 → BN → ReLU on one half and concatenates the untouched
    half; stride 2 runs the branch on the whole input and a second branch (3×3
    depthwise/2 → BN → 1×1 → BN → ReLU) instead of the identity.  Both end with
    ``ChannelShuffle(2)``.

    Args:
        filters: output channels.
        strides: 1 or 2.
        version: 1 or 2.
        groups: v1 group count (g = 1, 2, 3, 4, 8 in the paper).
        bottleneck_ratio: v1 bottleneck channels / ``filters`` (1/4).
        first_group_conv: v1: whether the first 1×1 conv is grouped (the paper does not
            group it in the first stage, whose input has only 24 channels).
        group_implementation: ``GroupConv`` implementation of the v1 group convs.
        activation: the unit's activation.
        data_format: ``"channels_last"`` or ``"channels_first"`` (``None``: Keras' default).
        bn_epsilon, bn_momentum: of the batch norms.
    """

    DEFAULTS = spec_defaults("ShuffleUnit")

    def __init__(self, filters, strides=DEFAULTS["strides"], version=DEFAULTS["version"],
                 groups=DEFAULTS["groups"], bottleneck_ratio=DEFAULTS["bottleneck_ratio"],
                 first_group_conv=DEFAULTS["first_group_conv"],
                 group_implementation=DEFAULTS["group_implementation"],
                 activation=DEFAULTS["activation"], data_format=DEFAULTS["data_format"],
                 bn_epsilon=DEFAULTS["bn_epsilon"], bn_momentum=DEFAULTS["bn_momentum"], **kwargs):
        super().__init__({
            "filters": filters, "strides": strides, "version": version, "groups": groups,
            "bottleneck_ratio": bottleneck_ratio, "first_group_conv": first_group_conv,
            "group_implementation": group_implementation, "activation": activation,
            "data_format": data_format, "bn_epsilon": bn_epsilon, "bn_momentum": bn_momentum},
            **kwargs)
