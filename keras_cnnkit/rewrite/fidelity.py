"""How closely a fixed model reproduces the original: per fix, and for the whole model.

* A fix's **subgraph error**: the relative error ``‖y' − y‖ / ‖y‖`` (Frobenius, over all
  samples) of the value its fragment computes in place of the last removed node, both
  sides fed the *original* model's values at the fragment's inputs.  It isolates the
  fix from the others.
* The whole model's **output error**, the same relative error on the model's (first)
  output, and for a classifier (a ``(batch, classes)`` output) the **top-1
  agreement**: the share of inputs where both models pick the same class.

Measured on calibration inputs (:func:`calibration_inputs`: an array, an ``.npz``, a
directory of images read with Keras' own utilities), else on random normal inputs, which
are a weak proxy (:data:`WEAK_PROXY`).
"""
from __future__ import annotations

import dataclasses
import math
import os
import warnings
import zipfile
import zlib
from typing import Optional

import keras
import numpy as np

from keras_cnnkit.analysis.ir import Graph, OpKind
from keras_cnnkit.rewrite.codegen import call_layers

#: Printed beside figures measured on random inputs.
WEAK_PROXY = ("fidelity measured on random inputs, which are a weak proxy for the "
              "model's data: pass calibration data for figures that mean something")

#: Arrays looked for, in order, in a calibration ``.npz`` (else its first array).
NPZ_KEYS = ("x", "inputs", "images", "x_train", "data")
#: Largest array read from a calibration or fine-tuning ``.npz``, in bytes; a directory
#: of images is read up to as many images as fit in it at the model's input size.
MAX_NPZ_ARRAY_BYTES = 2 ** 30
#: Largest image (width × height) decoded from a calibration directory: 2**26 pixels
#: (8,192 × 8,192; a 24-megapixel photo has 24,000,000).  Checked from its header.
MAX_IMAGE_PIXELS = 2 ** 26
#: The files ``keras.utils.image_dataset_from_directory`` reads.
IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")


class CalibrationDataError(ValueError):
    """Calibration data that cannot be used (unreadable, hostile, or the wrong shape)."""


@dataclasses.dataclass
class CalibrationData:
    """Inputs to measure fidelity on (and refit with).

    Attributes:
        x: the inputs, batch first.
        description: where they come from, in words.
        random: True when they are random (no calibration data given).
    """

    x: np.ndarray
    description: str
    random: bool = False


def calibration_inputs(model: keras.Model, source=None, samples: int = 64, seed: int = 0,
                       limit: Optional[int] = None) -> CalibrationData:
    """The calibration inputs for ``model``.

    Args:
        model: the model (its input shape sizes images and random inputs).
        source: ``None`` (``samples`` random normal inputs), an array, a
            :class:`CalibrationData`, a path to an ``.npz`` (array ``x``, ``inputs``,
            ``images``, ``x_train`` or ``data``, else the first one), or a directory of
            images, read with ``keras.utils.image_dataset_from_directory`` at the
            model's input size, unlabelled, unshuffled; pixels as read (0–255): the
            model's own preprocessing layers apply, nothing else.
        samples / seed: the random inputs' count and seed.
        limit: use at most this many samples of ``source``.

    Raises:
        CalibrationDataError: the source cannot be read or has the wrong shape.
    """
    try:
        return _calibration_inputs(model, source, samples, seed, limit)
    except CalibrationDataError:
        raise
    except ValueError as exc:
        raise CalibrationDataError(str(exc)) from None


def _calibration_inputs(model, source, samples: int, seed: int,
                        limit: Optional[int]) -> CalibrationData:
    if isinstance(source, CalibrationData):
        return source
    shape = tuple(model.inputs[0].shape[1:])
    if source is None:
        if None in shape:
            raise ValueError(f"the model's input shape {shape} is not fully known: pass "
                             "calibration data")
        x = np.random.default_rng(seed).standard_normal((samples,) + shape)
        return CalibrationData(x.astype("float32"), f"{samples} random normal inputs", True)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            x, what = _images(path, shape)
        elif path.endswith(".npz") and os.path.isfile(path):
            x, what = _npz(path), path
        else:
            raise ValueError(f"{path}: calibration data must be an .npz file or a "
                             "directory of images")
    else:
        x, what = np.asarray(source), "the given array"
    if limit is not None:
        x = x[:limit]
    if tuple(x.shape[1:]) != shape and None not in shape:
        raise ValueError(f"calibration inputs of shape {x.shape[1:]} do not fit the model's "
                         f"input {shape}")
    return CalibrationData(np.asarray(x, dtype="float32"), f"{what} ({len(x)} samples)")


