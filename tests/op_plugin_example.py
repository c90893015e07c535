"""A third-party op kind, as a plugin package would ship it (entry point group
``keras_cnnkit.op_kinds``): ``test_scale_shift``, a per-channel ``x · γ + β``.

Loaded by ``test_op_registry.py`` through a simulated entry point; ``Incomplete`` is a
plugin that forgot its FLOP formula.
"""
import dataclasses

from keras_cnnkit.analysis.ops import LatencyClass, OpAttrs, OpDef, Trait


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScaleShiftAttrs(OpAttrs):
    """``channels``: the size of γ and β (the last axis)."""

    channels: int


class ScaleShift(OpDef):
    """``x · γ + β`` over the last axis: 2·C parameters, 2 FLOPs per element."""

    kind = "test_scale_shift"
    attrs = ScaleShiftAttrs
    traits = frozenset({Trait.TRANSPARENT})
    latency = LatencyClass.ELEMENTWISE
    rebuildable = False
    not_rebuildable = "an example kind without a Keras layer"

    def infer_shape(self, a, shapes):
        return tuple(shapes[0])

    def weights(self, node, a):
        return 2 * a.channels

    def flops(self, node, a, sizes, macs):
        return 2 * sizes.out


class Incomplete(OpDef):
    """A plugin kind with a shape rule but no FLOP formula and no codegen."""

    kind = "test_incomplete"

    def infer_shape(self, a, shapes):
        return tuple(shapes[0])
