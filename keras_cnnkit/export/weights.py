"""Reading one stored weight from a model file without a second copy of it.

Used by the exporter (:mod:`.direct`) and by the layer-by-layer verification
(:mod:`.layerwise`).  Pure numpy: no Keras, no TensorFlow.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

#: Bytes of a weight read from the file in one piece; larger ones are read in slices
#: along their first axis (h5py reading through a file object buffers what it reads).
READ_SLICE_BYTES = 1 << 24


def read_weight(dataset, dtype=np.float32, out: Optional[np.ndarray] = None) -> np.ndarray:
    """A stored weight as ``dtype`` (float32 unless told; or into ``out``), read in
    slices of at most :data:`READ_SLICE_BYTES` so that no second copy of a large weight
    is ever made."""
    out = np.empty(dataset.shape, dtype=dtype) if out is None else out
    if out.ndim == 0 or out.nbytes <= READ_SLICE_BYTES:
        out[...] = dataset[()]
        return out
    step = max(1, READ_SLICE_BYTES // max(out[0].nbytes, 1))
    for start in range(0, out.shape[0], step):
        out[start:start + step] = dataset[start:start + step]
    return out
