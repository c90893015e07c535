"""Bad input: every broken file gives one line naming the file and the problem, exit 2.

No traceback, no hang, no huge allocation; the other files of the run are still linted.
Property tests mutate valid configs and file bytes: the frontend either returns a graph
or raises :class:`~keras_cnnkit.errors.ModelFileError`, nothing else.
"""
import copy
import json
import os
import subprocess
import sys
import time
import zipfile

import h5py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import static_model_files as smf

from keras_cnnkit.analysis.frontends import static_file
from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.errors import ModelFileError
from keras_cnnkit.lint.cli import main

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "models",
                       "inefficient_cnn.h5")


def _chain(tmp_path, name="m.json", **kwargs):
    return smf.write_json(tmp_path / name, smf.conv_chain_config(4, **kwargs))


def _lint(capsys, *args):
    status = main([*map(str, args), "--no-config"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _bad_files(tmp_path) -> dict:
    """name → (path, expected problem text)."""
    files = {}
    files["missing"] = (str(tmp_path / "nope.h5"), "no such file")
    (tmp_path / "adir").mkdir()
    files["directory"] = (str(tmp_path / "adir"), "is a directory, not a model file")
    (tmp_path / "empty.h5").write_bytes(b"")
    files["empty"] = (str(tmp_path / "empty.h5"), "empty file")
    (tmp_path / "random.keras").write_bytes(os.urandom(4096).replace(b"PK", b"pk")
                                            .replace(b"\x89HDF", b"xHDF").lstrip(b"{ \t\r\n"))
    files["random"] = (str(tmp_path / "random.keras"), "not a model file")
    with open(EXAMPLE, "rb") as fh:
        data = fh.read()
    (tmp_path / "truncated.h5").write_bytes(data[: len(data) // 2])
    files["truncated h5"] = (str(tmp_path / "truncated.h5"),
                             "damaged or truncated HDF5 file")
    with zipfile.ZipFile(tmp_path / "noconfig.keras", "w") as zf:
        zf.writestr("metadata.json", "{}")
    files["zip without config"] = (str(tmp_path / "noconfig.keras"),
                                   "zip archive without 'config.json'")
    (tmp_path / "bad.json").write_text('{"class_name": "Functional", "config": {')
    files["invalid json"] = (str(tmp_path / "bad.json"), "invalid JSON: Expecting")
    smf.write_keras_archive(tmp_path / "badjson.keras", b'{"class_name": ')
    files["invalid json in archive"] = (str(tmp_path / "badjson.keras"),
                                        "config.json: invalid JSON")
    with h5py.File(tmp_path / "weights_only.h5", "w") as h5:
        h5.attrs["layer_names"] = [b"conv"]
    files["weights only"] = (str(tmp_path / "weights_only.h5"), "holds weights only")
    return files


def test_each_bad_file_is_one_line_and_exit_2(tmp_path, capsys):
    """Each broken file: exit 2 and one stderr line naming file and problem."""
    for name, (path, problem) in _bad_files(tmp_path).items():
        status, out, err = _lint(capsys, path)
        assert status == 2, name
        lines = err.splitlines()
        assert len(lines) == 1, (name, err)
        assert lines[0].startswith(f"cnnkit-lint: error: {path}: "), (name, err)
        assert problem in lines[0], (name, err)
        assert "Traceback" not in out + err


def test_other_files_are_still_linted(tmp_path, capsys):
    """Broken files do not stop the good ones from being linted and reported."""
    good = _chain(tmp_path)
    bad = _bad_files(tmp_path)
    status, out, err = _lint(capsys, bad["missing"][0], good, bad["truncated h5"][0],
                             "--format", "json")
    assert status == 2
    assert len(err.splitlines()) == 2
    report = json.loads(out)
    assert [m["file"] for m in report["models"]] == [good]
    assert [e["file"] for e in report["errors"]] == [bad["missing"][0],
                                                     bad["truncated h5"][0]]


def test_no_traceback_end_to_end(tmp_path):
    """The console script itself, on every bad file at once."""
    bad = _bad_files(tmp_path)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.lint", "--no-config",
                           *(p for p, _ in bad.values())], capture_output=True, text=True,
                          timeout=120, env=env, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == len(bad) and "Traceback" not in proc.stderr
    for line, (path, problem) in zip(lines, bad.values()):
        assert line.startswith(f"cnnkit-lint: error: {path}: ") and problem in line


def _model(layers, outputs):
    return smf.k3_functional("m", [smf.k3_input("x", [8, 8, 3]), *layers], ["x"], outputs)


@pytest.mark.parametrize("layers, outputs, problem", [
    ([smf.k3_layer("ReLU", "a", ["ghost"])], ["a"], "layer 'a' reads unknown layer 'ghost'"),
    ([smf.k3_layer("ReLU", "a", ["b"]), smf.k3_layer("ReLU", "b", ["a"]),
      smf.k3_layer("ReLU", "c", ["x"])], ["c"],
     "inbound_nodes form a cycle through layers 'a', 'b'"),
    ([smf.k3_layer("ReLU", "a", ["a"])], ["a"], "cycle through layers 'a'"),
    ([smf.k3_layer("ReLU", "a", [smf.k3_tensor("x", node=3)])], ["a"],
     "layer 'a' reads call #3 of layer 'x', which has 1 call"),
    ([smf.k3_layer("ReLU", "a", ["x"])], ["zzz"], "model 'm' reads unknown layer 'zzz'"),
    ([smf.k3_layer("Conv2D", "c", ["x"], filters=-3, kernel_size=[1, 1])], ["c"],
     "layer 'c' (Conv2D): `filters` must be a positive int, got -3"),
    ([smf.k3_layer("Conv2D", "c", ["x"], filters=4, kernel_size=[9, 9])], ["c"],
     "layer 'c' (Conv2D)"),
    ([smf.k3_layer("ReLU", "a", ["x"]), smf.k3_layer("ReLU", "a", ["x"])], ["a"],
     "two layers named 'a'"),
])
def test_inconsistent_graphs(tmp_path, capsys, layers, outputs, problem):
    """Missing layers, cycles, bad calls, bad configs, duplicate names."""
    path = smf.write_json(tmp_path / "g.json", _model(layers, outputs))
    status, _, err = _lint(capsys, path)
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"cnnkit-lint: error: {path}: ") and problem in err, err


def _huge_conv(tmp_path, side, filters):
    layers = [smf.k3_input("x", [side, side, 3]),
              smf.k3_layer("Conv2D", "c", ["x"], filters=filters, kernel_size=[1, 1],
                           use_bias=False)]
    return smf.write_json(tmp_path / "huge.json",
                          smf.k3_functional("huge", layers, ["x"], ["c"]))


def test_absurd_sizes_do_not_allocate(tmp_path, capsys):
    """A 10⁶×10⁶ input and 10⁶ filters: exact Python-int arithmetic, no arrays."""
    filters = 10 ** 6
    path = _huge_conv(tmp_path, 10 ** 6, filters)
    start = time.perf_counter()
    status, out, err = _lint(capsys, path, "--format", "json", "--exit-zero")
    assert time.perf_counter() - start < 10
    assert status == 0, err
    summary = json.loads(out)["models"][0]["summary"]
    assert summary["params"] == 3 * filters
    assert summary["macs"] == 10 ** 12 * 3 * filters


def test_absurd_sizes_are_refused_before_the_work(tmp_path, capsys):
    """filters = 10¹² is over the max-channels budget; raised, the conv's 10³⁰-element
    output no longer fits a 64-bit integer: one line each, exit 2."""
    path = _huge_conv(tmp_path, 10 ** 9, 10 ** 12)
    status, _, err = _lint(capsys, path)
    assert status == 2 and len(err.splitlines()) == 1
    assert "over budget max-channels: layer 'c' (Conv2D) has filters 1,000,000,000,000; " \
           "the limit is 16,777,216" in err
    status, _, err = _lint(capsys, path, "--budget", f"max-channels={10 ** 12}")
    assert status == 2 and len(err.splitlines()) == 1
    assert "layer 'c': its tensor's element count has about 31 digits, more than a 64-bit " \
           "integer holds; not a real model" in err, err


def test_deeply_nested_json_and_models(tmp_path, capsys):
    """Deep JSON nesting and deep model nesting are bounded errors."""
    deep = tmp_path / "deep.json"
    deep.write_text('{"class_name": "Functional", "config": ' + "[" * 200_000
                    + "]" * 200_000 + "}")
    status, _, err = _lint(capsys, deep)
    assert status == 2 and "over budget max-json-depth: the JSON config nests 200,001 deep; " \
                           "the limit is 256" in err
    status, _, err = _lint(capsys, deep, "--budget", "max-json-depth=1000000")
    assert status == 2 and "nested too deeply" in err   # json's own recursion limit
    inner = {"class_name": "Sequential", "config": {"name": "s0", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "i0"}},
        {"class_name": "Dense", "config": {"name": "d0", "units": 2}}]}}
    for level in range(1, 80):
        inner = {"class_name": "Sequential", "config": {"name": f"s{level}", "layers": [
            {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "i"}},
            inner]}}
    path = smf.write_json(tmp_path / "nested.json", inner)
    status, _, err = _lint(capsys, path)
    assert status == 2 and "models nested more than 64 deep" in err


