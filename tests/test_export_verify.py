"""Verification of an IR export against Keras, layer by layer (issue 20's memory target).

The layer-by-layer walk (:mod:`keras_cnnkit.export.layerwise`) must give Keras' own
outputs: the same as the model loaded whole, to float rounding, on models with branches
(residual add, concat), depthwise convs, batch norms, a dense head, a nested model, a
shared layer and keras_cnnkit's composite blocks, from ``.keras`` and ``.h5``.  It must
catch a wrong ONNX file, fall back to the whole model where it cannot walk, hold one
layer at a time, and refuse what the safe-mode load refuses (one line, exit 2, nothing
written).  The fast tests run on every Keras backend (marked ``backend_agnostic``: the
tox jax and torch envs run them without TensorFlow installed).  Slow: VGG16 at 224×224
exported and verified within 2 GB (the slow env runs it on TensorFlow; it passes on JAX
and PyTorch too).
"""
# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name,missing-function-docstring
import gc
import json
import os
import subprocess
import sys
import weakref
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from keras import layers as L  # noqa: E402  pylint: disable=wrong-import-position

from onnx_utils import randomize  # noqa: E402  pylint: disable=C0413,wrong-import-order
from keras_cnnkit import progress  # noqa: E402  pylint: disable=C0413
from keras_cnnkit.errors import ModelFileError  # noqa: E402  pylint: disable=C0413
from keras_cnnkit.export import main as export_main  # noqa: E402  pylint: disable=C0413
from keras_cnnkit.export import layerwise  # noqa: E402  pylint: disable=C0413
from keras_cnnkit.export.direct import export_file  # noqa: E402  pylint: disable=C0413
from keras_cnnkit.export.verify import (  # noqa: E402  pylint: disable=C0413
    LAYERWISE, WHOLE_MODEL, VerificationError, compare, random_feeds, run_keras_whole)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: These tests pass on the TensorFlow, JAX and PyTorch backends (Keras 3.15.1, TF 2.21,
#: jax 0.10.2, torch 2.13): the tox jax and torch envs run them.  Their models hold no
#: "same" average pool with asymmetric padding (Keras' torch backend computes those
#: differently: tests/test_export_ir.py, docs/export.md).
AGNOSTIC = pytest.mark.backend_agnostic


def _subprocess_env():
    """A child's environment: this checkout's package first on ``PYTHONPATH``, then what
    the env already had there (the packages of an env assembled on ``PYTHONPATH``, such
    as onnx beside a JAX env, stay importable)."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="3")


_randomize = randomize


def _branchy():
    """Residual add, concat, depthwise conv, batch norm, a dense head."""
    inp = keras.Input((12, 10, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.BatchNormalization(name="dw_bn")(y)
    x = L.Add(name="residual")([x, y])
    z = L.Conv2D(4, 1, name="side")(x)
    x = L.Concatenate(name="cat")([x, z])
    x = L.MaxPooling2D(2, name="pool")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(16, activation="relu", name="fc1")(x)
    x = L.Dropout(0.5, name="drop")(x)
    return _randomize(keras.Model(inp, L.Dense(5, name="head")(x), name="branchy"))


def _nested_and_shared(nested_output=False):
    """A nested Sequential and a nested Functional, a layer called twice, two outputs."""
    inner = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(4, 3, padding="same",
                                                              name="sc"),
                              L.BatchNormalization(name="sbn")], name="subseq")
    fin = keras.Input((8, 8, 4))
    fout = L.Add(name="fadd")([fin, L.Conv2D(4, 1, name="fconv")(fin)])
    infunc = keras.Model(fin, fout, name="subfunc")
    inp = keras.Input((8, 8, 4), name="x")
    shared = L.Conv2D(4, 3, padding="same", name="shared")
    a = shared(inp)
    b = shared(inner(a))
    c = infunc(b)
    head = L.Dense(3, name="head")(L.GlobalAveragePooling2D(name="gap")(c))
    if nested_output:   # Keras writes this output as call 1 of 'subfunc' (its call 0)
        return _randomize(keras.Model(inp, [head, c], name="nested"))
    return _randomize(keras.Model(inp, [head, L.ReLU(name="post")(c)], name="nested"))


def _blocks():
    from keras_cnnkit import layers as K
    x = inp = keras.Input((16, 16, 8))
    for block in (K.ConvBNAct(16, 3, name="cba"), K.InvertedResidual(16, expansion=4, name="ir"),
                  K.DepthwiseSeparableConv(24, name="dsc"), K.SqueezeExcite(name="se"),
                  K.ResidualBlock(24, name="res"), K.ClassifierHead(5, name="head")):
        x = block(x)
    return _randomize(keras.Model(inp, x))


MODELS = {"branchy": _branchy, "nested": _nested_and_shared, "blocks": _blocks}


def _inputs(model, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (2,) + tuple(spec.shape[1:])).astype("float32")
            for spec in model.inputs]


@AGNOSTIC
@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_layerwise_matches_whole_model(tmp_path, name, fmt):
    model = MODELS[name]()
    path = str(tmp_path / f"{name}.{fmt}")
    model.save(path)
    inputs = _inputs(model)
    streamed = layerwise.run_keras_layerwise(path, inputs)
    whole = run_keras_whole(path, inputs)
    live = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
    live = live if isinstance(live, (list, tuple)) else [live]
    assert len(streamed) == len(whole) == len(live)
    for a, b, c in zip(streamed, whole, live):
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) <= 1e-6 * max(1.0, float(np.max(np.abs(b))))
        assert np.max(np.abs(a - keras.ops.convert_to_numpy(c))) <= 1e-5

    # the export's check: the same max |diff| either way
    out = tmp_path / f"{name}_{fmt}.onnx"
    result = export_file(path, out)
    assert result.verified_by == LAYERWISE
    feeds = random_feeds(onnx.load(str(out)))
    diff_l, scale_l, how_l = compare(str(out), path, feeds, 1e-4)
    diff_w, scale_w, how_w = compare(str(out), path, feeds, 1e-4, layerwise=False)
    assert (how_l, how_w) == (LAYERWISE, WHOLE_MODEL)
    assert abs(diff_l - diff_w) <= 1e-6 and abs(scale_l - scale_w) <= 1e-6 * scale_w
    assert abs(result.max_abs_diff - diff_l) <= 1e-6


@AGNOSTIC
def test_nested_model_as_output(tmp_path):
    """A nested Functional model's output as the model's output (Keras numbers that
    call differently): the walk reads it as Keras does.  (The static reader does not,
    so this is not exported.)"""
    model = _nested_and_shared(nested_output=True)
    path = str(tmp_path / "m.keras")
    model.save(path)
    inputs = _inputs(model)
    for a, b in zip(layerwise.run_keras_layerwise(path, inputs),
                    run_keras_whole(path, inputs)):
        assert np.max(np.abs(a - b)) <= 1e-6 * max(1.0, float(np.max(np.abs(b))))


@AGNOSTIC
def test_cli_verifies_layerwise(tmp_path):
    """``cnnkit-export`` verifies layer by layer on the backend Keras is set to (the
    child inherits ``KERAS_BACKEND``; the tox jax and torch envs hold no TensorFlow),
    and its line says so."""
    path = str(tmp_path / "m.keras")
    _branchy().save(path)
    proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.export", path, "-o",
                           str(tmp_path / "m.onnx"), "--via", "ir"], cwd=tmp_path,
                          capture_output=True, text=True, check=False, timeout=300,
                          env=_subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert "onnxruntime vs Keras (layerwise) max |diff|" in proc.stdout, proc.stdout
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "m.onnx"]


def _perturbed_copy(src, dst):
    """``src`` with one initializer (the largest) shifted by 0.5 throughout."""
    proto = onnx.load(str(src))
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    array = onnx.numpy_helper.to_array(init).copy()
    array += 0.5
    init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    onnx.save(proto, str(dst))


@AGNOSTIC
@pytest.mark.parametrize("layerwise_flag", [True, False])
def test_wrong_onnx_file_is_caught(tmp_path, layerwise_flag):
    model = _branchy()
    path = str(tmp_path / "m.keras")
    model.save(path)
    good = tmp_path / "good.onnx"
    export_file(path, good)
    bad = tmp_path / "bad.onnx"
    _perturbed_copy(good, bad)
    feeds = random_feeds(onnx.load(str(bad)))
    with pytest.raises(VerificationError, match="disagree"):
        compare(str(bad), path, feeds, 1e-4, layerwise=layerwise_flag)


def _rewrite_archive(path, edit_config=None, edit_metadata=None):
    """Rewrite a ``.keras`` archive with its config and/or metadata edited."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    if edit_config:
        members["config.json"] = json.dumps(
            edit_config(json.loads(members["config.json"]))).encode()
    if edit_metadata:
        members["metadata.json"] = json.dumps(
            edit_metadata(json.loads(members["metadata.json"]))).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


@AGNOSTIC
def test_falls_back_to_whole_model(tmp_path):
    """A file not written by Keras 3 (here: its metadata says 2.15) is not walked; the
    model is loaded whole, and verified the same."""
    model = _branchy()
    path = str(tmp_path / "m.keras")
    model.save(path)
    _rewrite_archive(path, edit_metadata=lambda meta: dict(meta, keras_version="2.15.0"))
    with pytest.raises(layerwise.CannotStream):
        layerwise.run_keras_layerwise(path, _inputs(model))
    result = export_file(path, tmp_path / "m.onnx")
    assert result.verified_by == WHOLE_MODEL and result.max_abs_diff < 1e-4


@AGNOSTIC
def test_config_order_does_not_matter_and_a_cycle_is_refused(tmp_path):
    """Layers listed in reverse (consumers before producers) are walked in dependency
    order, with the same outputs as the model loaded whole; a layer fed by its own output
    is never computable: CannotStream (so the model is loaded whole, and Keras says)."""
    model = _branchy()
    path = str(tmp_path / "m.keras")
    model.save(path)
    inputs = _inputs(model)
    want = run_keras_whole(path, inputs)

    def reverse(config):
        config["config"]["layers"] = config["config"]["layers"][::-1]
        return config
    _rewrite_archive(path, edit_config=reverse)
    for a, b in zip(layerwise.run_keras_layerwise(path, inputs), want):
        assert np.max(np.abs(a - b)) <= 1e-6 * max(1.0, float(np.max(np.abs(b))))

    def cycle(config):
        layers = config["config"]["layers"]
        entry = next(e for e in layers if e["class_name"] == "ReLU")
        args = entry["inbound_nodes"][0]["args"][0]
        args["config"]["keras_history"][0] = entry["name"]
        return config
    _rewrite_archive(path, edit_config=cycle)
    with pytest.raises(layerwise.CannotStream, match="never computed"):
        layerwise.run_keras_layerwise(path, inputs)


@AGNOSTIC
def test_falls_back_when_weights_do_not_match(tmp_path, monkeypatch):
    """Stored weights the walk cannot place (here: one hidden from it) → whole model."""
    model = _branchy()
    path = str(tmp_path / "m.keras")
    model.save(path)
    real = layerwise.open_stored_weights

    def hiding(model_path):
        class Hidden:
            """The stored weights without fc1's."""

            def __init__(self):
                self.context = real(model_path)

            def __enter__(self):
                stored = self.context.__enter__()
                return {k: v for k, v in stored.items() if k != "fc1"}

            def __exit__(self, *exc):
                return self.context.__exit__(*exc)
        return Hidden()

    monkeypatch.setattr(layerwise, "open_stored_weights", hiding)
    result = export_file(path, tmp_path / "m.onnx")
    assert result.verified_by == WHOLE_MODEL and result.max_abs_diff < 1e-4


@AGNOSTIC
def test_h5_class_unknown_by_name_falls_back(tmp_path):
    """A ``.h5`` entry names no module: a class the walk cannot find by name is left to
    Keras' legacy loader (safe mode), which refuses it in one line."""
    import h5py
    inp = keras.Input((8, 8, 3), name="x")
    y = L.ReLU(name="act")(L.Conv2D(4, 1, name="conv")(inp))
    model = keras.Model(inp, L.GlobalAveragePooling2D(name="gap")(y))
    path = str(tmp_path / "m.h5")
    model.save(path)
    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        _layer_entry(config, "act")["class_name"] = "NoSuchLayer"
        h5.attrs["model_config"] = json.dumps(config)
    inputs = [np.zeros((2, 8, 8, 3), "float32")]
    with pytest.raises(layerwise.CannotStream):
        layerwise.run_keras_layerwise(path, inputs)
    from keras_cnnkit.export.verify import run_keras
    with pytest.raises(ModelFileError) as info:
        run_keras(path, inputs)
    assert "\n" not in str(info.value)


class _CountingDataset:
    """An h5py dataset stand-in that counts its reads."""

    reads: dict = {}

    def __init__(self, key, dataset):
        self.key, self.dataset = key, dataset
        self.shape, self.dtype, self.size = dataset.shape, dataset.dtype, dataset.size

    def __getitem__(self, item):
        _CountingDataset.reads[self.key] = _CountingDataset.reads.get(self.key, 0) + 1
        return self.dataset[item]


@AGNOSTIC
def test_one_layer_at_a_time(tmp_path, monkeypatch):
    """Each layer the walk builds is gone (weights and all) before the next is built,
    and each stored weight is read once (twice for the layer called twice)."""
    model = _nested_and_shared()
    path = str(tmp_path / "m.keras")
    model.save(path)
    real = layerwise.open_stored_weights
    _CountingDataset.reads = {}

    class Counting:
        """The stored weights, each dataset counting its reads."""

        def __init__(self, model_path):
            self.context = real(model_path)

        def __enter__(self):
            stored = self.context.__enter__()
            return {k: [_CountingDataset((k, i), d) for i, d in enumerate(v)]
                    for k, v in stored.items()}

        def __exit__(self, *exc):
            return self.context.__exit__(*exc)

    made = []
    make = layerwise.LayerWalker.make_layer

    def tracked(self, *args):
        gc.collect()
        alive = [ref() for ref in made if ref() is not None]
        assert not alive, f"still alive: {[layer.name for layer in alive]}"
        instance = make(self, *args)
        made.append(weakref.ref(instance))
        return instance

    monkeypatch.setattr(layerwise, "open_stored_weights", Counting)
    monkeypatch.setattr(layerwise.LayerWalker, "make_layer", tracked)
    monkeypatch.setattr(layerwise, "COLLECT_BYTES", 0)
    layerwise.run_keras_layerwise(path, _inputs(model))
    with real(path) as stored:
        expected = {(k, i): 2 if k == "shared" else 1
                    for k, v in stored.items() for i in range(len(v))}
    assert _CountingDataset.reads == expected


@AGNOSTIC
def test_large_weights_handed_over_without_a_copy():
    """A weight of SHARE_BYTES or more reaches ``Variable.assign`` as a tensor sharing
    the array read from the file on TensorFlow (DLPack) and PyTorch (``from_numpy``),
    whose ``convert_to_tensor`` would copy a numpy array; JAX takes the array itself.
    Smaller weights and other dtypes go as numpy arrays.  The values are the stored ones."""
    reader = layerwise._backend_reader()  # pylint: disable=protected-access
    stored = np.arange(layerwise.SHARE_BYTES // 4 + 8, dtype="float32").reshape(-1, 8)
    small = np.ones((4, 4), "float32")
    big = reader(stored)
    assert isinstance(reader(small), np.ndarray) and isinstance(
        reader(stored.astype(bool)), np.ndarray)
    backend = keras.backend.backend()
    assert isinstance(big, np.ndarray) == (backend not in ("tensorflow", "torch"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(big), stored)
    variable = keras.Variable(np.zeros_like(stored))
    variable.assign(big)
    del big
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), stored)


# --- refusals: what the safe-mode load refuses, the walk refuses ------------------------

def _small_file(tmp_path, edit):
    inp = keras.Input((8, 8, 3), name="x")
    y = L.ReLU(name="act")(L.Conv2D(4, 1, name="conv")(inp))
    model = keras.Model(inp, L.GlobalAveragePooling2D(name="gap")(y))
    path = str(tmp_path / "m.keras")
    model.save(path)
    _rewrite_archive(path, edit_config=edit)
    return path


def _layer_entry(config, name):
    return next(e for e in config["config"]["layers"] if e["config"]["name"] == name)


def _module_os(config):
    _layer_entry(config, "act")["module"] = "os"
    return config


def _unknown_registered(config):
    _layer_entry(config, "act")["registered_name"] = "evil>ReLU"
    return config


def _lambda(config):
    entry = _layer_entry(config, "act")
    entry.update(class_name="Lambda", module="keras.layers")
    entry["config"]["function"] = {"class_name": "__lambda__", "config": {
        "code": "", "defaults": None, "closure": None}}
    return config


@AGNOSTIC
@pytest.mark.parametrize("edit", [_module_os, _unknown_registered, _lambda])
def test_hostile_layer_refused_one_line(tmp_path, edit):
    """The walk's own check of a layer's class (the static reader already calls these
    opaque, so the export never verifies them: this is the second line of defence)."""
    path = _small_file(tmp_path, edit)
    inputs = [np.zeros((2, 8, 8, 3), "float32")]
    with pytest.raises(ModelFileError) as info:
        layerwise.run_keras_layerwise(path, inputs)
    assert "\n" not in str(info.value) and "'act'" in str(info.value)


#: A class from outside Keras, named in a layer's config (Keras' safe mode locates none).
EVIL = {"module": "os", "class_name": "system", "config": {}, "registered_name": None}


def _evil_initializer(config):
    """An initializer the walk replaces by zeros: it must still refuse it."""
    _layer_entry(config, "conv")["config"]["kernel_initializer"] = dict(EVIL)
    return config


def _evil_regularizer(config):
    _layer_entry(config, "conv")["config"]["bias_regularizer"] = dict(EVIL)
    return config


@AGNOSTIC
@pytest.mark.parametrize("edit,in_process", [
    pytest.param(_evil_initializer, False, id="_evil_initializer"),
    pytest.param(_evil_regularizer, True, id="_evil_regularizer")])
def test_hostile_config_cli_exit_2_nothing_written(tmp_path, edit, in_process, capsys,
                                                   monkeypatch):
    """The static reader takes these (a conv is a conv); building the layer from its
    config refuses them: exit 2, one line, no output.  The initializer case runs
    ``cnnkit-export`` in a process of its own; the regularizer case calls the same
    ``main`` here (the refusal is the same code; a second interpreter adds nothing)."""
    path = _small_file(tmp_path, edit)
    argv = [path, "-o", str(tmp_path / "m.onnx"), "--via", "ir", "-q"]
    if in_process:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(progress, "_QUIET", progress._QUIET)  # pylint: disable=protected-access
        code, stderr = export_main(argv), capsys.readouterr().err
    else:
        proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.export", *argv],
                              cwd=tmp_path, capture_output=True, text=True, check=False,
                              timeout=300, env=_subprocess_env())
        code, stderr = proc.returncode, proc.stderr
    assert code == 2, stderr
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("cnnkit-export")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "layer 'conv' (Conv2D) cannot be built from its config" in lines[0]
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


