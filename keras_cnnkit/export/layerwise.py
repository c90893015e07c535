"""Keras' outputs of a model file, computed one layer at a time (bounded memory).

:func:`run_keras_layerwise` is what verification (:mod:`.verify`) runs on Keras' side of
the comparison when it can: instead of loading the whole model
(:func:`keras_cnnkit.io_guard.load_keras_model`, which on TensorFlow holds every weight
two or three times over: 2.9 GB for VGG16's 553 MB), it walks the model's config in
topological order and, for each call of each layer:

1. builds that layer alone from its own config, in Keras' safe mode, after the same
   refusals as :func:`~keras_cnnkit.io_guard.load_keras_model` (a ``Lambda``, a
   ``TFSMLayer``, a class that is neither Keras' own nor registered by keras_cnnkit:
   one-line :class:`~keras_cnnkit.errors.ModelFileError`, nothing from the file runs),
   its initializers replaced by ``zeros`` (every variable is then loaded, so they never
   matter, and random initialisation of a large kernel costs several copies of it);
2. loads its variables through Keras' own ``load_own_variables``, each sub-layer's from
   the stored weights (:func:`~keras_cnnkit.analysis.frontends.stored_weights.
   open_stored_weights`, the reader the exporter uses), read from the file only when
   Keras assigns it (on TensorFlow and PyTorch handed over without a copy: DLPack,
   ``torch.from_numpy``);
3. calls it, with ``training=False``, on the activations of the seeded input;
4. drops the layer, its weights and every activation no later call reads.

So the real Keras layers run, on whatever backend Keras is set to, and the memory is the
Keras import plus the largest layer plus the live activations (a verified VGG16 export:
1.5 GB peak instead of 2.9).  A nested Functional or Sequential model is walked the same
way (its weights found under its name), and a layer called several times is rebuilt for
each call (its weights read again).

What cannot be walked raises :class:`CannotStream`, and the caller loads the model whole
instead: a file not written by Keras 3 (tf.keras configs are read by Keras' legacy
loader), a call with a constant array argument, a layer whose variables do not match the
stored weights one for one (or stored weights no layer takes), a non-numeric weight.
"""
from __future__ import annotations

import collections
import contextlib
import gc
import inspect
from typing import Iterator, Optional

import numpy as np

from keras_cnnkit.analysis.frontends.containers import read_model_file
from keras_cnnkit.analysis.frontends.keras_config import (ConfigFormatError, LayerSpec,
                                                          ModelSpec, normalise_model)
from keras_cnnkit.analysis.frontends.stored_weights import open_stored_weights
from keras_cnnkit.analysis.keras_ops import CallArguments, Constant, TensorArg
from keras_cnnkit.errors import ModelFileError, one_line
from keras_cnnkit.export.weights import read_weight

#: Classes never built from a model file, whatever their module says (as Keras' safe
#: mode refuses them: arbitrary code, an external SavedModel).
REFUSED_CLASSES = frozenset({"Lambda", "TFSMLayer"})
#: The packages a layer's class may come from: Keras' own, or registered by keras_cnnkit.
ALLOWED_PACKAGES = ("keras", "keras_cnnkit")


class CannotStream(Exception):
    """The model cannot be run layer by layer (the reason in one line); load it whole."""


def run_keras_layerwise(model_path: str, inputs: list) -> list:
    """The Keras model's outputs on ``inputs`` (numpy arrays, in the order of the model's
    inputs), computed layer by layer (see the module docstring), as numpy arrays.

    Raises:
        CannotStream: the model cannot be walked layer by layer.
        ModelFileError: a layer is refused (``Lambda``, unknown class) or cannot be
            built from its config.
    """
    model_file = read_model_file(model_path)
    if _major(model_file.keras_version) < 3:
        raise CannotStream(f"written by Keras {model_file.keras_version or '(unknown)'}, "
                           "not Keras 3")
    try:
        spec = normalise_model(model_file.config)
    except (ConfigFormatError, RecursionError) as exc:
        raise ModelFileError(model_path, f"config: {exc}") from None
    if _any_keras2(spec):
        raise CannotStream("a tf.keras config")
    import keras

    import keras_cnnkit.layers  # noqa: F401  pylint: disable=unused-import
    with open_stored_weights(model_path) as stored:
        walker = LayerWalker(model_path, stored)
        outs = walker.run(spec, model_file.config.get("config") or {}, list(inputs), "")
        walker.check_all_used()
    result = [np.asarray(keras.ops.convert_to_numpy(o)) for o in outs]
    del outs
    gc.collect()
    return result


