"""The activation table: every activation the linter knows, in one place.

Each row gives the canonical name (Keras 3's), the other spellings Keras configs use
(Keras 2 / ``tf_keras``: ``swish``, ``hard_swish``), the ONNX op and the ``keras.ops``
operation class that compute it, its FLOPs per element and whether it is a rectifier
(zeroes or clips part of its input: what ``relu-after-projection`` looks for).

FLOPs per element (one FLOP: an elementary add, multiply, compare or transcendental):
relu, relu6 (one clamp) 1; leaky_relu 2; prelu, sigmoid, elu, hard_sigmoid 4; selu,
silu/swish, hard_silu, gelu, mish, softmax, log_softmax 5; softplus, softsign 3; tanh,
exponential 1; linear 0.  An activation not in the table has unknown cost.

Used by the cost model (fused and stand-alone activations), the Keras frontends
(:func:`canonical_name`, :func:`keras_op_activations`, :func:`tf_op_activations`), the ONNX frontend
(:func:`onnx_activations`), codegen and ``patterns.RECTIFIERS``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass(frozen=True)
class Activation:
    """One row of the table.

    Attributes:
        name: the canonical name (``attrs["activation"]``).
        flops: FLOPs per element.
        rectifier: zeroes or clips part of its input.
        aliases: other spellings in Keras configs.
        onnx: the ONNX op computing it (``None``: none maps here directly).
        keras_op: the ``keras.ops`` operation class computing it in a functional graph.
        tf_ops: the TensorFlow functions computing it, as Keras 2 ``TFOpLambda`` layers
            name them (``"nn.relu6"`` for ``tf.nn.relu6``).
    """

    name: str
    flops: int
    rectifier: bool = False
    aliases: tuple = ()
    onnx: Optional[str] = None
    keras_op: Optional[str] = None
    tf_ops: tuple = ()


TABLE = (
    Activation("relu", 1, True, onnx="Relu", keras_op="Relu", tf_ops=("nn.relu",)),
    Activation("relu6", 1, True, keras_op="Relu6", tf_ops=("nn.relu6",)),
    Activation("leaky_relu", 2, True, onnx="LeakyRelu", keras_op="LeakyRelu",
               tf_ops=("nn.leaky_relu",)),
    Activation("prelu", 4, True),
    Activation("elu", 4, True, onnx="Elu", keras_op="Elu", tf_ops=("nn.elu",)),
    Activation("selu", 5, True, onnx="Selu", keras_op="Selu", tf_ops=("nn.selu",)),
    Activation("sigmoid", 4, onnx="Sigmoid", keras_op="Sigmoid",
               tf_ops=("math.sigmoid", "nn.sigmoid", "sigmoid")),
    Activation("hard_sigmoid", 4, onnx="HardSigmoid", keras_op="HardSigmoid"),
    Activation("silu", 5, True, aliases=("swish",), keras_op="Silu",
               tf_ops=("nn.silu", "nn.swish")),
    Activation("hard_silu", 5, True, aliases=("hard_swish",), onnx="HardSwish",
               keras_op="HardSilu"),
    Activation("tanh", 1, onnx="Tanh", keras_op="Tanh", tf_ops=("math.tanh", "nn.tanh", "tanh")),
    Activation("exponential", 1, onnx="Exp", keras_op="Exp", tf_ops=("math.exp", "exp")),
    Activation("softplus", 3, onnx="Softplus", keras_op="Softplus",
               tf_ops=("math.softplus", "nn.softplus")),
    Activation("softsign", 3, onnx="Softsign", keras_op="Softsign",
               tf_ops=("math.softsign", "nn.softsign")),
    Activation("gelu", 5, True, onnx="Gelu", keras_op="Gelu", tf_ops=("nn.gelu",)),
    Activation("mish", 5, True, onnx="Mish", keras_op="Mish"),
    Activation("softmax", 5, onnx="Softmax", keras_op="Softmax",
               tf_ops=("nn.softmax", "math.softmax")),
    Activation("log_softmax", 5, onnx="LogSoftmax", keras_op="LogSoftmax",
               tf_ops=("nn.log_softmax", "math.log_softmax")),
)

#: Spellings of the identity (a linear activation is recorded as ``None``).
LINEAR = ("linear", "identity")

_BY_NAME = {row.name: row for row in TABLE}
_ALIASES = {alias: row.name for row in TABLE for alias in row.aliases}


def lookup(name: Optional[str]) -> Optional[Activation]:
    """The row of canonical ``name`` (``None`` for an activation not in the table)."""
    return _BY_NAME.get(name) if name is not None else None


def flops_per_element(name: Optional[str]) -> Optional[int]:
    """FLOPs per element of activation ``name``: 0 for linear (``None`` or
    ``"linear"``), ``None`` when unknown."""
    if name is None or name == "linear":
        return 0
    row = _BY_NAME.get(name)
    return None if row is None else row.flops


def canonical_name(value: Any) -> Optional[str]:
    """A Keras ``activation`` config value → canonical name (``None`` when linear).

    Accepts a name, a serialized dict (``{"class_name": ..., "config": ...}``) and the
    Keras 3 ``"silu"``/Keras 2 ``"swish"`` spellings (both → ``"silu"``).  Raises
    ``TypeError`` for a value that is neither.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        inner = value.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            value = inner["name"]
        elif isinstance(inner, str):
            value = inner
        else:
            value = value.get("class_name", "unknown")
    if not isinstance(value, str):
        raise TypeError(f"activation must be a name, got {value!r}")
    value = value.strip().lower()
    if value in LINEAR:
        return None
    return _ALIASES.get(value, value)


def rectifiers() -> frozenset:
    """Names of the activations that zero or clip part of their input."""
    return frozenset(row.name for row in TABLE if row.rectifier)


def onnx_activations() -> dict:
    """ONNX op type → canonical activation name."""
    return {row.onnx: row.name for row in TABLE if row.onnx}


def keras_op_activations() -> dict:
    """``keras.ops`` operation class name → canonical activation name."""
    return {row.keras_op: row.name for row in TABLE if row.keras_op}


def tf_op_activations() -> dict:
    """TensorFlow function (as a Keras 2 ``TFOpLambda`` names it) → canonical name."""
    return {op: row.name for row in TABLE for op in row.tf_ops}