def _npz(path: str) -> np.ndarray:
    arrays = read_npz(path, lambda names: [next((k for k in NPZ_KEYS if k in names),
                                                 names[0] if names else None)])
    return next(iter(arrays.values()))


def read_npz(path: str, choose) -> dict:
    """The arrays of ``.npz`` file ``path`` that ``choose(names)`` picks (a list of names,
    from the names of the arrays it holds), as ``{name: array}``.

    Each chosen array's header is read first: one holding Python objects (never
    unpickled), of more than :data:`MAX_NPZ_ARRAY_BYTES`, or declaring more data than
    its member holds is refused before anything is allocated.

    Raises:
        ValueError: ``"<path>: not a readable .npz of inputs (...)"`` and the like.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename[:-4]: info for info in archive.infolist()
                       if info.filename.endswith(".npy")}
            wanted = [name for name in choose(list(members)) if name is not None]
            if not wanted:
                raise ValueError("it holds no arrays")
            for name in wanted:
                _check_npy_member(archive, members[name])
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in wanted}
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable .npz of inputs ({exc})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{path}: not a readable .npz of inputs ({type(exc).__name__}: "
                         f"{exc})") from None


def _check_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse an ``.npy`` member whose header declares objects, or more bytes than the
    budget or than the member holds (``ValueError``)."""
    name = info.filename[:-4]
    with archive.open(info) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise ValueError(f"array {name!r}: .npy format version {version} is not read")
        header = handle.tell()
    if dtype.hasobject:
        raise ValueError(f"array {name!r} holds Python objects (dtype {dtype}), which are "
                         "never unpickled")
    if dtype.kind not in "biuf" or not shape:
        raise ValueError(f"array {name!r} holds {dtype} {'values' if shape else 'scalar'}, "
                         "not an array of numbers")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_NPZ_ARRAY_BYTES:
        raise ValueError(f"array {name!r} of shape {shape} is {nbytes:,} bytes, over the "
                         f"{MAX_NPZ_ARRAY_BYTES:,} read")
    if nbytes > info.file_size - header:
        raise ValueError(f"array {name!r} of shape {shape} declares {nbytes:,} bytes but "
                         f"holds {max(info.file_size - header, 0):,}")


