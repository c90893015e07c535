"""Saved keras-hub and kimm models lint from a file, built by the installed library.

Their ``.keras`` holds constructor arguments, not a layer graph; the linter builds the
model with the library that defines the class (installed code, never the file's) and
reads it like a live model.  The security boundary (:mod:`keras_cnnkit.analysis.
frontends.library_model`) is tested here: a package outside the allowlist is never
imported, a class the library does not define is refused, a config serializing a
``Lambda``, a function or a foreign class is refused before anything is built, the
build runs in safe mode, and kimm's ``weights`` argument cannot make it fetch anything.
Expected parameter counts are the library's own ``count_params()``.
"""
import importlib.metadata
import json
import zipfile

import pytest
import static_model_files as smf

from keras_cnnkit.analysis.frontends import library_model
from keras_cnnkit.analysis.frontends.static_file import load_graph
from keras_cnnkit.errors import ModelFileError
from keras_cnnkit.lint.api import lint

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

keras = pytest.importorskip("keras")


def _hub_backbone():
    keras_hub = pytest.importorskip("keras_hub")
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(32, 32, 3))


def _kimm_model():
    kimm = pytest.importorskip("kimm")
    return kimm.models.LCNet050(input_shape=(None, None, 3), weights=None, classes=10)


@pytest.fixture(scope="module")
def library_files(tmp_path_factory):
    """``{library: (model, .keras path)}``: natively saved keras-hub and kimm models."""
    root = tmp_path_factory.mktemp("library")
    out = {}
    for name, build in (("keras-hub", _hub_backbone), ("kimm", _kimm_model)):
        model = build()
        out[name] = (model, smf.save_quietly(model, root / f"{name}.keras"))
    return out


def _config(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _rewrite(path, out, change) -> str:
    """A copy of the ``.keras`` at ``path`` with its config changed by ``change(config)``."""
    config = _config(path)
    change(config)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = json.dumps(config) if item.filename == "config.json" else src.read(item)
            dst.writestr(item, data)
    return str(out)


def test_library_models_lint_from_the_cli(library_files, tmp_path):
    """Exit 0/1; params = count_params(); the notes name the library and its version."""
    from keras_cnnkit.lint.cli import main

    out = tmp_path / "report.json"
    paths = [path for _, path in library_files.values()]
    assert main([*paths, "--format", "json", "--no-config", "-o", str(out)]) in (0, 1)
    report = json.loads(out.read_text())
    assert report["errors"] == []
    for (name, (model, _)), entry in zip(library_files.items(), report["models"]):
        summary = entry["summary"]
        assert summary["params"] == model.count_params()
        version = importlib.metadata.version(name)
        assert summary["notes"][0].startswith(f"built with {name} {version} from the file's "
                                              "config")
    kimm_notes = report["models"][1]["summary"]["notes"]
    assert any(n.endswith("of unknown size (None, None, 3) analysed at (224, 224, 3) (give "
                          "--input-shape to choose another size)") for n in kimm_notes)
    text = tmp_path / "report.txt"
    main([paths[1], "--no-config", "-o", str(text)])
    assert f"{paths[1]}: note: built with kimm " in text.read_text()


def test_hub_backbone_is_fully_costed(library_files):
    """The keras-hub ResNet is standard layers: nothing opaque, MACs known."""
    model, path = library_files["keras-hub"]
    report = lint(path)
    assert report.summary.params == model.count_params()
    assert not report.summary.unknown and report.summary.macs > 0
    assert report.graph.frontend == "library"


_EVIL_PACKAGE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
"""


def test_a_package_outside_the_allowlist_is_never_imported(tmp_path):
    """A file naming an importable package's class: refused, the package never imported."""
    marker = tmp_path / "MARKER"
    package = tmp_path / "evilpkg"
    package.mkdir()
    (package / "__init__.py").write_text(_EVIL_PACKAGE.format(marker=str(marker)))
    (package / "models.py").write_text(_EVIL_PACKAGE.format(marker=str(marker)))
    files = []
    for i, module in enumerate(("evilpkg.models", "evilpkg", "os", "kimm_evil.models")):
        config = {"module": module, "class_name": "Model", "registered_name": "Model",
                  "config": {"name": "m"}}
        files.append(smf.write_keras_archive(tmp_path / f"m{i}.keras", config))
    proc = smf.run_python(f"""
        import json, sys
        from keras_cnnkit.lint.cli import main
        status = main({files!r} + ["--no-config"])
        print(json.dumps({{"status": status, "evil": [m for m in sys.modules
                                                     if m.startswith("evilpkg")]}}))
    """, tmp_path)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"status": 2, "evil": []}
    assert not marker.exists()
    assert proc.stderr.count("is not a Functional or Sequential model") == len(files)


@pytest.mark.parametrize("class_name", ["NotAModel", "list_models", "__class__", "regnet",
                                        "os.system"])
