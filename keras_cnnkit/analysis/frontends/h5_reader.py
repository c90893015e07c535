"""Read a model's architecture JSON and its weight *shapes* from HDF5, safely.

Two layouts are read:

* legacy ``.h5``/``.hdf5`` model files (Keras 2, tf.keras and Keras 3's legacy saver):
  the root attribute ``model_config`` holds the architecture JSON, and
  ``model_weights/<layer>/`` holds one dataset per weight, listed in the group's
  ``weight_names`` attribute;
* the ``model.weights.h5`` member of a ``.keras`` archive: one ``vars`` group per
  layer (``layers/conv2d/vars/0``...), whose ``name`` attribute (Keras ≥ 3.x) names
  the layer.

Only metadata is read: attributes and dataset shapes, never dataset contents (the
exporter asks for the datasets themselves and reads each when it writes it).  Only
hard links are followed, so a crafted file cannot make the reader open other files
through external links, nor read a dataset kept in another file (external storage, a
virtual dataset).  The walk is bounded before it is made (see
:mod:`keras_cnnkit.budgets`): every link followed counts against ``max-h5-links``, a
path is refused unwalked when it has more than ``max-h5-path-depth`` groups, an
attribute listing names is refused unread when it lists more names than links remain,
and the weights file of a ``.keras`` archive is walked visiting each object once (by
its address: hard links back to the root are followed once).  Nothing here imports
Keras or TensorFlow.
"""
from __future__ import annotations

import re
from typing import Iterator, Optional

import h5py

from keras_cnnkit.budgets import BudgetError, check, current

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


class Walk:
    """The budget of one file's traversal: links followed so far, path depth."""

    def __init__(self, path: str = ""):
        self.path = path
        self.links = 0
        self.limit = current().max_h5_links
        self.max_depth = current().max_h5_path_depth

    def follow(self, count: int = 1) -> None:
        """Count ``count`` links about to be followed (``max-h5-links``)."""
        self.links += count
        if self.links > self.limit:
            raise BudgetError(self.path, "max-h5-links", self.links, self.limit,
                              f"reading the HDF5 metadata follows more than "
                              f"{self.limit:,} links")

    def depth(self, parts: int, what: str) -> None:
        """Refuse a path of ``parts`` groups (``max-h5-path-depth``) before walking it."""
        check(self.path, "max-h5-path-depth", parts, f"{what} is a path {parts:,} "
                                                     "groups deep")

    def names(self, obj, attribute: str) -> list:
        """The strings of a name-list attribute; refused unread when it lists more names
        than links remain to follow (each name is at least one link)."""
        count = _attribute_size(obj, attribute)
        if self.links + count > self.limit:
            raise BudgetError(self.path, "max-h5-links", self.links + count, self.limit,
                              f"attribute {attribute!r} lists {count:,} names, each a link "
                              "to follow")
        return [_text(raw) for raw in obj.attrs[attribute]]


def _attribute_size(obj, attribute: str) -> int:
    """Elements of an attribute, from its dataspace (nothing is read)."""
    shape = obj.attrs.get_id(attribute).shape
    size = 1
    for dim in shape or ():
        size *= int(dim)
    return size


def read_model_config(h5: h5py.File, path: str = "") -> str:
    """The architecture JSON text stored in the root attribute ``model_config``
    (refused unread when its stored size is over ``max-json-bytes``)."""
    if "model_config" not in h5.attrs:
        if "layer_names" in h5.attrs or "model_weights" not in h5:
            raise H5FormatError(
                "HDF5 file holds weights only (no 'model_config' attribute); "
                "save the whole model, not just its weights")
        raise H5FormatError("HDF5 file has no 'model_config' attribute")
    size = h5.attrs.get_id("model_config").get_storage_size()
    check(path, "max-json-bytes", size, f"the 'model_config' attribute is {size:,} bytes")
    return _text(h5.attrs["model_config"])


def _hard_children(group: h5py.Group, walk: Walk) -> Iterator[tuple]:
    """``(name, object)`` for the members of ``group`` reached by hard links only."""
    for name in group:
        walk.follow()
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


def _hard_get(group: h5py.Group, path: str, walk: Walk, what: str):
    """``group[path]`` through hard links only; ``None`` if missing or linked otherwise.

    A path of more than ``max-h5-path-depth`` groups is refused before any is walked.
    """
    parts = path.split("/")
    walk.depth(len(parts), what)
    obj = group
    for part in parts:
        if not isinstance(obj, h5py.Group) or not part:
            return None
        walk.follow()
        if not isinstance(obj.get(part, getlink=True), h5py.HardLink):
            return None
        obj = obj[part]
    return obj


def _layer_groups(root: h5py.Group, walk: Walk) -> Iterator[tuple]:
    """``(layer name, group)`` of a legacy ``model_weights`` group.

    The ``layer_names`` attribute lists them, as Keras' loader reads them (a name with a
    slash is a nested group); without it, the hard-linked children.
    """
    if "layer_names" not in root.attrs:
        yield from _hard_children(root, walk)
        return
    for name in walk.names(root, "layer_names"):
        group = _hard_get(root, name, walk, f"layer name {name[:40]!r}")
        if group is not None:
            yield name, group


