"""Model files for the static-frontend and CLI tests.

Two kinds: files written by Keras itself (real ``.keras``/``.h5``, built lazily so that
importing this module stays cheap), and hand-made containers around JSON configs (for
Keras 2 configs without tf_keras, crafted and malformed inputs).
"""
from __future__ import annotations

import copy
import io
import json
import os
import zipfile

import h5py
import numpy as np

# --- hand-made containers ------------------------------------------------------------


def write_h5_weights(group: h5py.Group, weights: dict) -> None:
    """Legacy ``model_weights`` layout: ``{layer: {weight_name: shape}}``."""
    names = list(weights)
    group.attrs["layer_names"] = np.array([n.encode("utf-8") for n in names])
    for layer, entries in weights.items():
        sub = group.create_group(layer)
        sub.attrs["weight_names"] = np.array([n.encode("utf-8") for n in entries])
        for weight_name, shape in entries.items():
            sub.create_dataset(weight_name, shape=shape, dtype="float32")


def write_legacy_h5(path, config: dict, weights: dict | None = None) -> str:
    """An HDF5 model file holding ``config`` as ``model_config`` (+ weights by shape)."""
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
        h5.attrs["keras_version"] = "3.15.1"
        if weights is not None:
            write_h5_weights(h5.create_group("model_weights"), weights)
    return os.fspath(path)


def write_keras_archive(path, config, weights_h5: bytes | None = None,
                        extra: dict | None = None) -> str:
    """A ``.keras`` zip with ``config.json`` (a dict, or raw bytes/str)."""
    text = config if isinstance(config, (str, bytes)) else json.dumps(config)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        zf.writestr("config.json", text)
        if weights_h5 is not None:
            zf.writestr("model.weights.h5", weights_h5)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return os.fspath(path)


def write_json(path, config) -> str:
    """A bare JSON model config."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(config if isinstance(config, str) else json.dumps(config))
    return os.fspath(path)


# --- Keras 3 config builders (pure JSON) ---------------------------------------------


def k3_tensor(layer: str, shape=None, node: int = 0, index: int = 0) -> dict:
    """A Keras 3 ``__keras_tensor__`` reference."""
    return {"class_name": "__keras_tensor__",
            "config": {"shape": shape, "dtype": "float32",
                       "keras_history": [layer, node, index]}}


def k3_layer(class_name: str, name: str, inputs: list, module: str = "keras.layers",
             registered_name=None, **config) -> dict:
    """A Keras 3 layer entry called once on ``inputs`` (layer names or tensor dicts)."""
    tensors = [k3_tensor(i) if isinstance(i, str) else i for i in inputs]
    args = [tensors[0]] if len(tensors) == 1 else [tensors]
    return {"module": module, "class_name": class_name, "registered_name": registered_name,
            "name": name, "config": {"name": name, "trainable": True, **config},
            "inbound_nodes": [{"args": args, "kwargs": {}}] if inputs else []}


def k3_input(name: str, shape: list) -> dict:
    """A Keras 3 ``InputLayer`` entry (``shape`` batch-excluded)."""
    return {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
            "name": name, "config": {"batch_shape": [None, *shape], "dtype": "float32",
                                     "name": name}, "inbound_nodes": []}


def k3_functional(name: str, layers: list, inputs: list, outputs: list) -> dict:
    """A Keras 3 Functional model config."""
    def refs(names):
        items = [[n, 0, 0] for n in names]
        return items[0] if len(items) == 1 else items
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "registered_name": "Functional",
            "config": {"name": name, "trainable": True, "layers": layers,
                       "input_layers": refs(inputs), "output_layers": refs(outputs)}}


def conv_chain_config(n_layers: int, keras2: bool = False, size: int = 8,
                      channels: int = 8) -> dict:
    """A model of ``n_layers`` layers after the input: 1×1 convs and ReLUs alternating."""
    layers = [k3_input("x", [size, size, channels])]
    prev = "x"
    for i in range(n_layers):
        if i % 2 == 0:
            layers.append(k3_layer("Conv2D", f"c{i}", [prev], filters=channels,
                                   kernel_size=[1, 1], padding="same", use_bias=True))
        else:
            layers.append(k3_layer("ReLU", f"r{i}", [prev]))
        prev = layers[-1]["name"]
    config = k3_functional("chain", layers, ["x"], [prev])
    return to_keras2(config) if keras2 else config


def to_keras2(config: dict) -> dict:
    """A Keras 3 functional config (from the builders here) in Keras 2's spelling."""
    out = copy.deepcopy(config)
    out.pop("module", None)
    out.pop("registered_name", None)
    body = out["config"]
    for layer in body["layers"]:
        layer.pop("module", None)
        layer.pop("registered_name", None)
        cfg = layer["config"]
        if "batch_shape" in cfg:
            cfg["batch_input_shape"] = cfg.pop("batch_shape")
        nodes = []
        for node in layer["inbound_nodes"]:
            tensors = node["args"][0]
            tensors = tensors if isinstance(tensors, list) else [tensors]
            nodes.append([[*t["config"]["keras_history"], {}] for t in tensors])
        layer["inbound_nodes"] = nodes
    for key in ("input_layers", "output_layers"):
        refs = body[key]
        body[key] = [refs] if isinstance(refs[0], str) else refs
    return out


