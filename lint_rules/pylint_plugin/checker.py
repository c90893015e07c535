"""The pylint checker: model-linter rules applied to the source that builds a Keras model."""
from __future__ import annotations

from typing import Optional

from astroid import nodes
from pylint.checkers import BaseChecker

from lint_rules.pylint_plugin.keras_names import (
    call_argument,
    infer_constant,
    infer_dims,
    infer_int,
    keras_symbol,
)
from lint_rules.pylint_plugin.layer_flow import (
    ANY_CONV,
    CONV,
    DROPOUT,
    ELEMENTWISE,
    LayerRef,
    LayerUse,
    add_call,
    canonical_class,
    layer_ref,
    rank_of,
    sequential_layers,
    upstream,
)
from lint_rules.pylint_plugin.savings import (
    global_pooling_head,
    stacked_conv_count,
    stacked_small_kernels,
)
from lint_rules.large_kernel import LargeKernel
from lint_rules.pylint_plugin.shapes import (
    TensorShape,
    per_axis,
    reaches_model_input,
    shape_into,
)

#: Where ``safe_mode`` sits positionally in Keras' loading functions.
_SAFE_MODE_POSITION = {"load_model": 3, "deserialize_keras_object": 2}


def _kernel_text(size: int, rank: int) -> str:
    """``5x5`` for a 2-D kernel of 5, ``size-7`` for a 1-D one."""
    return "x".join([str(size)] * rank) if rank > 1 else f"size-{size}"


