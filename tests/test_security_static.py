"""Linting a model file never runs code from it, and never imports Keras or TensorFlow.

The Lambda files are written by Keras itself, so their marshalled bytecode is real: a
positive control loads them with ``keras.models.load_model(safe_mode=False)`` and sees
the marker appear.  ``cnnkit-lint`` on the same files reports an opaque layer and the
marker never appears.  The same holds for configs naming importable callables
(``os.system``, ``builtins.eval``, ``subprocess.Popen``) in both containers.
"""
import json
import os
import subprocess

import pytest
import static_model_files as smf

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

HEAVY_MODULES = ("keras", "tensorflow", "tf_keras", "keras_cnnkit.layers", "jax", "torch")


def _lambda_model(marker):
    """A model whose Lambda writes ``marker`` whenever Keras runs it."""
    import keras

    inp = keras.Input((8, 8, 3), name="x")
    y = keras.layers.Conv2D(8, 1, name="conv")(inp)
    # The path is a constant of the lambda's own code object (no defaults, no closure),
    # so the marshalled bytecode in the file is self-contained.
    fn = eval(  # pylint: disable=eval-used
        f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('pwned'), t)[1]")
    y = keras.layers.Lambda(fn, name="evil")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    return keras.Model(inp, keras.layers.Dense(2, name="fc")(y), name="trojan")


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    """``.keras`` and ``.h5`` files holding the marker-writing Lambda (marker removed)."""
    root = tmp_path_factory.mktemp("lambda")
    marker = root / "MARKER"
    model = _lambda_model(marker)  # building the model runs the Lambda once
    files = {fmt: smf.save_quietly(model, root / f"trojan.{fmt}") for fmt in ("keras", "h5")}
    marker.unlink()
    return files, marker


def _run(code: str, cwd) -> subprocess.CompletedProcess:
    return smf.run_python(code, cwd, timeout=300)


_LINT_AND_CHECK_IMPORTS = """
    import json, sys
    from keras_cnnkit.lint.cli import main
    status = main(sys.argv[1:] if len(sys.argv) > 1 else {args!r})
    heavy = sorted(m for m in sys.modules
                   if any(m == h or m.startswith(h + ".") for h in {heavy!r}))
    print(json.dumps({{"status": status, "heavy": heavy}}))
"""


def _lint_subprocess(args: list, cwd) -> tuple:
    proc = _run(_LINT_AND_CHECK_IMPORTS.format(args=args, heavy=HEAVY_MODULES), cwd)
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last), proc


