"""``ConvBNAct``: convolution, optional batch norm and activation, in 1D or 2D."""
from keras_cnnkit.blockspec.core import channel_axis, to_tuple
from keras_cnnkit.layers.base import SpecBlock, register


def check_filters(filters, arg_name="filters"):
    """Raise ``ValueError`` unless ``filters`` is a positive int."""
    if not isinstance(filters, int) or isinstance(filters, bool) or filters < 1:
        raise ValueError(f"`{arg_name}` must be a positive int, got {filters!r}")


@register
class ConvBNAct(SpecBlock):
    """Conv → BatchNorm (``use_bn``) → activation; Conv1D or Conv2D by the input rank.

    Args:
        filters: output channels.
        kernel_size, strides, dilation_rate: int or tuple, as in ``keras.layers.Conv2D``.
        padding: ``"same"`` or ``"valid"``.
        groups: grouped convolution (native Keras groups).
        activation: any Keras activation name, ``"relu6"`` or ``None``.
        use_bn: add ``BatchNormalization`` after the conv.
        use_bias: conv bias; defaults to ``not use_bn`` (a bias before BN is redundant).
        data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    def __init__(self, filters, kernel_size=3, strides=1, padding="same", dilation_rate=1,
                 groups=1, activation="relu", use_bn=True, use_bias=None,
                 data_format="channels_last", bn_epsilon=1e-3, bn_momentum=0.99, **kwargs):
        check_filters(filters)
        check_filters(groups, "groups")
        if filters % groups:
            raise ValueError(f"`filters` ({filters}) must be divisible by `groups` ({groups})")
        if padding not in ("same", "valid"):
            raise ValueError(f"`padding` must be 'same' or 'valid', got {padding!r}")
        channel_axis(data_format)
        for arg_name, value in (("kernel_size", kernel_size), ("strides", strides),
                                ("dilation_rate", dilation_rate)):
            to_tuple(value, len(value) if isinstance(value, (list, tuple)) else 1, arg_name)
        super().__init__(dict(
            filters=filters, kernel_size=kernel_size, strides=strides, padding=padding,
            dilation_rate=dilation_rate, groups=groups, activation=activation, use_bn=use_bn,
            use_bias=(not use_bn) if use_bias is None else use_bias, data_format=data_format,
            bn_epsilon=bn_epsilon, bn_momentum=bn_momentum), **kwargs)