class KerasModelChecker(BaseChecker):
    """Finds the model linter's inefficiencies in literal Keras model-building code.

    Message symbols are the model linter's rule symbols where the check is the same one
    (``large-kernel`` is CNK101, ``flatten-dense-head`` CNK105, ``bias-before-batchnorm``
    CNK108, ``dropout-before-batchnorm`` CNK109), so one ``disable`` name works for both.
    """

    name = "keras-cnnkit"
    #: Thresholds, with the model linter's rules' defaults (``--large-kernel-min-size``).
    options = (
        ("large-kernel-min-size", {
            "default": LargeKernel.MIN_KERNEL, "type": "int", "metavar": "<int>",
            "help": "Smallest square conv kernel that large-kernel (R5701) considers; "
                    "the model linter's CNK101 min_kernel (default "
                    f"{LargeKernel.MIN_KERNEL})."}),
    )
    msgs = {
        "R5701": (
            "%s with a %s kernel (%s): %d stacked %s convs cover the same receptive field, "
            "params %s",
            "large-kernel",
            "Used when a Conv1D/2D/3D has a square kernel of 5 or more (option "
            "--large-kernel-min-size) and stacked 3-wide "
            "convolutions with the same receptive field need fewer parameters (model linter "
            "rule CNK101; Simonyan & Zisserman 2014, arXiv:1409.1556).",
        ),
        "R5702": (
            "Flatten() feeds Dense(%s): %s",
            "flatten-dense-head",
            "Used when Flatten is followed by Dense (weightless element-wise layers such as "
            "Dropout in between do not count): the Dense kernel grows with the feature map's "
            "spatial size; global average pooling first keeps only the channels (model linter "
            "rule CNK105; Lin et al. 2013, Network In Network, arXiv:1312.4400).",
        ),
        "R5703": (
            "%s has a bias that the BatchNormalization right after it cancels: "
            "use_bias=False saves %s",
            "bias-before-batchnorm",
            "Used when a convolution with a bias (Keras' default) is directly followed by "
            "BatchNormalization, whose mean subtraction removes any per-channel constant "
            "(model linter rule CNK108; Ioffe & Szegedy 2015, arXiv:1502.03167).",
        ),
        "W5704": (
            "%s directly before BatchNormalization: its training-only rescaling shifts the "
            "variance BatchNormalization normalises by at inference; put dropout after the "
            "last BatchNormalization",
            "dropout-before-batchnorm",
            "Used when a Dropout, SpatialDropout or GaussianDropout layer with a non-zero "
            "rate is directly followed by BatchNormalization (model linter rule CNK109; Li "
            "et al. 2019, Understanding the Disharmony between Dropout and Batch "
            "Normalization by Variance Shift, arXiv:1801.05134).",
        ),
        "W5705": (
            "%s lets a model file run arbitrary Python code on load; keep Keras' safe mode on",
            "unsafe-model-load",
            "Used when a Keras model is loaded or deserialized with safe_mode=False, or safe "
            "mode is switched off process-wide: a Lambda layer's bytecode in the file then "
            "runs on load (Keras docs, keras.saving.load_model).",
        ),
    }

    def visit_call(self, node: nodes.Call) -> None:
        """Check a call: Keras constructors and loaders, and every layer-use place."""
        symbol = keras_symbol(node.func)
        if symbol is not None:
            self._check_keras_call(node, canonical_class(symbol))
        for place in self._layer_places(node):
            ref = layer_ref(place)
            if ref is not None:
                self._check_layer_use(LayerUse(place, ref))

    @staticmethod
    def _layer_places(node: nodes.Call) -> list[nodes.NodeNG]:
        """The layer-use places ``node`` opens: Sequential elements, add(), application."""
        elements = sequential_layers(node)
        if elements is not None:
            return elements
        add = add_call(node.parent)
        if add is not None and node.parent.value is node:
            return [add[1]]
        if isinstance(node.func, (nodes.Call, nodes.Name)):
            return [node.func]
        return []

    def _check_keras_call(self, node: nodes.Call, symbol: str) -> None:
        """Checks on one call of a Keras object: conv constructors and model loading."""
        if symbol in CONV:
            self._check_large_kernel(node, LayerRef(symbol, node))
        elif symbol == "enable_unsafe_deserialization":
            self.add_message("unsafe-model-load", node=node, args=(f"{symbol}()",))
        elif symbol in _SAFE_MODE_POSITION:
            known, value = infer_constant(
                call_argument(node, "safe_mode", _SAFE_MODE_POSITION[symbol]))
            if known and value is not None and not value:
                self.add_message("unsafe-model-load", node=node,
                                 args=(f"{symbol}(..., safe_mode={value!r})",))

    def _check_large_kernel(self, node: nodes.Call, ref: LayerRef) -> None:
        """``large-kernel``: a square k ≥ 5 kernel that stacked 3-wide convs replace cheaper."""
        rank = rank_of(ref.cls)
        kernel = per_axis(infer_dims(ref.argument("kernel_size")), rank)
        minimum = self.linter.config.large_kernel_min_size
        if kernel is None or len(set(kernel)) != 1 or kernel[0] < minimum:
            return
        dilation = ref.argument("dilation_rate")
        groups = ref.argument("groups")
        if (dilation is not None and per_axis(infer_dims(dilation), rank) != (1,) * rank) \
                or (groups is not None and infer_int(groups) != 1):
            return
        filters = infer_int(ref.argument("filters"))
        use_bias = ref.use_bias()
        if filters is None or filters < 1 or use_bias is None:
            return
        use = LayerUse(node, ref)
        in_channels = shape_into(use).channels
        channels = f"{in_channels} → {filters} channels"
        if in_channels is None:
            if reaches_model_input(use):
                return  # a model input of unknown depth: images have 1-3 channels, no saving
            in_channels = filters
            channels = f"{filters} → {filters} channels, input channels unknown: assumed = filters"
        saving = stacked_small_kernels(kernel[0], rank, in_channels, filters, use_bias)
        if saving.saves:
            self.add_message("large-kernel", node=node, args=(
                ref.cls, _kernel_text(kernel[0], rank), channels,
                stacked_conv_count(kernel[0]), _kernel_text(3, rank), str(saving)))

    def _check_layer_use(self, use: LayerUse) -> None:
        """Checks on a layer and the layer(s) right before it at its place of use."""
        if use.ref.cls == "BatchNormalization":
            previous = next(upstream(use.place), None)
            if previous is not None:
                self._check_before_batchnorm(use, previous.ref)
        elif use.ref.cls == "Dense":
            for previous in upstream(use.place):
                if previous.ref.cls == "Flatten":
                    self._check_flatten_dense(use.ref, previous)
                if previous.ref.cls not in ELEMENTWISE:
                    return

    def _check_before_batchnorm(self, batchnorm: LayerUse, previous: LayerRef) -> None:
        """``bias-before-batchnorm`` and ``dropout-before-batchnorm``."""
        if previous.cls in ANY_CONV and previous.use_bias():
            channels = shape_into(batchnorm).channels
            saved = f"{channels:,} params" if channels else "one param per channel"
            self.add_message("bias-before-batchnorm", node=previous.call,
                             args=(previous.cls, saved))
        elif previous.cls in DROPOUT:
            known, rate = infer_constant(previous.argument("rate"))
            if not (known and rate == 0):
                self.add_message("dropout-before-batchnorm", node=previous.call,
                                 args=(previous.cls,))

    def _check_flatten_dense(self, dense: LayerRef, flatten: LayerUse) -> None:
        """``flatten-dense-head``, unless the flattened map is known to be one position."""
        flattened = shape_into(flatten)
        if flattened.positions() == 1:
            return
        units_expr = dense.argument("units")
        units_text = units_expr.as_string() if units_expr is not None else "..."
        detail = _head_detail(flattened, infer_int(units_expr), dense.use_bias())
        self.add_message("flatten-dense-head", node=flatten.ref.call, args=(units_text, detail))


def _head_detail(flattened: TensorShape, units: Optional[int], use_bias: Optional[bool]) -> str:
    """The saving of global pooling over Flatten, as concretely as the shapes allow."""
    rank = len(flattened.spatial) if flattened.spatial else 0
    pooling = f"GlobalAveragePooling{rank}D()" if 1 <= rank <= 3 else "global average pooling"
    positions = flattened.positions()
    channels = flattened.channels
    if positions is not None and channels is not None and units is not None \
            and use_bias is not None:
        feature_map = "x".join(str(size) for size in (*flattened.spatial, channels))
        saving = global_pooling_head(positions, channels, units, use_bias)
        return f"params {saving} with {pooling} instead of Flatten() on the {feature_map} map"
    if channels is not None and units is not None:
        return (f"its kernel holds {channels}·{units} weights per spatial position; "
                f"with {pooling} instead it holds {channels * units:,} in all")
    return (f"its kernel holds one block of weights per spatial position; with {pooling} "
            "instead it holds one and accepts any input size")