def test_external_links_are_not_followed(tmp_path):
    """An HDF5 external link in the weights is refused, never opened."""
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("kernel", shape=(1, 1, 8, 8), dtype="float32")
    path = smf.write_legacy_h5(tmp_path / "link.h5", smf.conv_chain_config(2))
    with h5py.File(path, "a") as h5:
        group = h5.create_group("model_weights").create_group("c0")
        group.attrs["weight_names"] = [b"c0/kernel"]
        group["c0/kernel"] = h5py.ExternalLink(str(other), "kernel")
    with pytest.raises(ModelFileError, match="weight 'c0/kernel' of layer 'c0' is missing"):
        static_file.load_graph(path)


@pytest.mark.parametrize("keras2", [False, True])
def test_fifty_thousand_layers(tmp_path, capsys, keras2):
    """A 50,000-layer config is linted in seconds (Keras 3 and Keras 2 spelling)."""
    path = smf.write_json(tmp_path / "big.json", smf.conv_chain_config(50_000, keras2=keras2))
    start = time.perf_counter()
    status, out, err = _lint(capsys, path, "--format", "json", "--select",
                             "bias-before-batchnorm")
    elapsed = time.perf_counter() - start
    assert status == 0, err
    summary = json.loads(out)["models"][0]["summary"]
    assert summary["layer_count"] == 50_000
    assert summary["params"] == 25_000 * (8 * 8 + 8)
    assert elapsed < 60, f"{elapsed:.1f} s"