def test_lambda_bytecode_is_real(lambda_files, tmp_path):
    """Positive control: Keras with safe_mode off does run the Lambda of both files (one
    fresh interpreter loads each in turn, the marker checked and removed after each)."""
    files, marker = lambda_files
    proc = _run(f"""
        import json, os
        import keras
        ran = {{}}
        for fmt, path in {files!r}.items():
            keras.models.load_model(path, compile=False, safe_mode=False)
            ran[fmt] = os.path.exists({str(marker)!r})
            if ran[fmt]:
                os.remove({str(marker)!r})
        print(json.dumps(ran))
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ran == {fmt: True for fmt in files}, f"loading did not run the Lambda: {ran}"
    assert not marker.exists()


def test_linting_lambda_files_runs_nothing(lambda_files, tmp_path):
    """Linting both Lambda files: opaque layer reported, marker absent, no Keras."""
    files, marker = lambda_files
    out = tmp_path / "report.json"
    result, proc = _lint_subprocess(
        [files["keras"], files["h5"], "--format", "json", "-o", str(out)], tmp_path)
    assert not marker.exists()
    assert result["heavy"] == []
    assert result["status"] == 0, proc.stderr  # opaque-layer is info; --fail-on warning
    report = json.loads(out.read_text())
    for model in report["models"]:
        opaque = [f for f in model["findings"] if f["symbol"] == "opaque-layer"]
        assert [(f["code"], f["layer"]) for f in opaque] == [("CNK001", "evil")]
        assert model["summary"]["opaque_layers"] == [
            {"layer": "evil", "node": "evil", "class_name": "Lambda"}]
        assert "evil" in model["summary"]["unknown_cost_layers"]
        # Everything else is still analysed: conv 3·8+8, dense 8·2+2 parameters.
        assert model["summary"]["params"] == 32 + 18


#: Layers naming importable callables; the Keras 3 ``module``/``class_name`` fields are
#: what a malicious config would use to make a loader import and call them.
def _callable_layers(marker: str) -> list:
    return [
        {"module": "os", "class_name": "system", "registered_name": "system",
         "name": "sys_call", "config": {"name": "sys_call", "command": f"touch {marker}"}},
        {"module": "builtins", "class_name": "eval", "registered_name": None,
         "name": "ev", "config": {"name": "ev",
                                  "source": f"open({marker!r}, 'w').write('x')"}},
        {"module": "subprocess", "class_name": "Popen", "registered_name": None,
         "name": "popen", "config": {"name": "popen", "args": ["touch", marker]}},
    ]


def _callable_config(marker: str) -> dict:
    layers = [smf.k3_input("x", [8, 8, 3])]
    prev = "x"
    for entry in _callable_layers(marker):
        entry["inbound_nodes"] = [{"args": [smf.k3_tensor(prev)], "kwargs": {}}]
        layers.append(entry)
        prev = entry["name"]
    conv = smf.k3_layer("Conv2D", "conv", ["x"], filters=4, kernel_size=[1, 1],
                        activation={"module": "os", "class_name": "system",
                                    "config": {"command": f"touch {marker}"}})
    layers.append(conv)
    return smf.k3_functional("callables", layers, ["x"], [prev, "conv"])


def test_configs_naming_callables_run_nothing(tmp_path):
    """os.system, builtins.eval, subprocess.Popen in every container: opaque, never called."""
    marker = tmp_path / "MARKER"
    config = _callable_config(str(marker))
    k2 = smf.to_keras2(config)
    for entry, original in zip(k2["config"]["layers"], config["config"]["layers"]):
        if original.get("module") in ("os", "builtins", "subprocess"):
            entry["module"] = original["module"]  # late tf.keras also writes `module`
    files = [smf.write_keras_archive(tmp_path / "c.keras", config),
             smf.write_legacy_h5(tmp_path / "c.h5", config),
             smf.write_json(tmp_path / "c.json", config),
             smf.write_legacy_h5(tmp_path / "k2.h5", k2)]
    # A top-level "model" that is itself a callable: not a model, exit 2.
    top = {"module": "os", "class_name": "system", "config": {"command": f"touch {marker}"}}
    files.append(smf.write_keras_archive(tmp_path / "top.keras", top))
    out = tmp_path / "report.json"
    result, proc = _lint_subprocess([*files, "--format", "json", "-o", str(out)], tmp_path)
    assert not marker.exists()
    assert result["heavy"] == []
    assert result["status"] == 2  # the top-level callable is an input error
    assert proc.stderr.strip() == (f"cnnkit-lint: error: {files[-1]}: top-level class "
                                   "'system' is not a Functional or Sequential model (no "
                                   "'layers' list); subclassed models cannot be read "
                                   "statically: save it as keras.Model(model.inputs, "
                                   "model.outputs), or lint the model object "
                                   "(keras_cnnkit.lint(model))")
    report = json.loads(out.read_text())
    assert [m["file"] for m in report["models"]] == files[:-1]
    for model in report["models"]:
        opaque = {(f["layer"], f["measurements"]["class_name"])
                  for f in model["findings"] if f["symbol"] == "opaque-layer"}
        assert opaque == {("sys_call", "os.system"), ("ev", "builtins.eval"),
                          ("popen", "subprocess.Popen")}
        # The conv with an "activation" naming os.system is analysed, never called:
        # 8·8·4·3 MACs; its activation has no known cost.
        assert model["summary"]["macs"] == 8 * 8 * 4 * 3
        assert "conv" in model["summary"]["unknown_cost_layers"]


@pytest.mark.parametrize("suffix", ["h5", "keras", "json"])
def test_known_layer_models_never_import_keras(tmp_path, suffix):
    """Linting known-layer models imports no Keras, TensorFlow or keras_cnnkit.layers."""
    config = smf.conv_chain_config(6)
    if suffix == "h5":
        path = smf.write_legacy_h5(tmp_path / "m.h5", config,
                                   {"c0": {"c0/kernel": (1, 1, 8, 8), "c0/bias": (8,)}})
    elif suffix == "keras":
        path = smf.write_keras_archive(tmp_path / "m.keras", config)
    else:
        path = smf.write_json(tmp_path / "m.json", config)
    result, proc = _lint_subprocess([path, "--format", "json", "-o", os.devnull], tmp_path)
    assert result == {"status": 0, "heavy": []}, proc.stderr


def test_bundled_example_never_imports_keras(tmp_path):
    """The README's first command imports no Keras or TensorFlow."""
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "models",
                           "inefficient_cnn.h5")
    result, _ = _lint_subprocess([os.path.abspath(example), "-q", "-o", os.devnull], tmp_path)
    assert result == {"status": 1, "heavy": []}


