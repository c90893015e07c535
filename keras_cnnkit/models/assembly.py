"""The shared assemblers every builder runs: input, stages, head, model, weights.

A builder is a config table plus a *body* function ``body(x, ctx) -> x`` that emits the
family's stem and stages through :class:`BuildContext`.  :func:`assemble` does everything
else, identically for every family:

* validates the keras.applications arguments and the common options (:class:`Options`),
  with a ``ValueError`` that says what is allowed;
* resolves the input like keras' ``imagenet_utils.obtain_input_shape``, with the
  family's default and minimum size and any number of input channels;
* runs the body; :meth:`BuildContext.block` emits blocks as plain top-level layers (so
  the layer list is keras.applications'), turns strides into dilation for
  ``output_stride`` and spreads ``drop_path_rate`` over the residual blocks;
* adds the head (``include_top``/``pooling``/``dropout``; the classifier computes in
  float32 under a mixed-precision policy) or, with ``features_only``, returns the stage
  outputs at strides 4, 8, 16 and 32;
* loads weights: a path, or ``"imagenet"`` fetched exactly as keras.applications does,
  adapting the first convolution to ``in_channels``.
"""
from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Callable

from keras_cnnkit.blockspec import make_divisible
from keras_cnnkit.models import weights as weights_lib

#: Nominal strides of the stage outputs that ``features_only`` returns, in order.
FEATURE_STRIDES = (4, 8, 16, 32)


@dataclasses.dataclass(frozen=True)
class Family:
    """What the assemblers need to know about an architecture family.

    Attributes:
        name: the family's name in messages (``"MobileNetV2"``).
        default_size: input height/width when none is given (and of the ImageNet files).
        min_size: the smallest input height/width the architecture accepts.
        dilatable: whether ``output_stride`` 8/16 can be had by dilation.
        residual: whether the blocks have residual branches (``drop_path_rate``).
        weight_sizes: square input sizes with their own ImageNet files (MobileNets); an
            input of such a size keeps it as the default size.
        imagenet: ``imagenet(include_top, size, knobs) -> WeightsFile``; raises
            ``ValueError`` for arguments without ImageNet weights.  ``None`` when the
            family has no published Keras weights.
    """

    name: str
    default_size: int
    min_size: int
    dilatable: bool = False
    residual: bool = False
    weight_sizes: tuple = ()
    imagenet: Callable | None = None


@dataclasses.dataclass(frozen=True)
class Options:
    """The options every builder takes beyond keras.applications' signature.

    Attributes:
        in_channels: input channels (default 3, or those of ``input_shape``).  With
            weights, the first convolution is adapted (timm's ``adapt_input_conv``).
        features_only: return a model whose outputs are the stage outputs at strides
            4, 8, 16 and 32 (selected by ``out_indices``) instead of a classifier.
        out_indices: which of those four outputs, as indices 0-3.
        output_stride: 32 (default), 16 or 8; below 32 the last stages are dilated
            instead of strided (families marked ``dilatable``).
        width_multiplier: scales every layer's channels (rounded to multiples of 8).
        drop_path_rate: stochastic depth on residual branches, rising linearly from 0
            at the first block to this rate at the last.
        dropout: dropout rate before the classifier.
    """

    in_channels: int | None = None
    features_only: bool = False
    out_indices: tuple = (0, 1, 2, 3)
    output_stride: int = 32
    width_multiplier: float = 1.0
    drop_path_rate: float = 0.0
    dropout: float = 0.0

    def validate(self, family: Family) -> None:
        """Raise ``ValueError`` (saying what is allowed) for a bad option."""
        if self.in_channels is not None and (
                not isinstance(self.in_channels, int) or isinstance(self.in_channels, bool)
                or self.in_channels < 1):
            raise ValueError(f"`in_channels` must be a positive int, got {self.in_channels!r}")
        indices = tuple(self.out_indices) if isinstance(self.out_indices, (list, tuple)) else ()
        if not indices or any(i not in range(len(FEATURE_STRIDES)) for i in indices):
            raise ValueError(
                "`out_indices` must be a non-empty sequence of indices in 0-3 (stage outputs "
                f"at strides {FEATURE_STRIDES}), got {self.out_indices!r}"
            )
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"`output_stride` must be 8, 16 or 32, got {self.output_stride!r}")
        if self.output_stride != 32 and not family.dilatable:
            raise ValueError(
                f"{family.name} supports only output_stride=32: its downsampling layers "
                f"cannot be dilated; got output_stride={self.output_stride}"
            )
        _check_rate(self.width_multiplier, "width_multiplier", 0.0, None)
        _check_rate(self.drop_path_rate, "drop_path_rate", 0.0, 1.0, inclusive_low=True)
        if self.drop_path_rate and not family.residual:
            raise ValueError(
                f"{family.name} has no residual branches, so `drop_path_rate` must be 0 "
                f"(got {self.drop_path_rate}); families with residual blocks support it"
            )
        _check_rate(self.dropout, "dropout", 0.0, 1.0, inclusive_low=True)