#: The ``model_config`` tf_keras 2.21 writes for the zoo's ``m`` model (trimmed to the
#: fields the frontend reads; initializers and dtypes dropped).  Keras 2's spellings:
#: nested-list ``inbound_nodes``, ``batch_input_shape``, no ``module``, and the nested
#: Sequential's first call referenced as node 1.
KERAS2_NESTED_CONFIG = {
    "class_name": "Functional",
    "config": {
        "name": "m",
        "layers": [
            {"class_name": "InputLayer", "name": "img", "inbound_nodes": [],
             "config": {"batch_input_shape": [None, 32, 32, 3], "dtype": "float32",
                        "name": "img"}},
            {"class_name": "Conv2D", "name": "c1", "inbound_nodes": [[["img", 0, 0, {}]]],
             "config": {"name": "c1", "filters": 8, "kernel_size": [3, 3], "strides": [1, 1],
                        "padding": "valid", "data_format": "channels_last",
                        "dilation_rate": [1, 1], "groups": 1, "activation": "linear",
                        "use_bias": True}},
            {"class_name": "BatchNormalization", "name": "bn",
             "inbound_nodes": [[["c1", 0, 0, {}]]],
             "config": {"name": "bn", "axis": [3], "center": True, "scale": True}},
            {"class_name": "Conv2D", "name": "shared",
             "inbound_nodes": [[["bn", 0, 0, {}]], [["shared", 0, 0, {}]]],
             "config": {"name": "shared", "filters": 8, "kernel_size": [3, 3],
                        "strides": [1, 1], "padding": "same", "data_format": "channels_last",
                        "dilation_rate": [1, 1], "groups": 1, "activation": "linear",
                        "use_bias": True}},
            {"class_name": "Add", "name": "add",
             "inbound_nodes": [[["shared", 0, 0, {}], ["shared", 1, 0, {}]]],
             "config": {"name": "add"}},
            {"class_name": "Sequential", "name": "subseq",
             "inbound_nodes": [[["add", 0, 0, {}]]],
             "config": {"name": "subseq", "layers": [
                 {"class_name": "InputLayer",
                  "config": {"batch_input_shape": [None, 30, 30, 8], "name": "sc_input"}},
                 {"class_name": "Conv2D",
                  "config": {"name": "sc", "filters": 4, "kernel_size": [1, 1],
                             "strides": [1, 1], "padding": "valid",
                             "data_format": "channels_last", "dilation_rate": [1, 1],
                             "groups": 1, "activation": "linear", "use_bias": True}},
                 {"class_name": "ReLU",
                  "config": {"name": "sr", "max_value": None, "negative_slope": 0.0,
                             "threshold": 0.0}}]}},
            {"class_name": "Lambda", "name": "lam", "inbound_nodes": [[["subseq", 1, 0, {}]]],
             "config": {"name": "lam", "function": ["4wEAAAAAAAAA", None, None],
                        "function_type": "lambda", "module": "__main__"}},
            {"class_name": "GlobalAveragePooling2D", "name": "gap",
             "inbound_nodes": [[["lam", 0, 0, {}]]],
             "config": {"name": "gap", "data_format": "channels_last"}},
            {"class_name": "Dense", "name": "fc", "inbound_nodes": [[["gap", 0, 0, {}]]],
             "config": {"name": "fc", "units": 10, "activation": "linear", "use_bias": True}},
        ],
        "input_layers": [["img", 0, 0]],
        "output_layers": [["fc", 0, 0]],
    },
}

#: The weights tf_keras 2.21 stores for that model (``model_weights/<layer>/<name>``).
KERAS2_NESTED_WEIGHTS = {
    "c1": {"c1/kernel:0": (3, 3, 3, 8), "c1/bias:0": (8,)},
    "bn": {"bn/gamma:0": (8,), "bn/beta:0": (8,), "bn/moving_mean:0": (8,),
           "bn/moving_variance:0": (8,)},
    "shared": {"shared/kernel:0": (3, 3, 8, 8), "shared/bias:0": (8,)},
    "subseq": {"sc/kernel:0": (1, 1, 8, 4), "sc/bias:0": (4,)},
    "fc": {"fc/kernel:0": (4, 10), "fc/bias:0": (10,)},
    "add": {}, "img": {}, "lam": {}, "gap": {},
}


# --- files written by Keras ----------------------------------------------------------


def nested_shared_model():
    """Keras 3: nested Sequential, a shared conv called twice, a Lambda, a Dense head."""
    import keras

    inp = keras.Input((32, 32, 3), name="img")
    x = keras.layers.Conv2D(8, 3, name="c1")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    shared = keras.layers.Conv2D(8, 3, padding="same", name="shared")
    a = shared(x)
    b = shared(a)
    y = keras.layers.Add(name="add")([a, b])
    sub = keras.Sequential([keras.layers.Conv2D(4, 1, name="sc"),
                            keras.layers.ReLU(name="sr")], name="subseq")
    y = sub(y)
    y = keras.layers.Lambda(lambda t: t * 2.0, name="lam")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    out = keras.layers.Dense(10, name="fc")(y)
    return keras.Model(inp, out, name="m")


def save_quietly(model, path) -> str:
    """``model.save(path)`` without the legacy-HDF5 warning noise."""
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    model.save(os.fspath(path))
    return os.fspath(path)


def run_python(code: str, cwd, timeout: int = 600):
    """Run ``code`` in a fresh interpreter that imports this checkout's keras_cnnkit (the
    repository root first on ``PYTHONPATH``, whatever is installed)."""
    import subprocess
    import sys
    import textwrap

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def weights_h5_bytes(builder) -> bytes:
    """An in-memory HDF5 file filled by ``builder(h5py.File)``."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        builder(h5)
    return buffer.getvalue()
