"""Generate the example models bundled for ``cnnkit-lint`` (needs Keras; run once).

``inefficient_cnn.h5`` packs the textbook inefficiencies into one small CNN, so that the
README's first command shows findings with savings::

    pip install . && cnnkit-lint examples/models/inefficient_cnn.h5

==================  ==================================================  ===============
layer               what is wrong                                       rule
==================  ==================================================  ===============
``stem_conv``       conv with a bias, followed by batch norm            bias-before-BN
``conv5x5``         5×5 conv 64→64 (two stacked 3×3 are cheaper)        large-kernel
``wide_conv``       3×3 conv 256→256 without a 1×1 bottleneck           missing-bottleneck
``drop`` → ``bn``   Dropout feeding batch norm                          dropout-before-BN
``flatten`` →       Flatten into Dense over an 8×8×256 map              flatten-dense-head
``classifier``
==================  ==================================================  ===============

The file is written by Keras' own (legacy HDF5) saver, so it is a real Keras model file:
``keras.models.load_model`` loads it.  To stay far below 1 MB (the model has about a
million parameters) its weights are all zero and the HDF5 datasets are re-packed with
gzip; the linter reads only the architecture and the weight *shapes*.  The output is
deterministic (no timestamps), so re-running this script gives the same bytes.

Usage::

    python examples/models/make_models.py [OUTPUT_DIR]
"""
from __future__ import annotations

import os
import sys
import tempfile

import h5py
import numpy as np


def inefficient_cnn():
    """The example model (Keras 3 functional, 32×32 RGB in, 10 classes out)."""
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(64, 3, padding="same", use_bias=True, name="stem_conv")(inputs)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.Conv2D(64, 5, padding="same", activation="relu", name="conv5x5")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="widen_conv")(x)
    x = layers.Conv2D(256, 3, padding="same", activation="relu", name="wide_conv")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Dropout(0.3, name="drop")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="inefficient_cnn")


def _copy_attrs(src, dst) -> None:
    for key in src.attrs:
        dst.attrs.create(key, src.attrs[key], dtype=src.attrs.get_id(key).dtype)


def repack_zero_weights(src_path: str, dst_path: str) -> None:
    """Copy an HDF5 model file with every dataset zeroed and gzip-compressed."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)  # no timestamps on the root group either
    fid = h5py.h5f.create(dst_path.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
    with h5py.File(src_path, "r") as src, h5py.File(fid) as dst:
        _copy_attrs(src, dst)

        def copy(name, obj):
            if isinstance(obj, h5py.Group):
                gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
                gcpl.set_obj_track_times(False)  # no timestamps: reproducible bytes
                h5py.h5g.create(dst.id, name.encode(), gcpl=gcpl)
                _copy_attrs(obj, dst[name])
            else:
                data = np.zeros(obj.shape, obj.dtype)
                kwargs = {"compression": "gzip", "compression_opts": 9,
                          "shuffle": True} if data.size > 1 else {}
                dset = dst.create_dataset(name, data=data, track_times=False, **kwargs)
                _copy_attrs(obj, dset)

        src.visititems(copy)


def main(out_dir: str) -> None:
    """Write ``inefficient_cnn.h5`` into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    model = inefficient_cnn()
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.h5")
        model.save(raw)
        target = os.path.join(out_dir, "inefficient_cnn.h5")
        repack_zero_weights(raw, target)
    print(f"wrote {target} ({os.path.getsize(target):,} bytes, "
          f"{model.count_params():,} parameters)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