# --- slow: the target of issue 20 -------------------------------------------------------

PEAK_SCRIPT = r"""
import resource, subprocess, sys
proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.export", sys.argv[1], "-o",
                       sys.argv[2], "--via", "ir", "-q"], capture_output=True, text=True)
print(proc.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)
sys.stdout.write(proc.stdout[-2000:])
sys.stderr.write(proc.stderr[-2000:])
"""


@AGNOSTIC
@pytest.mark.slow
def test_vgg16_224_verified_export_within_2gb(tmp_path):
    """VGG16 at 224×224, exported and verified (the default) by ``cnnkit-export``: peak
    RSS of that process at most 2 GB (2.87 GB when Keras loaded the whole model)."""
    path = str(tmp_path / "vgg16.keras")
    keras.applications.VGG16(weights=None).save(path)
    gc.collect()
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, path, str(tmp_path / "v.onnx")],
                          capture_output=True, text=True, check=False, timeout=1200,
                          env=_subprocess_env())
    head = proc.stdout.split("\n", 1)
    code, peak_kb = (int(v) for v in head[0].split())
    assert code == 0, proc.stderr
    assert "(layerwise)" in head[1], head[1]
    assert peak_kb * 1024 <= 2 * 1024 ** 3, f"peak RSS {peak_kb / 1024 ** 2:.2f} GB"