def _major(version: Optional[str]) -> int:
    head = str(version or "").split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _any_keras2(spec: ModelSpec) -> bool:
    return spec.keras2 or any(layer.model is not None and _any_keras2(layer.model)
                              for layer in spec.layers)


def _entry_name(entry) -> Optional[str]:
    if not isinstance(entry, dict):
        return None
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return entry.get("name", config.get("name"))


def zeroed_initializers(config: dict) -> dict:
    """``config`` with every ``*_initializer`` replaced by Keras' ``zeros``, after
    checking that Keras' safe mode would build the one it replaces (so the walk refuses
    what loading the whole model refuses)."""
    import keras
    out = dict(config)
    for key, value in config.items():
        if key.endswith("_initializer") and value is not None:
            with _safe_mode():
                keras.initializers.get(value)   # built, never called
            out[key] = "zeros"
    return out


#: Weights smaller than this go to ``Variable.assign`` as numpy arrays; larger ones, on
#: TensorFlow and PyTorch, as tensors sharing their memory (see :func:`_backend_reader`).
SHARE_BYTES = 1 << 20
#: A layer holding this many bytes of weights is collected as soon as it has run (a
#: Keras layer is part of reference cycles; collecting after every layer costs time).
COLLECT_BYTES = 1 << 24
#: Alignment TensorFlow requires of memory it shares.
ALIGN = 64


class _LazyStore:
    """The ``store`` of ``Layer.load_own_variables``: ``store["0"]`` reads the first
    stored weight from the file when Keras asks for it (and keeps no copy)."""

    def __init__(self, datasets: list, read):
        self._datasets = datasets
        self._read = read

    def keys(self) -> list:
        """``"0"``, ``"1"``...: one per stored weight."""
        return [str(i) for i in range(len(self._datasets))]

    def __len__(self) -> int:
        return len(self._datasets)

    def __contains__(self, key) -> bool:
        return key in self.keys()

    def __getitem__(self, key: str):
        return self._read(self._datasets[int(key)])


