"""Shared helpers for the real-model corpus generators.

The corpus lives outside git: ``$CNKIT_CORPUS_DIR`` or ``~/.cache/keras-cnnkit/corpus``.
Every generator writes its model files under ``<corpus>/<source>/`` and its manifest as
``<corpus>/manifest/<source>.json`` (a list of entries, one per file).  Generators are
idempotent: a model whose files and manifest entries exist is skipped.

A manifest entry::

    {"file": "keras_apps/ResNet50.keras",       # relative to the corpus dir
     "source": "keras.applications",            # where the architecture comes from
     "library": "keras", "version": "3.15.1",   # the library that built and saved it
     "architecture": "ResNet50", "format": "keras",   # keras | h5 | json | onnx
     "input_shape": [224, 224, 3],              # the shape the reference MACs are for
     "count_params": 25636712,                  # the library's own count
     "ref_macs": 3858...,                       # conv + dense (+ EinsumDense) MACs, batch 1
     "ref_macs_method": "...",                  # how ref_macs was obtained
     "notes": "..."}

The reference MACs for Keras models are measured here, independently of keras_cnnkit:
each conv/dense layer's ``__call__`` is wrapped during one eager forward pass at batch 1
and its MACs computed from its weights' shapes and the real output shape.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path


def corpus_dir() -> Path:
    d = os.environ.get("CNKIT_CORPUS_DIR") or os.path.expanduser("~/.cache/keras-cnnkit/corpus")
    p = Path(d)
    p.mkdir(parents=True, exist_ok=True)
    return p


class Manifest:
    """One source's manifest file, rewritten atomically after every change."""

    def __init__(self, source_key: str):
        self.path = corpus_dir() / "manifest" / f"{source_key}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            for e in json.loads(self.path.read_text()):
                self.entries[e["file"]] = e

    def has(self, rel: str) -> bool:
        return rel in self.entries and (corpus_dir() / rel).exists()

    def add(self, entry: dict) -> None:
        self.entries[entry["file"]] = entry
        self.save()

    def save(self) -> None:
        data = json.dumps(sorted(self.entries.values(), key=lambda e: e["file"]), indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.replace(tmp, self.path)


def load_all_manifests() -> list[dict]:
    out = []
    for p in sorted((corpus_dir() / "manifest").glob("*.json")):
        out.extend(json.loads(p.read_text()))
    return out


def atomic_target(path: Path) -> Path:
    """A temporary sibling to write to before ``os.replace`` onto *path*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.stem + ".partial" + path.suffix)


# --------------------------------------------------------------------------------------
# Reference MAC counting: wrap Layer.__call__ during one eager forward pass.


def _mro_names(obj) -> set[str]:
    return {c.__name__ for c in type(obj).__mro__}


def _shape(t):
    return tuple(int(d) for d in t.shape)


def _einsum_macs(layer, out_shape) -> int:
    eq = layer.equation.replace(" ", "")
    lhs, out_spec = eq.split("->")
    in_spec, k_spec = lhs.split(",")
    kshape = tuple(int(d) for d in layer.kernel.shape)
    if "..." in k_spec:
        return 0
    sizes = dict(zip(k_spec, kshape))
    contracted = [c for c in k_spec if c in in_spec and c not in out_spec]
    return math.prod(out_shape[1:]) * math.prod(sizes[c] for c in contracted)


def layer_macs(layer, out_shape) -> tuple[str, int] | None:
    """(kind, MACs at batch 1) for a conv / dense layer, else None."""
    names = _mro_names(layer)
    per_sample = math.prod(out_shape[1:])
    if hasattr(layer, "depthwise_kernel") and hasattr(layer, "pointwise_kernel"):
        dk = tuple(int(d) for d in layer.depthwise_kernel.shape)  # kh, kw, in, mult
        pk = tuple(int(d) for d in layer.pointwise_kernel.shape)  # 1, 1, in*mult, out
        spatial = per_sample // pk[-1]
        return "separable", spatial * dk[-2] * dk[-1] * math.prod(dk[:-2]) + spatial * pk[-2] * pk[-1]
    if any("DepthwiseConv" in n for n in names):
        k = getattr(layer, "depthwise_kernel", None)
        if k is None:
            k = layer.kernel
        ks = tuple(int(d) for d in k.shape)
        return "depthwise", per_sample * math.prod(ks[:-2])
    if any("Transpose" in n for n in names) and any("Conv" in n for n in names):
        ks = tuple(int(d) for d in layer.kernel.shape)  # kh, kw, out, in
        return "conv_transpose", per_sample * math.prod(ks[:-2]) * ks[-1] // max(1, getattr(layer, "groups", 1))
    if ("BaseConv" in names or "Conv" in names) and hasattr(layer, "kernel"):
        ks = tuple(int(d) for d in layer.kernel.shape)  # kh, kw, in/groups, out
        return "conv", per_sample * math.prod(ks[:-1])
    if "EinsumDense" in names:
        return "einsum_dense", _einsum_macs(layer, out_shape)
    if "Dense" in names and hasattr(layer, "kernel"):
        return "dense", per_sample * int(layer.kernel.shape[0])
    return None


class MacCounter:
    """Context manager: wraps ``layer_base.__call__`` and sums conv/dense MACs."""

    def __init__(self, layer_base):
        self.base = layer_base
        self.total = 0
        self.by_kind: dict[str, int] = {}
        self.n_layers = 0

    def __enter__(self):
        orig = self.base.__call__
        self._orig = orig
        counter = self

        def wrapped(layer, *args, **kwargs):
            out = orig(layer, *args, **kwargs)
            try:
                if hasattr(out, "shape") and not isinstance(out, (list, tuple, dict)):
                    r = layer_macs(layer, _shape(out))
                    if r is not None:
                        kind, m = r
                        counter.total += m
                        counter.by_kind[kind] = counter.by_kind.get(kind, 0) + m
                        counter.n_layers += 1
            except Exception:  # noqa: BLE001 - a counting failure must not stop generation
                pass
            return out

        self.base.__call__ = wrapped
        return self

    def __exit__(self, *exc):
        self.base.__call__ = self._orig
        return False


def input_hw(model, default=224) -> tuple[int, ...]:
    shp = model.inputs[0].shape
    dims = [default if d is None else int(d) for d in shp[1:]]
    return tuple(dims)


def timed(fn, *a, **k):
    t = time.time()
    r = fn(*a, **k)
    return r, time.time() - t


def safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)
