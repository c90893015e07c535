"""``strided_slice``: numpy-style indexing of several axes at once (``x[:, 1:5, :, ::2]``,
``x[:, 0]``: ``keras.ops`` ``GetItem``, Keras 2 ``SlicingOpLambda``).

Per (batch-excluded) input axis a ``(start, stop, step)`` with Python slice semantics;
``squeeze`` lists the axes indexed by a single integer (removed from the output).  A
slice of one axis with step 1 is the ``slice`` kind instead.  0 FLOPs (data movement).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from keras_cnnkit.analysis.ops.attrs import OpAttrs
from keras_cnnkit.analysis.ops.core import LatencyClass, OpDef, no_flops
from keras_cnnkit.analysis.ops.errors import ShapeError
from keras_cnnkit.analysis.ops.registry import register

STRIDED_SLICE = "strided_slice"


@dataclasses.dataclass(frozen=True, kw_only=True)
class StridedSliceAttrs(OpAttrs):
    """``slices``: one ``(start, stop, step)`` per input axis (``None``: Python's
    default); ``squeeze``: axes taken at one index (``start``) and removed."""

    slices: tuple
    squeeze: tuple[int, ...] = ()


def axis_length(n: Optional[int], start: Optional[int], stop: Optional[int],
                step: Optional[int]) -> Optional[int]:
    """Elements of ``range(n)[start:stop:step]`` (``None`` when it depends on an unknown
    ``n``)."""
    if step == 0:
        raise ShapeError("slice step cannot be zero")
    if n is not None:
        return len(range(*slice(start, stop, step).indices(n)))
    step = 1 if step is None else step
    if step > 0 and start is not None and stop is not None and start >= 0 and stop >= 0:
        return max(0, -(-(stop - start) // step))
    return None


@register
class StridedSlice(OpDef):
    """A multi-axis slice (not rebuildable: no Keras layer slices arbitrary axes)."""

    kind = STRIDED_SLICE
    attrs = StridedSliceAttrs
    latency = LatencyClass.MOVEMENT
    flops = no_flops
    rebuildable = False
    not_rebuildable = "no Keras layer slices arbitrary axes with steps"

    def infer_shape(self, a: StridedSliceAttrs, shapes: list) -> tuple:
        shape = tuple(shapes[0])
        if len(a.slices) != len(shape):
            raise ShapeError(f"{len(a.slices)} slices for an input of rank {len(shape)}")
        out = []
        for axis, (n, spec) in enumerate(zip(shape, a.slices)):
            if axis in a.squeeze:
                index = spec[0]
                if n is not None and not -n <= index < n:
                    raise ShapeError(f"index {index} out of range for axis {axis} of {shape}")
                continue
            out.append(axis_length(n, *spec))
        return tuple(out)