def aligned_empty(shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array whose data starts on an :data:`ALIGN`-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _backend_reader():
    """``dataset → value`` handed to ``Variable.assign``: the stored array, read in
    slices; for a large weight, on TensorFlow and PyTorch, a tensor sharing the array's
    memory (their ``convert_to_tensor`` copies a numpy array: VGG16's fc1 would cost 411
    MB more on PyTorch, 1.2 GB transiently on TensorFlow).  JAX takes the array as is."""
    import keras
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def share(array):   # DLPack needs ALIGN-byte aligned memory
            return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
        aligned = True
    elif backend == "torch":
        import torch  # pylint: disable=import-error

        share, aligned = torch.from_numpy, False
    else:
        return lambda dataset: read_weight(dataset, dataset.dtype)

    def read(dataset):
        dtype = np.dtype(dataset.dtype)
        if dataset.size * dtype.itemsize < SHARE_BYTES or dtype.kind not in "fiu":
            return read_weight(dataset, dtype)
        array = read_weight(dataset, out=aligned_empty(dataset.shape, dtype)
                            if aligned else None, dtype=dtype)
        try:
            return share(array)
        except Exception:  # pylint: disable=broad-exception-caught
            return array   # not shareable here (a dtype, a byte order): Keras copies it
    return read


class LayerWalker:
    """Runs a normalised model spec layer by layer on given inputs (one walk)."""

    def __init__(self, model_path: str, stored: dict):
        self.path = model_path
        self.stored = stored
        self.used: set = set()
        self.read = _backend_reader()

    # --- the graph --------------------------------------------------------------------

    def run(self, spec: ModelSpec, body: dict, inputs: list, prefix: str) -> list:
        """``spec``'s outputs on ``inputs``; ``body`` is its raw config (for the layer
        entries), ``prefix`` the path of its layers' stored weights."""
        if len(inputs) != len(spec.inputs):
            raise CannotStream(f"model {spec.name!r} takes {len(spec.inputs)} inputs, "
                               f"given {len(inputs)}")
        entries = {_entry_name(e): e for e in body.get("layers") or []}
        outputs = [_output_ref(spec, ref) for ref in spec.outputs]
        uses = collections.Counter(ref for layer in spec.layers for call in layer.calls
                                   for ref in call.inputs)
        uses.update(outputs)
        values = dict(zip(spec.inputs, inputs))
        for layer, index in _call_order(spec, set(values)):
            call = layer.calls[index]
            outs = self._call(layer, entries.get(layer.name), call,
                              [values[ref] for ref in call.inputs], prefix)
            for ref in call.inputs:
                uses[ref] -= 1
                if uses[ref] <= 0:
                    values.pop(ref, None)
            for k, out in enumerate(outs):
                if uses[(layer.name, index, k)] > 0:
                    values[(layer.name, index, k)] = out
            del outs
        missing = [ref for ref in outputs if ref not in values]
        if missing:
            raise CannotStream(f"output {missing[0][0]!r} of {spec.name!r} is never computed")
        return [values[ref] for ref in outputs]

    def _call(self, layer: LayerSpec, entry, call, args: list, prefix: str) -> list:
        """One call of one layer: its outputs, flattened."""
        import keras
        if not isinstance(entry, dict):
            raise CannotStream(f"no config entry for layer {layer.name!r}")
        if layer.model is not None:
            if any(key != "training" and value is not None
                   for key, value in call.arguments.kwargs.items()):
                raise CannotStream(f"nested model {layer.name!r} called with arguments")
            return self.run(layer.model, entry.get("config") or {}, args,
                            f"{prefix}{layer.name}/")
        positional, keywords = _substitute(call.arguments, args, layer.name)
        if not call.arguments.args and not call.arguments.kwargs:
            positional = [args[0] if len(args) == 1 else args]   # a Sequential's chain
        instance = self.make_layer(layer, entry, positional, keywords)
        self.load_weights(instance, prefix + layer.name)
        if _takes_training(instance):
            keywords.setdefault("training", False)
        try:
            out = instance(*positional, **keywords)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # not the call the model makes (the whole model, loaded, says what is wrong)
            raise CannotStream(f"layer {layer.name!r} fails: {one_line(exc, 200)}") from None
        held = sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize
                   for v in getattr(instance, "weights", ()))
        del instance
        if held >= COLLECT_BYTES:   # a layer is a reference cycle: free its weights now
            gc.collect()
        return list(keras.tree.flatten(out))

    # --- one layer --------------------------------------------------------------------

    def make_layer(self, layer: LayerSpec, entry: dict, positional: list, keywords: dict):
        """The layer (or operation) of ``entry``, built, its variables zero."""
        import keras
        module = check_layer_class(self.path, layer)
        try:
            config = zeroed_initializers(layer.config)
            serialized = {"module": module, "class_name": entry.get("class_name"),
                          "config": config, "registered_name": layer.registered_name}
            if isinstance(entry.get("build_config"), dict):
                serialized["build_config"] = entry["build_config"]
            with _safe_mode():
                instance = keras.saving.deserialize_keras_object(serialized, safe_mode=True)
            if isinstance(instance, keras.layers.Layer) and not instance.built:
                # no build config: build it as a model load does, on symbolic inputs
                symbolic = keras.tree.map_structure(_symbolic, positional)
                instance(*symbolic, **{k: keras.tree.map_structure(_symbolic, v)
                                       for k, v in keywords.items()})
        except Exception as exc:  # pylint: disable=broad-exception-caught
            if layer.module is None:
                # a Keras 3 .h5 entry names no module: the class found by its name may
                # not be the one Keras' legacy loader builds; that loader decides
                raise CannotStream(f"layer {layer.name!r} ({layer.class_name}): "
                                   f"{one_line(exc, 200)}") from None
            # Keras raises many types for a bad config; every one is bad input
            raise ModelFileError(self.path, f"layer {layer.name!r} ({layer.class_name}) "
                                            f"cannot be built from its config: "
                                            f"{one_line(exc, 200)}") from None
        return instance

    def load_weights(self, instance, key: str) -> None:
        """Load ``instance``'s variables (and its sub-layers') from the stored weights
        under ``key``, through Keras' ``load_own_variables``."""
        import keras
        if not isinstance(instance, keras.layers.Layer):
            owned: list = []
        else:
            owned = list(_own_layers(instance, key))
        taken = set()
        for sub, path in owned:
            own = sub._trainable_variables + sub._non_trainable_variables  # noqa  pylint: disable=protected-access
            datasets = self.stored.get(path)
            if not own:
                if datasets:
                    raise CannotStream(f"{path!r} has stored weights but no variables")
                continue
            if datasets is None:
                raise CannotStream(f"no stored weights for {path!r}")
            if [tuple(v.shape) for v in own] != [tuple(d.shape) for d in datasets]:
                raise CannotStream(f"the stored weights of {path!r} do not match its "
                                   "variables")
            if any(d.dtype.kind not in "fiub" for d in datasets):
                raise CannotStream(f"a stored weight of {path!r} is not numeric")
            sub.load_own_variables(_LazyStore(datasets, self.read))
            taken.add(path)
        extra = [p for p in self.stored if (p == key or p.startswith(key + "/"))
                 and p not in taken]
        if extra:
            raise CannotStream(f"stored weights {extra[0]!r} belong to no variable of "
                               f"{key!r}")
        self.used.update(taken)

    def check_all_used(self) -> None:
        """Every stored weight was loaded into some layer (else the walk did not see the
        model Keras would load)."""
        unused = [p for p in self.stored if p not in self.used]
        if unused:
            raise CannotStream(f"stored weights {unused[0]!r} were not loaded by any layer")