def _images(path: str, shape: tuple) -> tuple:
    """``(images, what)``: at most as many images of directory ``path`` as fit in
    :data:`MAX_NPZ_ARRAY_BYTES` at the input ``shape``, each checked first (a regular
    file, a readable header, at most :data:`MAX_IMAGE_PIXELS`), then decoded and resized
    by ``keras.utils.image_dataset_from_directory``."""
    channels = shape[-1]
    mode = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    if mode is None or len(shape) != 3 or None in shape:
        raise ValueError(f"a directory of images fits a (height, width, 1/3/4) input, not "
                         f"{shape}")
    files = image_files(path)
    for name in files:
        check_image(name)
    room = max(MAX_NPZ_ARRAY_BYTES // (4 * math.prod(shape)), 1)
    batch = 64
    dataset = keras.utils.image_dataset_from_directory(
        path, labels=None, image_size=shape[:2], color_mode=mode, shuffle=False,
        batch_size=batch, verbose=False)
    x = np.concatenate([np.asarray(b) for b in dataset.take(-(-room // batch))])[:room]
    what = f"images in {path}"
    if len(files) > len(x):
        what += f", the first {len(x):,} of {len(files):,} (as many as fit in " \
                f"{MAX_NPZ_ARRAY_BYTES // 2 ** 20:,} MiB)"
    return x, what


def image_files(path: str) -> list:
    """The image files under directory ``path`` that Keras' image loader reads (every
    sub-directory, links to directories not followed), sorted."""
    found = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        found += [os.path.join(root, n) for n in sorted(names)
                  if n.lower().endswith(IMAGE_SUFFIXES)]
    if not found:
        raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in the directory")
    return found


def check_image(name: str) -> None:
    """Refuse, from its header alone, an image that is not a regular file, cannot be
    identified, or has more than :data:`MAX_IMAGE_PIXELS` pixels (a few kilobytes of PNG
    can declare a 100,000 × 100,000 image that decodes to 30 GB)."""
    from PIL import Image, UnidentifiedImageError

    from keras_cnnkit.io_guard import require_regular_file
    require_regular_file(name, "image", error=lambda path, problem: ValueError(
        f"{path}: {problem}"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(name) as image:   # reads the header, decodes nothing
                width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError,
            Image.DecompressionBombError) as exc:
        raise ValueError(f"{name}: not a readable image ({exc})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(f"{name}: a {width:,} × {height:,} image ({width * height:,} "
                         f"pixels), over the {MAX_IMAGE_PIXELS:,} read")


def relative_error(approx, exact) -> float:
    """``‖approx − exact‖ / ‖exact‖`` over all elements (0 when both are 0; infinite when
    either holds a NaN or an infinity)."""
    approx = np.asarray(approx, dtype=np.float64)
    exact = np.asarray(exact, dtype=np.float64)
    norm = np.linalg.norm(exact)
    diff = np.linalg.norm(approx - exact)
    if not (np.isfinite(norm) and np.isfinite(diff)):
        return float("inf")          # NaN or overflow on either side: not a fidelity
    return float(diff / norm) if norm > 0 else float(diff > 0)


def top1_agreement(a, b) -> Optional[float]:
    """Share of rows whose arg-max agree, for ``(batch, classes)`` outputs (else None)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or a.shape[1] < 2 or a.shape != b.shape:
        return None
    return float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))


@dataclasses.dataclass
class FixFidelity:
    """One fix's subgraph errors (``None``, with ``reason``, where not measurable).

    Attributes:
        error: fragment vs. removed nodes, both fed the original model's values: the
            fix's own error, independent of the other fixes.
        in_model: the fixed model's value at the fragment's output vs. the original's
            at the replaced node: it includes what reaches the fix from upstream fixes
            (what the refit minimises).
    """

    label: str
    how: str
    error: Optional[float]
    in_model: Optional[float] = None
    reason: str = ""

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"fix": self.label, "weights": self.how, "subgraph_error": self.error,
                "in_model_error": self.in_model, "reason": self.reason}


@dataclasses.dataclass
class Fidelity:
    """Whole-model and per-fix fidelity of a fixed model on some inputs."""

    data: str
    random: bool
    output_error: float
    top1_agreement: Optional[float]
    fixes: list

    def summary(self) -> str:
        """``"output error 1.2%, top-1 agreement 98.5% (on ...)"``."""
        top1 = ("" if self.top1_agreement is None
                else f", top-1 agreement {self.top1_agreement:.1%}")
        return f"whole model: output error {self.output_error:.2%}{top1} (on {self.data})"

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"data": self.data, "random_inputs": self.random,
                "note": WEAK_PROXY if self.random else "",
                "output_error": self.output_error, "top1_agreement": self.top1_agreement,
                "fixes": [f.to_dict() for f in self.fixes]}


def _first(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def model_fidelity(original: keras.Model, fixed: keras.Model, x,
                   batch_size: int = 64) -> tuple:
    """``(output_error, top1_agreement or None)`` of ``fixed`` against ``original``."""
    y = _first(original.predict(x, batch_size=batch_size, verbose=0))
    y_fixed = _first(fixed.predict(x, batch_size=batch_size, verbose=0))
    return relative_error(y_fixed, y), top1_agreement(y_fixed, y)


def values(model: keras.Model, graph: Graph, names, x, batch_size: int = 64) -> dict:
    """IR name → ``model``'s value there on ``x``, for top-level layers and inputs
    (other names are left out)."""
    tensors = {}
    for name in dict.fromkeys(names):
        if name in graph.inputs:
            tensors[name] = model.inputs[graph.inputs.index(name)]
            continue
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        if len(getattr(layer, "_inbound_nodes", [])) == 1:
            tensors[name] = layer.output
    if not tensors:
        return {}
    probe = keras.Model(model.inputs, list(tensors.values()))
    out = probe.predict(x, batch_size=batch_size, verbose=0)
    out = out if isinstance(out, list) else [out]
    return dict(zip(tensors, (np.asarray(o) for o in out)))


def _run_fragment(fix, inputs: dict, batch_size: int) -> np.ndarray:
    rep = fix.plan.finding.replacement
    n = len(next(iter(inputs.values())))
    outs = []
    for start in range(0, n, batch_size):
        local = {name: value[start:start + batch_size] for name, value in inputs.items()}
        for node in rep.nodes:
            local[node.name] = call_layers(fix.layers[node.name],
                                           [local[src] for src in node.inputs])
        outs.append(keras.ops.convert_to_numpy(local[rep.output]))
    return np.concatenate(outs)


def _reads(fix) -> tuple:
    """``(names read from outside the fragment, the replaced node)``."""
    rep = fix.plan.finding.replacement
    inside = {n.name for n in rep.nodes}
    reads = list(dict.fromkeys(s for n in rep.nodes for s in n.inputs if s not in inside))
    if rep.output not in inside:
        reads.append(rep.output)
    return reads, rep.removed[-1]


def _in_model(fixed: keras.Model, fixes: list, x, batch_size: int,
              through: Optional[dict] = None) -> dict:
    """id(fix) → the fixed model's value at the fix's output layer (at the batch norm
    after it, for the fixes in ``through``)."""
    outputs = {}
    for fix in fixes:
        rep = fix.plan.finding.replacement
        bn = (through or {}).get(id(fix))
        bn_layer = _fixed_layer(fixed, bn) if bn else None
        layers = [bn_layer] if bn_layer is not None else fix.layers.get(rep.output)
        if layers and len(getattr(layers[-1], "_inbound_nodes", [])) == 1:
            outputs[id(fix)] = layers[-1].output
    if not outputs:
        return {}
    out = keras.Model(fixed.inputs, list(outputs.values())).predict(
        x, batch_size=batch_size, verbose=0)
    out = out if isinstance(out, list) else [out]
    return dict(zip(outputs, (np.asarray(o) for o in out)))


def bias_batchnorm(fix, graph: Graph) -> Optional[str]:
    """The batch norm after a fix whose output drops a bias that batch norm absorbs (an
    exact bias drop, or an architectural fix with one merged in), else ``None``.  Such
    a fix is exact only through that batch norm, so it is measured there."""
    rep = fix.plan.finding.replacement
    out = next((n for n in rep.nodes if n.name == rep.output), None)
    last = graph.nodes.get(rep.removed[-1])
    if out is None or last is None or out.attrs.get("use_bias", True) \
            or not last.attrs.get("use_bias"):
        return None
    consumer = graph.single_consumer(last)
    if consumer is None or consumer.op != OpKind.BATCHNORM:
        return None
    return consumer.name


def _fixed_layer(fixed: keras.Model, name: str):
    try:
        layer = fixed.get_layer(name)
    except ValueError:
        return None
    return layer if len(getattr(layer, "_inbound_nodes", [])) == 1 else None


def subgraph_errors(original: keras.Model, fixed: keras.Model, fixes: list, x,
                    graph: Graph, batch_size: int = 64) -> list:
    """A :class:`FixFidelity` per fix (see its attributes); a fix that moves a bias into
    the batch norm after it is compared after that batch norm (:func:`bias_batchnorm`)."""
    through = {id(fix): bias_batchnorm(fix, graph) for fix in fixes}
    wanted = [name for fix in fixes for reads, last in [_reads(fix)]
              for name in reads + [last] + [through[id(fix)] or last]]
    known = values(original, graph, wanted, x, batch_size)
    in_model = _in_model(fixed, fixes, x, batch_size, through)
    results = []
    for fix in fixes:
        reads, last = _reads(fix)
        bn = through[id(fix)]
        bn_layer = _fixed_layer(fixed, bn) if bn else None
        target = bn if bn_layer is not None else last
        nodes = [n.name for n in fix.plan.finding.replacement.nodes]
        missing = [name for name in reads + [target] if name not in known]
        reason, error, inside = "", None, None
        if missing:
            reason = "not a top-level layer: " + ", ".join(missing)
        elif any(name not in fix.layers for name in nodes):
            reason = "the fragment's layers were not built"
        else:
            y_new = _run_fragment(fix, {name: known[name] for name in reads}, batch_size)
            if bn_layer is not None:
                y_new = keras.ops.convert_to_numpy(bn_layer(y_new, training=False))
            error = relative_error(y_new, known[target])
        if target in known and id(fix) in in_model:
            inside = relative_error(in_model[id(fix)], known[target])
        results.append(FixFidelity(fix.plan.label, fix.plan.how, error, inside, reason))
    return results


def measure(original: keras.Model, fixed: keras.Model, fixes: list, data: CalibrationData,
            graph: Graph, batch_size: int = 64) -> Fidelity:
    """The :class:`Fidelity` of ``fixed`` (made from ``original`` by ``fixes``) on
    ``data``."""
    error, top1 = model_fidelity(original, fixed, data.x, batch_size)
    return Fidelity(data=data.description, random=data.random, output_error=error,
                    top1_agreement=top1,
                    fixes=subgraph_errors(original, fixed, fixes, data.x, graph, batch_size))
