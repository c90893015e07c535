"""``rnn``: a recurrent layer over the time axis (``SimpleRNN``, ``LSTM``, ``GRU``,
``RNN`` of such cells, ``Bidirectional``).

Input ``(T, F)``; output ``(T, U·d)`` with ``return_sequences`` else ``(U·d,)``, where
``d`` is 2 for a bidirectional layer that concatenates (1 otherwise).  With ``g`` gates
(SimpleRNN 1, LSTM 4, GRU 3): parameters ``d · g · (F·U + U·U + U)`` (a GRU with
``reset_after`` has two biases: ``+ g·U`` more); MACs ``d · T · g · (F·U + U·U)``; FLOPs
``2 × MACs`` plus, per step and unit, the gates' element-wise work: SimpleRNN 3 (bias,
sum, tanh), LSTM 26 (4 biases and sums, 3 sigmoids of 4, 2 tanh, 4 for the cell and
output updates), GRU 20 (3 biases and sums, 2 sigmoids, tanh, reset product, 4 for the
update).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ops.attrs import OpAttrs, choice
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, Sizes
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.registry import register

RNN = "rnn"

#: Gates of each cell, and element-wise FLOPs per step and unit.
GATES = {"simple": 1, "lstm": 4, "gru": 3}
STEP_FLOPS = {"simple": 3, "lstm": 26, "gru": 20}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RnnAttrs(OpAttrs):
    """Attributes of a recurrent layer.

    Attributes:
        cell: ``"simple"``, ``"lstm"`` or ``"gru"``.
        units: the state size ``U``.
        return_sequences: every step's output, else the last.
        directions: 2 for ``Bidirectional``.
        merge_mode: how a bidirectional layer joins its directions (``"concat"``,
            ``"sum"``, ``"mul"``, ``"ave"``).
        use_bias, reset_after: Keras' arguments (``reset_after``: GRU only).
    """

    units: int
    cell: str = choice("lstm", "gru", "simple")
    return_sequences: bool = False
    directions: int = 1
    merge_mode: str = "concat"
    use_bias: bool = True
    reset_after: bool = True


def _features(shapes: list) -> tuple:
    shape = shapes[0]
    if len(shape) != 2:
        raise ShapeError(f"a recurrent layer reads (time, features), not {tuple(shape)}")
    return shape[0], shape[1]


@register
class Rnn(OpDef):
    """A recurrent layer (not rebuildable from the IR: its gates are one Keras layer's
    internals)."""

    kind = RNN
    attrs = RnnAttrs
    latency = LatencyClass.DENSE
    rebuildable = False
    not_rebuildable = "a recurrent layer is rebuilt as the Keras layer it came from"

    def infer_shape(self, a: RnnAttrs, shapes: list) -> tuple:
        steps, _ = _features(shapes)
        width = a.units * (2 if a.directions == 2 and a.merge_mode == "concat" else 1)
        return (steps, width) if a.return_sequences else (width,)

    def weights(self, node, a: RnnAttrs) -> Optional[int]:
        _, features = _features(node.input_shapes)
        if features is None:
            return None
        gates = GATES[a.cell]
        bias = (2 if a.cell == "gru" and a.reset_after else 1) * gates * a.units \
            if a.use_bias else 0
        return a.directions * (gates * (features * a.units + a.units * a.units) + bias)

    def macs(self, node, a: RnnAttrs, sizes: Sizes) -> int:
        steps, features = _features(node.input_shapes)
        if steps is None or features is None:
            return 0
        return a.directions * steps * GATES[a.cell] * (features + a.units) * a.units

    def flops(self, node, a: RnnAttrs, sizes: Sizes, macs: int) -> Optional[int]:
        steps, _ = _features(node.input_shapes)
        if steps is None:
            return None
        return 2 * macs + a.directions * steps * STEP_FLOPS[a.cell] * a.units