def _check_rate(value, arg_name: str, low: float, high: float | None,
                inclusive_low: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= low if inclusive_low else value > low)
    ok = ok and (high is None or value < high)
    if not ok:
        bounds = f"{'[' if inclusive_low else '('}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"`{arg_name}` must be a number in {bounds}, got {value!r}")


@dataclasses.dataclass
class FeatureInfo:
    """One stage output of a ``features_only`` model."""

    index: int
    stride: int
    reduction: int
    channels: int
    layer: str


class BuildContext:
    """State shared by a family's body while it emits its layers.

    Tracks the nominal stride and the real reduction (they differ once ``output_stride``
    turns strides into dilation), the dilation rate, the drop-path schedule and the
    stage outputs for ``features_only``.
    """

    def __init__(self, data_format: str, options: Options, num_residual_blocks: int = 0):
        self.data_format = data_format
        self.channel_axis = -1 if data_format == "channels_last" else 1
        self.options = options
        self.stride = 1
        self.reduction = 1
        self.dilation = 1
        self._num_residual = num_residual_blocks
        self._residual_index = 0
        self.features: dict[int, tuple] = {}
        #: Tensors a body hands to its head by name (GoogLeNet's auxiliary taps).
        self.named: dict = {}

    def width(self, channels: int, divisor: int = 8) -> int:
        """``channels`` scaled by ``width_multiplier`` (unchanged at 1.0)."""
        wm = self.options.width_multiplier
        return channels if wm == 1.0 else make_divisible(channels * wm, divisor)

    def downsample(self, stride: int) -> tuple[int, int]:
        """Account for a layer with ``stride``; return its ``(strides, dilation_rate)``.

        Once the reduction would pass ``output_stride`` the layer gets stride 1 and
        later layers a multiplied dilation; the layer itself keeps the previous
        dilation (as timm and DeepLab do).
        """
        if stride == 1:
            return 1, self.dilation
        self.stride *= stride
        if self.reduction * stride > self.options.output_stride:
            previous = self.dilation
            self.dilation *= stride
            return 1, previous
        self.reduction *= stride
        return stride, self.dilation

    def next_drop_path(self) -> float:
        """The drop-path rate of the next residual block (linear schedule)."""
        rate = self.options.drop_path_rate
        index = self._residual_index
        self._residual_index += 1
        if not rate or self._num_residual <= 1:
            return float(rate)
        return rate * index / (self._num_residual - 1)

    def record(self, x):
        """Remember ``x`` as the latest output at the current nominal stride."""
        if self.stride in FEATURE_STRIDES:
            self.features[self.stride] = (x, self.reduction)
        return x

    def block(self, block_class: str, config: dict, x, prefix: str = "",
              names: dict | None = None, stride: int = 1, residual: bool = False,
              stride_key: str = "strides", dilation_key: str | None = "dilation_rate"):
        """Emit one block (see :func:`keras_cnnkit.layers.emit`) and record its output.

        ``stride`` is the block's downsampling; it is passed as ``config[stride_key]``
        and, where ``output_stride`` requires, replaced by ``config[dilation_key]``
        (``None``: the block has no spatial kernel to dilate, such as a DenseNet
        transition).  ``residual`` blocks get the next ``drop_path_rate`` of the schedule.
        """
        from keras_cnnkit.layers import emit

        cfg = dict(config, data_format=self.data_format)
        strides, dilation = self.downsample(stride)
        if stride_key:
            cfg[stride_key] = strides
        if dilation > 1 and dilation_key is not None:
            cfg[dilation_key] = dilation
        if residual:
            rate = self.next_drop_path()
            if rate:
                cfg["drop_path_rate"] = rate
        return self.record(emit(block_class, cfg, x, prefix=prefix, names=names))

    def layer(self, layer, x, stride: int = 1):
        """Apply a plain Keras layer that downsamples by ``stride`` (not dilatable)."""
        strides, _ = self.downsample(stride)
        if strides != stride:
            raise ValueError(f"layer {layer.name} cannot be dilated for output_stride")
        return self.record(layer(x))


def head_dtype():
    """float32 for the classifier under a mixed policy (stable softmax), else default."""
    import keras

    policy = keras.config.dtype_policy()
    return "float32" if policy.compute_dtype != policy.variable_dtype else None