def _shape_or_dataset(dataset: h5py.Dataset, datasets: bool):
    """What the readers collect per weight: its shape, or (``datasets``) the dataset
    itself, whose contents are read only when asked for.

    A dataset whose contents live outside this file (HDF5 external storage: raw bytes
    of any file by path, a FIFO or ``/dev/zero`` included; a virtual dataset mapping
    other HDF5 files) is refused here, from its creation properties, before anything
    could open that file."""
    external = dataset.external
    if external:
        raise H5FormatError(f"weight {dataset.name[:80]!r} keeps its data in the external "
                            f"file {external[0][0][:120]!r}; data outside the model file "
                            "is never read")
    if dataset.is_virtual:
        raise H5FormatError(f"weight {dataset.name[:80]!r} is a virtual dataset mapping "
                            "other files; data outside the model file is never read")
    return dataset if datasets else tuple(int(d) for d in dataset.shape)


def legacy_weight_shapes(h5: h5py.File, path: str = "", datasets: bool = False
                         ) -> Optional[dict]:
    """Weight shapes of a legacy model file: layer path → list of shapes.

    The layer path is the weight's name without its variable part, from the top-level
    layer on (``"subseq/sc/kernel"`` → ``"subseq/sc"``; see :func:`_owner_path`).
    ``None`` when the file holds no ``model_weights`` group.  With ``datasets``, the
    lists hold the ``h5py.Dataset`` objects instead of their shapes (for the exporter,
    which reads them one at a time).
    """
    if "model_weights" not in h5:
        return None
    root = h5["model_weights"]
    if not isinstance(root, h5py.Group):
        raise H5FormatError("'model_weights' is not a group")
    walk = Walk(path)
    shapes: dict = {}
    for layer_name, group in _layer_groups(root, walk):
        if not isinstance(group, h5py.Group) or "weight_names" not in group.attrs:
            continue
        for weight_name in walk.names(group, "weight_names"):
            dataset = _hard_get(group, weight_name, walk, f"weight {weight_name[:40]!r}")
            if dataset is None:
                raise H5FormatError(
                    f"weight {weight_name!r} of layer {layer_name!r} is missing")
            if not isinstance(dataset, h5py.Dataset):
                raise H5FormatError(f"weight {weight_name!r} is not a dataset")
            owner = _owner_path(layer_name, _strip_var(weight_name)[0])
            shapes.setdefault(owner, []).append(_shape_or_dataset(dataset, datasets))
    return shapes


def _vars_shapes(vars_group: h5py.Group, walk: Walk, datasets: bool = False) -> list:
    """The shapes of a ``vars`` group's datasets, in variable order (``0``, ``1``...)."""
    entries = []
    for name, obj in _hard_children(vars_group, walk):
        if isinstance(obj, h5py.Dataset):
            key = (0, int(name), "") if name.isdigit() else (1, 0, name)
            entries.append((key, _shape_or_dataset(obj, datasets)))
    return [shape for _, shape in sorted(entries, key=lambda entry: entry[0])]


def archive_weight_shapes(h5: h5py.File, path: str = "", datasets: bool = False) -> dict:
    """Weight shapes of a ``.keras`` archive's weights file, keyed by saver path.

    Returns ``{saver_path: (layer_name_or_None, [shapes...])}`` for every group that has
    a ``vars`` subgroup, where ``saver_path`` is the group path (``"layers/conv2d"``,
    ``"layers/sequential/layers/conv2d"``; ``""`` for the model itself) and
    ``layer_name_or_None`` the ``name`` attribute Keras ≥ 3.x writes on ``vars``.
    Each group is visited once, by address: a second hard link to a group (back to the
    root, to an ancestor, or across) is refused, since Keras links each group once.
    With ``datasets``, the lists hold the ``h5py.Dataset`` objects instead of shapes.
    """
    walk = Walk(path)
    found: dict = {}
    seen = {h5["/"].id: "/"}   # h5py compares object ids by file and address
    stack = [("", h5, 0)]
    while stack:
        where, group, depth = stack.pop()
        for name, obj in _hard_children(group, walk):
            if not isinstance(obj, h5py.Group):
                continue
            child = f"{where}/{name}" if where else name
            key = obj.id
            if key in seen:
                raise H5FormatError(f"group {child[:60]!r} is group {seen[key][:60]!r} "
                                    "again (a second hard link to it); a Keras weights "
                                    "file links each group once")
            seen[key] = child
            if name == "vars":
                layer_name = obj.attrs.get("name")
                found[where] = (None if layer_name is None else _text(layer_name),
                                _vars_shapes(obj, walk, datasets))
            else:
                walk.depth(depth + 1, f"group {child[:60]!r}")
                stack.append((child, obj, depth + 1))
    return found
