"""``einsum`` and ``einsum_dense``: Einstein sums (``keras.ops.einsum`` in a functional
graph, Keras 2 ``tf.einsum`` layers; the ``EinsumDense`` layer, whose second operand is
its kernel).

``equation`` is Keras' own, batch axis included (``"bhwc,bkc->bhwk"``); shapes stay
batch-excluded, so every operand's and the output's first index must be the batch's.
MACs of a product of two operands: the product of the sizes of every index (each
combination is one multiply-accumulate), the batch's excluded; FLOPs ``2 × MACs`` (+1
per output element for ``EinsumDense``'s bias).  A one-operand sum (a transpose or
reduction) has 0 MACs and 1 FLOP per input element.  ``EinsumDense``'s parameters: its
kernel (the sizes of the indices of its operand) and bias (the ``bias_axes`` indices).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

from keras_cnnkit.analysis.ops import keras_codegen as kc
from keras_cnnkit.analysis.ops.activation_table import flops_per_element
from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.geometry import prod
from keras_cnnkit.analysis.ops.registry import register

EINSUM = "einsum"
EINSUM_DENSE = "einsum_dense"

_EQUATION = re.compile(r"^([a-zA-Z]+(?:,[a-zA-Z]+)*)->([a-zA-Z]*)$")


def parse_equation(equation: str) -> tuple:
    """``(operand subscripts, output subscripts)`` of an explicit equation (``"ab,bc->ac"``;
    spaces ignored).  Raises ``ShapeError`` for an implicit output or an ellipsis."""
    match = _EQUATION.match(equation.replace(" ", ""))
    if match is None:
        raise ShapeError(f"einsum equation {equation!r} is not of the form 'ab,bc->ac'")
    return tuple(match.group(1).split(",")), match.group(2)


def index_sizes(operands: tuple, shapes: list) -> dict:
    """Each index's size from the operands' batch-excluded shapes (the batch's is
    ``None``); ``ShapeError`` where they disagree."""
    batch = operands[0][0]
    sizes: dict = {batch: None}
    for subscripts, shape in zip(operands, shapes):
        if subscripts[0] != batch or len(subscripts) != len(shape) + 1:
            raise ShapeError(f"operand {subscripts!r} does not fit the batch-first shape "
                             f"{tuple(shape)}")
        for index, size in zip(subscripts[1:], shape):
            if sizes.get(index) is None:
                sizes[index] = size
            elif size is not None and sizes[index] != size:
                raise ShapeError(f"index {index!r} is {sizes[index]} and {size}")
    return sizes


def output_shape(output: str, sizes: dict, batch: str) -> tuple:
    """The batch-excluded output shape."""
    if not output or output[0] != batch:
        raise ShapeError(f"output {output!r} does not start with the batch index {batch!r}")
    unknown = [i for i in output if i not in sizes]
    if unknown:
        raise ShapeError(f"output indices {''.join(unknown)!r} appear in no operand")
    return tuple(sizes[i] for i in output[1:])


@dataclasses.dataclass(frozen=True, kw_only=True)
class EinsumAttrs(OpAttrs):
    """``equation``: Keras' equation, batch index first in every term."""

    equation: str


@register
class Einsum(OpDef):
    """An Einstein sum of graph tensors (a ``keras.ops`` call: not rebuildable)."""

    kind = EINSUM
    attrs = EinsumAttrs
    latency = LatencyClass.DENSE
    rebuildable = False
    not_rebuildable = "an Einstein sum of graph tensors is a keras.ops call, not a layer"

    def infer_shape(self, a: EinsumAttrs, shapes: list) -> tuple:
        operands, output = parse_equation(a.equation)
        if len(operands) != len(shapes) or len(operands) > 2:
            raise ShapeError(f"{len(shapes)} inputs for {a.equation!r} (one or two operands)")
        return output_shape(output, index_sizes(operands, shapes), operands[0][0])

    def macs(self, node, a: EinsumAttrs, sizes: Sizes) -> int:
        operands, _ = parse_equation(a.equation)
        if len(operands) < 2:
            return 0
        dims = index_sizes(operands, node.input_shapes)
        count = prod(v for k, v in dims.items() if k != operands[0][0])
        return 0 if count is None else count

    def flops(self, node, a: EinsumAttrs, sizes: Sizes, macs: int) -> int:
        return 2 * macs if macs else sizes.ins[0]


@dataclasses.dataclass(frozen=True, kw_only=True)
class EinsumDenseAttrs(OpAttrs):
    """``equation`` (input, kernel → output), the output's batch-excluded
    ``output_shape`` as Keras gives it (``None`` where it follows the input),
    ``bias_axes`` (output indices the bias spans; empty: no bias), ``activation``."""

    equation: str
    output_shape: tuple = ()
    bias_axes: str = ""
    activation: Optional[str] = None


def _dense_sizes(a: EinsumDenseAttrs, shape: tuple) -> tuple:
    """``(index sizes, input subscripts, kernel subscripts, output subscripts)``."""
    operands, output = parse_equation(a.equation)
    if len(operands) != 2:
        raise ShapeError(f"EinsumDense equation {a.equation!r} needs input and kernel")
    sizes = index_sizes(operands[:1], [shape])
    declared = list(a.output_shape)
    if len(declared) != len(output) - 1:
        raise ShapeError(f"output_shape {tuple(a.output_shape)} does not fit {output!r}")
    for index, size in zip(output[1:], declared):
        if size is not None:
            if sizes.get(index) not in (None, size):
                raise ShapeError(f"index {index!r} is {sizes[index]} and {size}")
            sizes[index] = size
    missing = [i for i in operands[1] if sizes.get(i) is None]
    if missing:
        raise ShapeError(f"kernel indices {''.join(missing)!r} have no size")
    return sizes, operands[0], operands[1], output


@register
class EinsumDense(OpDef):
    """``EinsumDense`` → ``keras.layers.EinsumDense``."""

    kind = EINSUM_DENSE
    attrs = EinsumDenseAttrs
    latency = LatencyClass.DENSE

    def infer_shape(self, a: EinsumDenseAttrs, shapes: list) -> tuple:
        sizes, inputs, _, output = _dense_sizes(a, tuple(shapes[0]))
        return output_shape(output, sizes, inputs[0])

    def weights(self, node, a: EinsumDenseAttrs) -> Optional[int]:
        sizes, _, kernel, _ = _dense_sizes(a, tuple(node.input_shapes[0]))
        return prod(sizes[i] for i in kernel) + prod(sizes[i] for i in a.bias_axes)

    def macs(self, node, a: EinsumDenseAttrs, sizes: Sizes) -> int:
        dims, inputs, _, _ = _dense_sizes(a, tuple(node.input_shapes[0]))
        count = prod(v for k, v in dims.items() if k != inputs[0])
        return 0 if count is None else count

    def flops(self, node, a: EinsumDenseAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        act = flops_per_element(a.activation)
        if act is None:
            return None
        return 2 * macs + ((1 if a.bias_axes else 0) + act) * sizes.out

    def keras_layers(self, node, a: EinsumDenseAttrs, common: dict) -> list:
        return [kc.keras_layer("EinsumDense")(
            a.equation, output_shape=tuple(node.output_shape),
            bias_axes=a.bias_axes or None, activation=kc.activation_arg(a.activation),
            **common)]