def dense_head(x, ctx: BuildContext, classes: int, classifier_activation):
    """keras.applications' usual top: global average pool, dropout, Dense ``predictions``."""
    import keras

    x = keras.layers.GlobalAveragePooling2D(data_format=ctx.data_format, name="avg_pool")(x)
    if ctx.options.dropout:
        x = keras.layers.Dropout(ctx.options.dropout, name="top_dropout")(x)
    return keras.layers.Dense(classes, activation=classifier_activation, dtype=head_dtype(),
                              name="predictions")(x)


def fc_head(x, ctx: BuildContext, classes: int, classifier_activation,
            units: tuple = (4096, 4096), names: tuple = ("fc1", "fc2")):
    """VGG/AlexNet top: flatten, then ReLU ``Dense`` layers (dropout before each when
    ``dropout`` is set), then the Dense ``predictions``."""
    import keras

    x = keras.layers.Flatten(data_format=ctx.data_format, name="flatten")(x)
    for n, layer_name in zip(units, names):
        if ctx.options.dropout:
            x = keras.layers.Dropout(ctx.options.dropout, name=f"{layer_name}_dropout")(x)
        x = keras.layers.Dense(n, activation="relu", name=layer_name)(x)
    return keras.layers.Dense(classes, activation=classifier_activation, dtype=head_dtype(),
                              name="predictions")(x)


def pooled(x, ctx: BuildContext, pooling):
    """The ``include_top=False`` output: ``pooling`` None, ``"avg"`` or ``"max"``."""
    import keras

    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(data_format=ctx.data_format,
                                                   name="avg_pool")(x)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(data_format=ctx.data_format, name="max_pool")(x)
    return x


def resolve_input_shape(family: Family, input_shape, data_format: str, require_flatten: bool,
                        weights, in_channels: int | None) -> tuple:
    """keras' ``obtain_input_shape`` with the family's sizes and any channel count.

    Returns the input shape without batch dimension.
    """
    channels_first = data_format == "channels_first"
    if input_shape is not None:
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(f"`input_shape` must be a tuple of three ints, got {input_shape}")
        channels = input_shape[0 if channels_first else -1]
        if in_channels is not None and channels != in_channels:
            raise ValueError(f"`in_channels`={in_channels} disagrees with `input_shape` "
                             f"{input_shape}")
        rows, cols = input_shape[1:] if channels_first else input_shape[:2]
    else:
        channels = in_channels or 3
        rows = cols = None
    default_size = family.default_size
    if rows == cols and rows in family.weight_sizes:
        default_size = rows
    if input_shape is None:
        size = default_size if require_flatten else None
        input_shape = (channels, size, size) if channels_first else (size, size, channels)
    if weights == "imagenet" and require_flatten and (rows, cols) != (None, None) and \
            (rows, cols) != (default_size, default_size):
        raise ValueError(
            f"with include_top=True and weights='imagenet', {family.name} takes "
            f"{default_size}x{default_size} inputs; got input_shape={input_shape}"
        )
    check_size(family, input_shape[1:] if channels_first else input_shape[:2], input_shape)
    if require_flatten and None in input_shape:
        raise ValueError("with include_top=True the input size must be static; got "
                         f"input_shape={input_shape}")
    return input_shape


def check_size(family: Family, spatial, shown) -> None:
    """Raise ``ValueError`` if a known spatial size is below the family's minimum."""
    if any(s is not None and s < family.min_size for s in spatial):
        raise ValueError(
            f"{family.name} needs inputs of at least {family.min_size}x{family.min_size} "
            f"pixels; got input shape {tuple(shown)}"
        )


def validate_activation(classifier_activation, weights) -> None:
    """With pretrained weights the classifier activation must be None or softmax."""
    import keras

    if weights is None:
        return
    act = keras.activations.get(classifier_activation)
    if act not in (keras.activations.get("softmax"), keras.activations.get(None)):
        raise ValueError(
            "with pretrained weights `classifier_activation` must be None or 'softmax'; "
            f"got {classifier_activation!r}"
        )


