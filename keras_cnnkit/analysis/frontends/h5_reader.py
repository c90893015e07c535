"""Read a model's architecture JSON and its weight *shapes* from HDF5, safely.

Two layouts are read:

* legacy ``.h5``/``.hdf5`` model files (Keras 2, tf.keras and Keras 3's legacy saver):
  the root attribute ``model_config`` holds the architecture JSON, and
  ``model_weights/<layer>/`` holds one dataset per weight, listed in the group's
  ``weight_names`` attribute;
* the ``model.weights.h5`` member of a ``.keras`` archive: one ``vars`` group per
  layer (``layers/conv2d/vars/0``...), whose ``name`` attribute (Keras ≥ 3.x) names
  the layer.

Only metadata is read: attributes and dataset shapes, never dataset contents.  Only
hard links are followed, so a crafted file cannot make the reader open other files
through external links.  Nothing here imports Keras or TensorFlow.
"""
from __future__ import annotations

import re
from typing import Iterator, Optional

import h5py

#: Largest ``model_config`` attribute read (bytes); beyond it the file is refused.
MAX_CONFIG_BYTES = 512 * 1024 * 1024
#: Most weight groups walked in one file; a crafted file cannot make the walk unbounded.
MAX_GROUPS = 2_000_000

#: The errors h5py and libhdf5 raise on damaged or unexpected files.
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)


class H5FormatError(ValueError):
    """The HDF5 file is readable but not laid out as a Keras model file."""


def _text(value) -> str:
    """An HDF5 string attribute as ``str`` (h5py returns ``bytes`` or ``str``)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        return value
    raise H5FormatError(f"expected a string attribute, found {type(value).__name__}")


def read_model_config(h5: h5py.File) -> str:
    """The architecture JSON text stored in the root attribute ``model_config``."""
    if "model_config" not in h5.attrs:
        if "layer_names" in h5.attrs or "model_weights" not in h5:
            raise H5FormatError(
                "HDF5 file holds weights only (no 'model_config' attribute); "
                "save the whole model, not just its weights")
        raise H5FormatError("HDF5 file has no 'model_config' attribute")
    size = h5.attrs.get_id("model_config").get_storage_size()
    if size > MAX_CONFIG_BYTES:
        raise H5FormatError(f"'model_config' attribute is {size:,} bytes, over the "
                            f"{MAX_CONFIG_BYTES:,}-byte limit")
    return _text(h5.attrs["model_config"])


def _hard_children(group: h5py.Group) -> Iterator[tuple]:
    """``(name, object)`` for the members of ``group`` reached by hard links only."""
    for name in group:
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.HardLink):
            yield name, group[name]


def _strip_var(name: str) -> tuple:
    """``"blk/conv/kernel:0"`` → ``("blk/conv", "kernel")``."""
    name = re.sub(r":\d+$", "", name)
    owner, _, var = name.rpartition("/")
    return owner, var


def _owner_path(layer_name: str, owner: str) -> str:
    """The layer path owning a weight stored under top-level layer ``layer_name``.

    Weight names start at the layer (``"subseq/sc"``), at the enclosing Sequential
    (Keras 3: ``"seq/c"`` under ``c``), or inside the layer (tf.keras nested models:
    ``"sc"`` under ``subseq``).  Layer names may hold slashes (``"conv1/bn"``).
    """
    parts = owner.split("/") if owner else []
    name = layer_name.split("/")
    for i in range(len(parts) - len(name) + 1):
        if parts[i:i + len(name)] == name:
            return "/".join(parts[i:])
    return "/".join([*name, *parts])


def _hard_get(group: h5py.Group, path: str):
    """``group[path]`` through hard links only; ``None`` if missing or linked otherwise."""
    obj = group
    for part in path.split("/"):
        if not isinstance(obj, h5py.Group) or not part:
            return None
        if not isinstance(obj.get(part, getlink=True), h5py.HardLink):
            return None
        obj = obj[part]
    return obj


def _layer_groups(root: h5py.Group) -> Iterator[tuple]:
    """``(layer name, group)`` of a legacy ``model_weights`` group.

    The ``layer_names`` attribute lists them, as Keras' loader reads them (a name with a
    slash is a nested group); without it, the hard-linked children.
    """
    if "layer_names" not in root.attrs:
        yield from _hard_children(root)
        return
    for raw in root.attrs["layer_names"]:
        name = _text(raw)
        group = _hard_get(root, name)
        if group is not None:
            yield name, group


def legacy_weight_shapes(h5: h5py.File) -> Optional[dict]:
    """Weight shapes of a legacy model file: layer path → list of shapes.

    The layer path is the weight's name without its variable part, from the top-level
    layer on (``"subseq/sc/kernel"`` → ``"subseq/sc"``; see :func:`_owner_path`).
    ``None`` when the file holds no ``model_weights`` group.
    """
    if "model_weights" not in h5:
        return None
    root = h5["model_weights"]
    if not isinstance(root, h5py.Group):
        raise H5FormatError("'model_weights' is not a group")
    shapes: dict = {}
    for count, (layer_name, group) in enumerate(_layer_groups(root)):
        if count > MAX_GROUPS:
            raise H5FormatError(f"more than {MAX_GROUPS:,} weight groups")
        if not isinstance(group, h5py.Group) or "weight_names" not in group.attrs:
            continue
        for raw in group.attrs["weight_names"]:
            weight_name = _text(raw)
            dataset = _hard_get(group, weight_name)
            if dataset is None:
                raise H5FormatError(
                    f"weight {weight_name!r} of layer {layer_name!r} is missing")
            if not isinstance(dataset, h5py.Dataset):
                raise H5FormatError(f"weight {weight_name!r} is not a dataset")
            owner = _owner_path(layer_name, _strip_var(weight_name)[0])
            shapes.setdefault(owner, []).append(tuple(int(d) for d in dataset.shape))
    return shapes


def _vars_shapes(vars_group: h5py.Group) -> list:
    """The shapes of a ``vars`` group's datasets, in variable order (``0``, ``1``...)."""
    entries = []
    for name, obj in _hard_children(vars_group):
        if isinstance(obj, h5py.Dataset):
            key = (0, int(name), "") if name.isdigit() else (1, 0, name)
            entries.append((key, tuple(int(d) for d in obj.shape)))
    return [shape for _, shape in sorted(entries)]


def archive_weight_shapes(h5: h5py.File) -> dict:
    """Weight shapes of a ``.keras`` archive's weights file, keyed by saver path.

    Returns ``{saver_path: (layer_name_or_None, [shapes...])}`` for every group that has
    a ``vars`` subgroup, where ``saver_path`` is the group path (``"layers/conv2d"``,
    ``"layers/sequential/layers/conv2d"``; ``""`` for the model itself) and
    ``layer_name_or_None`` the ``name`` attribute Keras ≥ 3.x writes on ``vars``.
    """
    found: dict = {}
    stack = [("", h5)]
    walked = 0
    while stack:
        path, group = stack.pop()
        walked += 1
        if walked > MAX_GROUPS:
            raise H5FormatError(f"more than {MAX_GROUPS:,} weight groups")
        for name, obj in _hard_children(group):
            if not isinstance(obj, h5py.Group):
                continue
            if name == "vars":
                layer_name = obj.attrs.get("name")
                found[path] = (None if layer_name is None else _text(layer_name),
                               _vars_shapes(obj))
            else:
                stack.append((f"{path}/{name}" if path else name, obj))
    return found