def _call_order(spec: ModelSpec, given: set) -> list:
    """Every ``(layer, call index)`` of ``spec`` in an order where each call comes after
    the calls computing its inputs (Kahn's algorithm, the config's order among the ready
    ones: linear however the config is ordered); ``given`` are the refs known before.

    Raises:
        CannotStream: a call's input is computed by no call (or by a cycle).
    """
    calls = [(layer, index) for layer in spec.layers for index in range(len(layer.calls))]
    waiting = [0] * len(calls)
    dependents = collections.defaultdict(list)
    for position, (layer, index) in enumerate(calls):
        for ref in set(layer.calls[index].inputs) - given:
            waiting[position] += 1
            dependents[(ref[0], ref[1])].append(position)
    ready = collections.deque(p for p, count in enumerate(waiting) if count == 0)
    order = []
    while ready:
        layer, index = calls[ready.popleft()]
        order.append((layer, index))
        for position in dependents.pop((layer.name, index), ()):
            waiting[position] -= 1
            if waiting[position] == 0:
                ready.append(position)
    if len(order) < len(calls):
        stuck = next(layer for position, (layer, _) in enumerate(calls) if waiting[position])
        raise CannotStream(f"the inputs of {stuck.name!r} are never computed")
    return order


def _output_ref(spec: ModelSpec, ref: tuple) -> tuple:
    """A model output ``ref`` as the calls count: Keras 3 writes the output of a nested
    Functional model counting the model's own construction as its call 0 (its
    ``functional_from_config`` takes one off), its inbound nodes without it."""
    layer = spec.layer(ref[0]) if spec.has_layer(ref[0]) else None
    if (layer is not None and layer.model is not None and layer.class_name != "Sequential"
            and 1 <= ref[1] == len(layer.calls)):
        return (ref[0], ref[1] - 1, ref[2])
    return ref