def _op_and_wrapper_config(marker: str) -> dict:
    """Keras 3 entries the new readers interpret: keras.ops calls with crafted arguments,
    wrappers whose wrapped layer names a callable, a Pipeline holding one."""
    evil = {"module": "os", "class_name": "system", "registered_name": None,
            "config": {"command": f"touch {marker}"}}
    lam = {"class_name": "__lambda__", "config": {"code": f"touch {marker}"}}
    layers = [
        smf.k3_input("x", [8, 8, 3]),
        smf.k3_layer("Eval", "op_eval", ["x"], module="keras.src.ops.numpy"),
        {**smf.k3_layer("Add", "op_add", ["x"], module="keras.src.ops.numpy"),
         "inbound_nodes": [{"args": [smf.k3_tensor("x"), lam], "kwargs": {"f": evil}}]},
        {**smf.k3_layer("GetItem", "op_item", ["x"], module="keras.src.ops.numpy"),
         "inbound_nodes": [{"args": [smf.k3_tensor("x"), [evil, lam]], "kwargs": {}}]},
        smf.k3_layer("TimeDistributed", "td", ["x"], layer=evil),
        smf.k3_layer("Bidirectional", "bi", ["x"], layer=evil),
        smf.k3_layer("RNN", "rnn", ["x"], cell=evil),
        smf.k3_layer("Pipeline", "pipe", ["x"], layers=[evil, lam]),
        smf.k3_layer("SpectralNormalization", "sn", ["x"], layer=evil),
    ]
    return smf.k3_functional("ops", layers, ["x"], [entry["name"] for entry in layers[1:]])


def _keras2_op_config(marker: str) -> dict:
    """Keras 2 TF-op layers naming callables: ``os.system``, ``__import__``, ``eval``."""
    layers = [{"class_name": "InputLayer", "name": "x",
               "config": {"name": "x", "batch_input_shape": [None, 8, 8, 3]},
               "inbound_nodes": []}]
    for i, function in enumerate(("os.system", "__import__", "builtins.eval", "math.add")):
        layers.append({"class_name": "TFOpLambda", "name": f"tf_{i}",
                       "config": {"name": f"tf_{i}", "function": function},
                       "inbound_nodes": [["x", 0, 0, {"y": f"touch {marker}",
                                                      "command": f"touch {marker}"}]]})
    layers.append({"class_name": "SlicingOpLambda", "name": "slice",
                   "config": {"name": "slice", "function": "__operators__.getitem"},
                   "inbound_nodes": [["x", 0, 0, {"slice_spec": [
                       {"class_name": "__lambda__", "config": {"code": marker}}]}]]})
    return {"class_name": "Functional",
            "config": {"name": "k2", "layers": layers, "input_layers": [["x", 0, 0]],
                       "output_layers": [[e["name"], 0, 0] for e in layers[1:]]}}


def test_op_calls_and_wrappers_run_nothing(tmp_path):
    """keras.ops calls with crafted arguments, TF-op layers naming callables, wrappers
    holding a callable: each is an opaque node (or a plain op), nothing is imported or
    called, Keras is never imported."""
    marker = tmp_path / "MARKER"
    files = [smf.write_json(tmp_path / "ops.json", _op_and_wrapper_config(str(marker))),
             smf.write_keras_archive(tmp_path / "ops.keras",
                                     _op_and_wrapper_config(str(marker))),
             smf.write_legacy_h5(tmp_path / "k2.h5", _keras2_op_config(str(marker)))]
    out = tmp_path / "report.json"
    result, proc = _lint_subprocess([*files, "--format", "json", "-o", str(out)], tmp_path)
    assert not marker.exists()
    assert result["heavy"] == [], result
    assert result["status"] == 0, proc.stderr
    report = json.loads(out.read_text())
    opaque = [{f["layer"] for f in model["findings"] if f["symbol"] == "opaque-layer"}
              for model in report["models"]]
    assert opaque[0] == opaque[1] == {"op_eval", "op_add", "op_item", "td", "bi", "rnn",
                                      "pipe", "sn"}
    assert opaque[2] == {"tf_0", "tf_1", "tf_2", "tf_3", "slice"}


def test_deeply_nested_call_arguments_are_one_line_errors(tmp_path):
    """Call arguments nested thousands deep: a one-line error, no recursion crash."""
    config = smf.k3_functional("deep", [
        smf.k3_input("x", [4]),
        {**smf.k3_layer("Add", "add", ["x"], module="keras.src.ops.numpy"),
         "inbound_nodes": [{"args": [smf.k3_tensor("x"), "DEEP"], "kwargs": {}}]}],
        ["x"], ["add"])
    text = json.dumps(config).replace('"DEEP"', "[" * 900 + "]" * 900)
    path = smf.write_json(tmp_path / "deep.json", text)
    from keras_cnnkit.analysis.frontends.static_file import load_graph
    from keras_cnnkit.errors import ModelFileError
    from keras_cnnkit.budgets import using
    with pytest.raises(ModelFileError, match="over budget max-json-depth"):
        load_graph(path)                  # the JSON scan stops it before parsing
    with using({"max-json-depth": 5000}), pytest.raises(
            ModelFileError, match="call arguments nested too deeply"):
        load_graph(path)                  # past the budget, the reader's own guard
