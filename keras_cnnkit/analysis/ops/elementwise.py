"""The element-wise merges of several tensors (broadcasting, numpy rules): ``add``,
``subtract``, ``multiply``, ``divide``, ``average``, ``maximum``, ``minimum`` (Keras' merge
layers; ``keras.ops`` and Keras 2 ``tf.math`` calls on two tensors; ONNX ``Add``/``Sum``,
``Sub``, ``Mul``, ``Div``, ``Mean``, ``Max``, ``Min``).

One family, one definition each: FLOPs ``n_inputs − 1`` per output element (``average``:
``n_inputs``, the divide included); no parameters.
"""
from __future__ import annotations

from typing import ClassVar

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes, Trait
from keras_cnnkit.analysis.ops.geometry import broadcast
from keras_cnnkit.analysis.ops.registry import register

DIVIDE = "divide"


class Elementwise(OpDef):
    """Base of the element-wise merges: broadcast shape, ``n − 1 + extra`` FLOPs per
    output element, codegen to ``keras.layers.<keras_class>``."""

    traits = frozenset({Trait.MERGE})
    latency = LatencyClass.ELEMENTWISE
    #: The Keras merge layer.
    keras_class: ClassVar[str] = ""
    #: FLOPs per output element beyond ``n_inputs − 1``.
    extra_flops: ClassVar[int] = 0

    def infer_shape(self, a: OpAttrs, shapes: list) -> tuple:
        return broadcast(shapes)

    def flops(self, node, a: OpAttrs, sizes: Sizes, macs: int) -> int:
        return (len(node.inputs) - 1 + self.extra_flops) * sizes.out

    def keras_layers(self, node, a: OpAttrs, common: dict) -> list:
        return [kc.keras_layer(self.keras_class)(**common)]


@register
class Add(Elementwise):
    """``x₁ + x₂ + …`` → ``keras.layers.Add``."""

    kind = OpKind.ADD
    keras_class = "Add"


@register
class Subtract(Elementwise):
    """``x₁ − x₂`` → ``keras.layers.Subtract``."""

    kind = OpKind.SUBTRACT
    keras_class = "Subtract"


@register
class Multiply(Elementwise):
    """``x₁ · x₂ · …`` → ``keras.layers.Multiply``."""

    kind = OpKind.MULTIPLY
    keras_class = "Multiply"


@register
class Divide(Elementwise):
    """``x₁ / x₂`` of two tensors (no Keras merge layer divides: not rebuildable)."""

    kind = DIVIDE
    rebuildable = False
    not_rebuildable = "Keras has no merge layer that divides two tensors"


@register
class Average(Elementwise):
    """``(x₁ + … + xₙ)/n`` → ``keras.layers.Average``."""

    kind = OpKind.AVERAGE
    keras_class = "Average"
    extra_flops = 1


@register
class Maximum(Elementwise):
    """Element-wise maximum → ``keras.layers.Maximum``."""

    kind = OpKind.MAXIMUM
    keras_class = "Maximum"


@register
class Minimum(Elementwise):
    """Element-wise minimum → ``keras.layers.Minimum``."""

    kind = OpKind.MINIMUM
    keras_class = "Minimum"