def _own_layers(layer, path: str) -> Iterator[tuple]:
    """``(layer, stored path)`` for ``layer`` and its sub-layers, recursively: a
    sub-layer's path is its parent's, ``/``, its name (as the reader keys them)."""
    yield layer, path
    for child in layer._flatten_layers(include_self=False, recursive=False):  # noqa  pylint: disable=protected-access
        yield from _own_layers(child, f"{path}/{child.name}")


def check_layer_class(model_path: str, layer: LayerSpec) -> Optional[str]:
    """Refuse what :func:`~keras_cnnkit.io_guard.load_keras_model` refuses, before Keras
    sees the config: a ``Lambda`` (code), a ``TFSMLayer`` (an outside SavedModel), a
    class neither Keras' own (``module`` ``keras...``) nor registered by keras_cnnkit.
    Returns the module to deserialize it from.  An entry without a module (a Keras 3
    ``.h5`` names layers so) is taken as the ``keras.layers`` class of its name; one
    that names none raises :class:`CannotStream`: the model is then loaded whole, by
    Keras' legacy loader in safe mode."""
    if layer.class_name in REFUSED_CLASSES:
        raise ModelFileError(model_path, f"holds a {layer.class_name} layer "
                                         f"({layer.name!r}), which Keras' safe mode "
                                         "refuses: it is not loaded and nothing in it is run")
    if layer.registered_name and ">" in layer.registered_name:   # "package>Class"
        if layer.registered_name.split(">", 1)[0] == "keras_cnnkit":
            return layer.module
        raise ModelFileError(model_path, f"layer {layer.name!r} is of class "
                                         f"{layer.registered_name[:80]!r}, which is not "
                                         "available here: it is not loaded")
    if layer.module is None:
        import keras
        found = getattr(keras.layers, layer.class_name, None)
        if isinstance(found, type) and issubclass(found, keras.layers.Layer):
            return "keras.layers"
        # not one the walk knows by name: Keras' legacy loader (safe mode) decides
        raise CannotStream(f"layer {layer.name!r}: no keras.layers.{layer.class_name[:60]}")
    if layer.module.split(".", 1)[0] not in ALLOWED_PACKAGES:
        raise ModelFileError(model_path, f"layer {layer.name!r} names class "
                                         f"{layer.class_name[:60]!r} from module "
                                         f"{layer.module[:60]!r}, not Keras': it is "
                                         "not loaded")
    return layer.module


@contextlib.contextmanager
def _safe_mode():
    """Keras' safe mode, whatever a caller set globally."""
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:   # an older layout: safe_mode=True is passed anyway
        yield
        return
    with SafeModeScope(True):
        yield


def _symbolic(value):
    import keras
    if hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(
            value, (int, float, bool, str)):
        return keras.KerasTensor(tuple(value.shape), dtype=keras.backend.standardize_dtype(
            value.dtype))
    return value


def _substitute(arguments: CallArguments, tensors: list, name: str) -> tuple:
    """The call's positional and keyword arguments with its tensors put back."""
    def fill(value):
        if isinstance(value, TensorArg):
            return tensors[value.index]
        if isinstance(value, Constant):
            raise CannotStream(f"layer {name!r} is called with a constant array")
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, tuple):
            return tuple(fill(v) for v in value)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    return [fill(v) for v in arguments.args], {k: fill(v)
                                               for k, v in arguments.kwargs.items()}


def _takes_training(instance) -> bool:
    call = getattr(instance, "call", None)
    if call is None:
        return False
    try:
        return "training" in inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