def test_a_class_the_library_does_not_define_is_refused(library_files, tmp_path, class_name):
    """kimm's module named, a class kimm does not define (or not a model): refused."""
    _, path = library_files["kimm"]

    def change(config):
        config["class_name"] = config["registered_name"] = class_name

    bad = _rewrite(path, tmp_path / "bad.keras", change)
    with pytest.raises(ModelFileError, match="kimm defines no model class|bad top-level"):
        load_graph(bad)


def _lambda_config(marker) -> dict:
    """A serialized Keras Lambda whose bytecode writes ``marker`` when run."""
    fn = eval(  # pylint: disable=eval-used
        f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('pwned'), t)[1]")
    return keras.saving.serialize_keras_object(keras.layers.Lambda(fn))


@pytest.mark.parametrize("where", ["top", "nested", "dtype"])
@pytest.mark.parametrize("what", ["lambda", "os.system", "builtins.eval", "keras_hub"])
def test_serialized_objects_in_the_config_are_refused(library_files, tmp_path, where, what):
    """A Lambda (real bytecode), a callable or a library class serialized anywhere in the
    config of a registered class: refused before building; the bytecode never runs."""
    marker = tmp_path / "MARKER"
    _, path = library_files["keras-hub"]
    bad_object = {
        "lambda": _lambda_config(marker),
        "os.system": {"module": "os", "class_name": "system",
                      "config": {"command": f"touch {marker}"}, "registered_name": None},
        "builtins.eval": {"module": "builtins", "class_name": "eval", "registered_name": None,
                          "config": {"source": f"open({str(marker)!r}, 'w')"}},
        "keras_hub": {"module": "keras_hub.src.models.resnet.resnet_backbone",
                      "class_name": "ResNetBackbone", "config": {},
                      "registered_name": "keras_hub>ResNetBackbone"},
    }[what]

    def change(config):
        body = config["config"]
        if where == "top":
            body["extra"] = bad_object
        elif where == "nested":
            body["stackwise_num_filters"] = [64, {"inner": [bad_object]}]
        else:
            body["dtype"] = bad_object

    bad = _rewrite(path, tmp_path / "bad.keras", change)
    with pytest.raises(ModelFileError, match="serialized|refused"):
        load_graph(bad)
    assert not marker.exists()


def test_the_build_runs_in_safe_mode(library_files, monkeypatch):
    """Even with unsafe deserialization enabled in the process, from_config runs in safe
    mode; kimm's weights argument is forced to None (nothing fetched or read)."""
    from keras.src.saving import serialization_lib

    model, path = library_files["kimm"]
    seen = {}
    cls = type(model)
    original = cls.from_config.__func__

    def spy(klass, config, custom_objects=None):
        seen["safe_mode"] = serialization_lib.in_safe_mode()
        seen["weights"] = config.get("weights", "absent")
        return original(klass, config, custom_objects)

    monkeypatch.setattr(cls, "from_config", classmethod(spy))
    previous = serialization_lib.in_safe_mode()
    keras.config.enable_unsafe_deserialization()
    try:
        bad = _rewrite(path, path + ".imagenet.keras",
                       lambda c: c["config"].update(weights="imagenet"))
        graph = load_graph(bad)
    finally:
        serialization_lib.global_state.set_global_attribute("safe_mode_saving", previous)
    assert seen == {"safe_mode": True, "weights": None}
    assert sum(n.params or 0 for n in graph if not n.attrs.get("shares_weights_with")) \
        == model.count_params()


def test_a_library_that_is_not_installed_says_so(library_files, monkeypatch):
    """No kimm installed: a one-line error telling what to do, nothing imported."""
    _, path = library_files["kimm"]
    real = library_model.importlib.util.find_spec
    monkeypatch.setattr(library_model.importlib.util, "find_spec",
                        lambda name, *a: None if name == "kimm" else real(name, *a))
    with pytest.raises(ModelFileError, match="install kimm to lint it"):
        load_graph(path)


def test_library_model_lints_without_tensorflow_start_up_lines(library_files):
    """A fresh ``cnnkit-lint`` on a kimm file builds it with Keras: TensorFlow's start-up
    lines (``I0000 ... oneDNN``, ``cuInit``) stay off stderr, as for every other file."""
    import os
    import subprocess
    import sys

    _, path = library_files["kimm"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    run = subprocess.run([sys.executable, "-m", "keras_cnnkit", path, "--no-config", "-q"],
                         capture_output=True, text=True, env=env, timeout=300, check=False)
    assert run.returncode in (0, 1), run.stderr
    assert run.stderr == "", run.stderr


def test_a_library_that_fails_to_import_is_one_line(library_files, monkeypatch):
    """An installed library whose import fails (a broken install): the file is not at
    fault, the error says so in one line (was "unexpected ImportError ... please report
    it")."""
    _, path = library_files["kimm"]
    real = importlib.import_module

    def broken(name, *args, **kwargs):
        if name == "kimm":
            raise ImportError("libsomething.so: cannot open shared object file")
        return real(name, *args, **kwargs)
    monkeypatch.setattr(importlib, "import_module", broken)
    with pytest.raises(ModelFileError, match=r"a kimm model \(LCNet050\), but the installed "
                                             r"kimm cannot be imported \(ImportError: "
                                             r"libsomething\.so"):
        lint(path)