def assemble(family: Family, body: Callable, *, include_top: bool = True, weights=None,
             input_tensor=None, input_shape=None, pooling=None, classes: int = 1000,
             classifier_activation="softmax", name: str | Callable | None = None,
             head: Callable = dense_head, knobs: dict | None = None,
             num_residual_blocks: int = 0, **options):
    """Build a model of ``family`` whose stem and stages ``body(x, ctx)`` emits.

    Args:
        family: the family's facts (sizes, weights, what it supports).
        body: ``body(x, ctx) -> x`` emitting the layers from the input to the last
            feature map, recording stage outputs with ``ctx.record``/``ctx.block``.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation: as in keras.applications.
        name: the model name, or ``name(rows)`` computing it from the input size.
        head: ``head(x, ctx, classes, classifier_activation) -> x``, the classifier.
        knobs: the family's own arguments (``alpha``...), for the weights lookup.
        num_residual_blocks: how many ``residual`` blocks the body emits (drop path).
        **options: the fields of :class:`Options`.
    """
    import keras

    opts = Options(**options)
    opts.validate(family)
    weights_lib.check_weights_arg(weights)
    if include_top and opts.features_only:
        raise ValueError("`features_only=True` returns feature maps and has no classifier: "
                         "pass include_top=False with it")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"`pooling` must be None, 'avg' or 'max', got {pooling!r}")
    if not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise ValueError(f"`classes` must be a positive int, got {classes!r}")
    if weights == "imagenet":
        if include_top and classes != 1000:
            raise ValueError("with weights='imagenet' and include_top=True, `classes` must be "
                             f"1000 (the ImageNet classes); got classes={classes}")
        if family.imagenet is None:
            raise ValueError(f"there are no published Keras ImageNet weights for "
                             f"{family.name}: pass weights=None or the path to a weights file")
        if opts.width_multiplier != 1.0:
            raise ValueError("ImageNet weights exist only for width_multiplier=1.0; got "
                             f"{opts.width_multiplier}")
    if include_top:
        validate_activation(classifier_activation, weights)

    data_format = keras.config.image_data_format()
    shape = resolve_input_shape(family, input_shape, data_format, include_top, weights,
                                opts.in_channels)
    rows = shape[1] if data_format == "channels_first" else shape[0]
    weights_file = size = None
    if weights == "imagenet":
        size = rows if rows in family.weight_sizes else family.default_size
        if family.weight_sizes and rows not in family.weight_sizes:
            warnings.warn(
                f"`input_shape` is undefined, non-square or not one of {family.weight_sizes}; "
                f"weights for input shape ({size}, {size}) will be loaded", stacklevel=3)
        weights_file = family.imagenet(include_top, size, knobs or {})

    in_channels = shape[0] if data_format == "channels_first" else shape[-1]
    if weights is not None and (in_channels != 3 or opts.features_only):
        # Load into the canonical 3-channel model, then transfer (and adapt) by name.
        common = {"include_top": include_top, "pooling": pooling, "classes": classes,
                  "classifier_activation": classifier_activation, "name": name,
                  "head": head, "knobs": knobs, "num_residual_blocks": num_residual_blocks}
        model = assemble(family, body, weights=None, input_tensor=input_tensor,
                         input_shape=input_shape, **common, **options)
        twin_shape = list(shape)
        twin_shape[0 if data_format == "channels_first" else -1] = 3
        twin_opts = dict(options, in_channels=None, features_only=False)
        twin_build = functools.partial(assemble, family, body, weights=weights,
                                       input_shape=tuple(twin_shape), **twin_opts)
        try:
            twin = twin_build(**common)
        except ValueError as err:
            # A features-only model may be given a weights file saved with the top.
            if include_top or weights == "imagenet":
                raise
            try:
                twin = twin_build(**{**common, "include_top": True})
            except ValueError:
                raise err from None
        weights_lib.transfer_weights(twin, model)
        return model

    img_input = _input_layer(input_tensor, shape, family, data_format)
    ctx = BuildContext(data_format, opts, num_residual_blocks)
    x = body(img_input, ctx)
    if opts.features_only:
        outputs, info = _feature_outputs(ctx, family)
    elif include_top:
        outputs = head(x, ctx, classes, classifier_activation)
    else:
        outputs = pooled(x, ctx, pooling)
    inputs = img_input
    if input_tensor is not None:
        from keras.src.ops import operation_utils

        inputs = operation_utils.get_source_inputs(input_tensor)
    model_name = name(size if weights_file else rows) if callable(name) else name
    model = keras.Model(inputs, outputs, name=model_name)
    if opts.features_only:
        model.feature_info = tuple(info)
    if weights_file is not None:
        model.load_weights(weights_lib.fetch(weights_file))
    elif weights is not None:
        model.load_weights(weights)
    return model


def _input_layer(input_tensor, shape: tuple, family: Family, data_format: str):
    import keras

    if input_tensor is None:
        return keras.Input(shape=shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=shape)
    spatial = input_tensor.shape[1:3] if data_format == "channels_last" else \
        input_tensor.shape[2:4]
    check_size(family, tuple(spatial), input_tensor.shape)
    return input_tensor


def _feature_outputs(ctx: BuildContext, family: Family):
    missing = [s for s in FEATURE_STRIDES if s not in ctx.features]
    if missing:
        raise ValueError(f"{family.name} recorded no stage output at stride(s) {missing}")
    outputs, info = [], []
    for i in ctx.options.out_indices:
        stride = FEATURE_STRIDES[i]
        tensor, reduction = ctx.features[stride]
        outputs.append(tensor)
        info.append(FeatureInfo(i, stride, reduction, int(tensor.shape[ctx.channel_axis]),
                                tensor._keras_history.operation.name))  # pylint: disable=protected-access
    return outputs, info