def test_keyboard_interrupt_is_one_line_and_130(tmp_path, capsys, monkeypatch):
    """Ctrl-C: one line, exit 130."""
    from keras_cnnkit.lint import api

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "lint", interrupted)
    status, _, err = _lint(capsys, _chain(tmp_path))
    assert status == 130 and err == "cnnkit-lint: error: interrupted\n"


# --- property tests ------------------------------------------------------------------

_JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10 ** 15), max_value=10 ** 15),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["x", "c0", "r1", "Conv2D", "InputLayer", "__keras_tensor__", "same",
                     "valid", "channels_first", "Functional", "Sequential"]))
_JSON = st.recursive(_JSON_LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _mutate(config, path, action, value):
    out = copy.deepcopy(config)
    if not path:
        return value
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    elif action == "delete":
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return out


_BASE = smf.conv_chain_config(4)
#: Valid configs to mutate: Keras 3 and Keras 2 chains, and tf_keras' nested/shared model.
_BASES = [_BASE, smf.to_keras2(_BASE), smf.KERAS2_NESTED_CONFIG]
_FUZZ = settings(max_examples=150, deadline=2000, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def _load_or_model_error(path, **kwargs):
    try:
        return static_file.load_graph(path, **kwargs)
    except ModelFileError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
        return None


@_FUZZ
@given(data=st.data(), base=st.sampled_from(_BASES))
def test_mutated_configs(tmp_path, data, base):
    """Mutated valid configs give a graph or a ModelFileError, nothing else."""
    paths = list(_paths(base))
    config = base
    for _ in range(data.draw(st.integers(1, 3))):
        candidates = [p for p in paths if _exists(config, p)]
        path = data.draw(st.sampled_from(candidates))
        config = _mutate(config, path, data.draw(st.sampled_from(["set", "delete"])),
                         data.draw(_JSON))
    file = smf.write_json(tmp_path / "fuzz.json", json.dumps(config))
    result = _load_or_model_error(file)
    assert result is None or isinstance(result, Graph)


def _exists(value, path):
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return False
    return True


@_FUZZ
@given(data=st.data())
def test_mutated_file_bytes(tmp_path, data):
    """Byte flips and truncations of a .keras archive and of the example .h5."""
    config = json.dumps(_BASE).encode()
    sources = {}
    for kind, path in (("keras", smf.write_keras_archive(tmp_path / "base.keras", config)),
                       ("h5", EXAMPLE)):
        with open(path, "rb") as fh:
            sources[kind] = fh.read()
    kind = data.draw(st.sampled_from(sorted(sources)))
    blob = bytearray(sources[kind])
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(blob) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(1, len(blob)))]
    path = tmp_path / f"fuzz.{kind}"
    path.write_bytes(bytes(blob))
    result = _load_or_model_error(str(path))
    assert result is None or isinstance(result, Graph)
