"""Budgets (issue 17): hostile files are refused before the work, with one line naming
the budget, its limit and the file's value; the budgets are settable; the API keeps its
promise (``ModelFileError`` and nothing else for a bad file).

The hostile files come from ``hostile_files.py``.  Each is read by a child process under
``RLIMIT_AS`` = 1 GB (so a regression fails fast instead of taking the machine down),
and must exit 2 with one stderr line naming the budget within 10 s of CPU time (a
60 s wall-clock limit stops a hang however busy the machine is), peak under 500 MB, leave its input byte-identical and leave no file behind.  ``--fix`` and
``cnnkit-export`` cases run under the same 1 GB limit, in which TensorFlow cannot even be
imported: they pass only if the budgets refuse the file before Keras is touched.
"""
import hashlib
import json
import os
import zipfile

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hostile_files as hf
import static_model_files as smf

from keras_cnnkit import budgets
from keras_cnnkit.analysis.frontends import budget_checks, static_file
from keras_cnnkit.analysis.keras_layers import expand_block
from keras_cnnkit.blockspec import op_bound, registered_specs
from keras_cnnkit.budgets import BudgetError, Budgets
from keras_cnnkit.errors import ConfigError, ModelFileError
from keras_cnnkit.lint.cli import main
from keras_cnnkit.lint.config import read_config_file

PEAK_BYTES = 500 * hf.MB
#: The child's own time (user + system) must stay under 10 s; the wall clock, which a
#: busy machine stretches, only stops a hang.
WALL_LIMIT = 60.0


def _digest(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _lint(capsys, *args):
    status = main([*map(str, args), "--no-config"])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --- the budgets themselves ----------------------------------------------------------------

def test_defaults_and_names():
    assert budgets.names()[:3] == ["max-nodes", "max-kernel-size", "max-channels"]
    assert Budgets().to_dict()["max-json-bytes"] == 32 * 2 ** 20
    assert budgets.current() == budgets.DEFAULT


def test_parse_and_errors():
    parsed = budgets.parse_budgets({"max-nodes": 5, "max_json_depth": "1_000"})
    assert (parsed.max_nodes, parsed.max_json_depth) == (5, 1000)
    for bad in ({"max-nodes": 0}, {"max-nodes": True}, {"max-nodes": "lots"},
                {"max-nodes": 1.5}, {"no-such": 1}):
        with pytest.raises(ConfigError):
            budgets.parse_budgets(bad)
    assert budgets.parse_assignment("max-nodes=7") == ("max-nodes", 7)
    assert budgets.parse_assignment("max-nodes: 7") == ("max-nodes", 7)
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        budgets.parse_assignment("max-nodes")


def test_using_and_set_default_nest_and_restore():
    with budgets.using(max_nodes=10) as inner:
        assert budgets.current().max_nodes == 10 == inner.max_nodes
        with budgets.using({"max-kernel-size": 3}):
            assert (budgets.current().max_nodes, budgets.current().max_kernel_size) == (10, 3)
        assert budgets.current().max_kernel_size == Budgets().max_kernel_size
    assert budgets.current() == budgets.DEFAULT
    try:
        budgets.set_default(max_nodes=11)
        assert budgets.current().max_nodes == 11
    finally:
        budgets.set_default()
    assert budgets.current() == budgets.DEFAULT


def test_budget_error_is_one_line_naming_budget_limit_and_value():
    exc = BudgetError("m.keras", "max-nodes", 1_400_001, 100_000,
                      "the model expands to 1,400,001 layers")
    assert isinstance(exc, ModelFileError)
    assert str(exc) == ("m.keras: over budget max-nodes: the model expands to 1,400,001 "
                        "layers; the limit is 100,000 (raise it with --budget max-nodes=N "
                        "or in [tool.cnnkit-lint.budgets])")
    assert (exc.budget, exc.value, exc.limit) == ("max-nodes", 1_400_001, 100_000)
    with pytest.raises(BudgetError, match="about 31 digits"):
        budgets.check_int64("m", 10 ** 30, "a size")


# --- the JSON scan ---------------------------------------------------------------------------

def _reference_scan(text: str) -> tuple:
    depth = deepest = 0
    values, inside, escaped = 1, False, False
    for ch in text:
        if inside:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                inside = False
        elif ch == '"':
            inside = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            values += 1
        elif ch in "]}":
            depth -= 1
        elif ch == ",":
            values += 1
    return deepest, values


_JSON = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(alphabet='ab"\\[]{},', max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(alphabet='k"\\[{,', max_size=4), inner,
                                            max_size=4)), max_leaves=25)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(value=_JSON, chunk=st.sampled_from([1, 2, 5, 1 << 20]))
def test_json_scan_matches_a_character_by_character_scan(value, chunk):
    """Depth and value count, with strings (quotes, escapes, brackets inside) skipped,
    the same whatever the chunk boundaries."""
    text = json.dumps(value)
    old = budget_checks._CHUNK  # pylint: disable=protected-access
    budget_checks._CHUNK = chunk  # pylint: disable=protected-access
    try:
        got = budget_checks._scan_json(memoryview(text.encode()))  # pylint: disable=protected-access
    finally:
        budget_checks._CHUNK = old  # pylint: disable=protected-access
    assert got == _reference_scan(text)


# --- block op bounds ---------------------------------------------------------------------------

_BLOCK_CONFIGS = {
    "Bottleneck1x1": [{"filters": 16}, {"filters": 16, "expand": True}],
    "ClassifierHead": [{"classes": 5, "variant": v, "hidden_units": [8, 8], "dropout": 0.5}
                       for v in ("gap", "gmp", "flatten_dense", "conv1x1")],
    "ConvBNAct": [{"filters": 8}, {"filters": 8, "strides": 2}],
    "DenseBlock": [{"num_layers": 5}, {"num_layers": 3, "bottleneck_width": 0}],
    "DepthwiseSeparableConv": [{"filters": 8}, {"filters": 8, "strides": 2}],
    "DilatedConv": [{"filters": 8}],
    "FactorizedConv": [{"filters": 8, "kernel_size": 9},
                       {"filters": 8, "kernel_size": 7, "mode": "asymmetric"}],
    "InceptionModule": [{"variant": v} for v in ("naive", "v1", "v3_a", "v3_reduction_a",
                                                 "v3_b", "v3_reduction_b", "v3_c")],
    "InvertedResidual": [{"filters": 8}, {"filters": 8, "use_se": True, "strides": 2,
                                          "drop_path_rate": 0.1}],
    "ResidualBlock": [{"filters": 8, "variant": var, "version": ver, "use_se": se,
                       "strides": s, "drop_path_rate": 0.1}
                      for var in ("basic", "bottleneck") for ver in (1, 2)
                      for se in (False, True) for s in (1, 2)],
    "ShuffleUnit": [{"filters": 24 * s, "version": v, "strides": s}
                    for v in (1, 2) for s in (1, 2)],
    "SqueezeExcite": [{}],
    "TransitionBlock": [{}, {"strides": 1}],
    "XceptionBlock": [{"filters": [8, 16, 16], "strides": 2, "drop_path_rate": 0.1},
                      {"filters": [8], "pre_activation": True}],
}


def test_every_block_has_sample_configs():
    assert set(_BLOCK_CONFIGS) == set(registered_specs())


@pytest.mark.parametrize("class_name", sorted(_BLOCK_CONFIGS))
def test_op_bound_covers_every_expansion(class_name):
    """What the budget charges a block (from its arguments alone) is never less than the
    nodes it expands to."""
    for config in _BLOCK_CONFIGS[class_name]:
        shape = (16, 16, 24) if class_name != "ClassifierHead" else (4, 4, 24)
        try:
            expansion = expand_block("b", class_name, dict(config), shape, "x")
        except (ValueError, KeyError) as exc:   # a config this shape cannot take
            pytest.fail(f"{class_name} {config}: {exc}")
        assert len(expansion.nodes) <= op_bound(class_name, config), (class_name, config)


def test_op_bounds_of_the_bombs_are_computed_not_expanded():
    assert op_bound("DenseBlock", {"num_layers": 5_000_000}) == 35_000_000
    assert op_bound("FactorizedConv", {"filters": 4, "kernel_size": 10_000_001}) == 15_000_000
    assert op_bound("ClassifierHead", {"classes": 2, "hidden_units": [4] * 10 ** 6}) \
        == 3_000_006
    assert op_bound("Conv2D", {}) is None
    assert op_bound("DenseBlock", {"num_layers": "many"}) == 1   # refused when expanded


# --- hostile files, each in a limited child --------------------------------------------------

#: Not a budget: refused for what they are.
_OTHER_REFUSALS = {"hardlink_weights_keras": "a second hard link to it", **{
    f"h5_{kind}_{where}": "data outside the model file is never read"
    for kind, where in (("external_storage", "keras"), ("external_storage", "h5"),
                        ("external_storage", "export_h5"), ("external_storage", "fix_keras"),
                        ("virtual_dataset", "keras"), ("virtual_dataset", "export_h5"))},
    **{f"oversized_weight_{mode}": "stores 268,435,456 weights, more than the 72 its config makes"
       for mode in ("export", "fix")},
    "control_name_fix": "layer name 'a\\x00b' holds a control character"}
#: The cases the fast suite runs: issue 17's and one or more per budget and format.
_FAST = {c.name for c in hf.CASES if c.issue} | {
    "dense_block_json", "dense_block_h5", "head_json", "shared_model_json",
    "int64_kernel_h5", "json_depth_keras", "json_values_h5", "h5_weight_names_path",
    "h5_many_names", "onnx_broadcast", "onnx_concat", "onnx_unsqueeze_chain",
    "onnx_declared_concat", "dense_block_export_h5", "factorized_fix_keras",
    "onnx_constant_of_shape_api", "dense_block_api", *(
        name for name in _OTHER_REFUSALS if name.startswith(("h5_", "oversized_", "control_"))),
    "huge_input_export", "huge_input_fix"}


def _argv(case, path, out_dir):
    return hf.case_argv(case, path, out_dir)


def _run_case(case, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    path = case.build(str(src))
    before, listing = _digest(path), sorted(os.listdir(src))
    run = hf.run_limited(_argv(case, path, str(out)), hf.GB, WALL_LIMIT, cwd=str(out))
    return path, before, listing, run


_REFUSED = [c for c in hf.CASES if c.budget or c.name in _OTHER_REFUSALS]


def _cases(fast: bool):
    return [pytest.param(c, id=c.name) for c in _REFUSED if (c.name in _FAST) == fast]


def _check_refused(case, tmp_path):
    path, before, listing, run = _run_case(case, tmp_path)
    lines = run.stderr.strip().splitlines()
    assert not run.timed_out, f"{case.name}: {run.describe()}"
    assert run.returncode == 2, f"{case.name}: {run.describe()}\n{run.stderr[-2000:]}"
    assert len(lines) == 1, run.stderr[-2000:]
    expected = _OTHER_REFUSALS.get(case.name, f"over budget {case.budget}: ")
    assert expected in lines[0], lines[0]
    assert "Traceback" not in run.stderr and "ESCAPED" not in run.stderr
    assert run.cpu_seconds < 10 and run.peak_bytes < PEAK_BYTES, run.describe()
    assert _digest(path) == before, "the input changed"
    assert sorted(os.listdir(os.path.dirname(path))) == listing
    assert os.listdir(tmp_path / "out") == [], "a file was left behind"


@pytest.mark.parametrize("case", _cases(fast=True))
def test_hostile_file_is_refused_in_one_line(case, tmp_path):
    """Exit 2, one line naming the budget, < 10 s, < 500 MB, input unchanged, nothing
    left behind."""
    _check_refused(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", _cases(fast=False))
def test_hostile_file_is_refused_in_one_line_all_cases(case, tmp_path):
    """The other shapes and formats of the same bombs."""
    _check_refused(case, tmp_path)


def test_api_raises_model_file_error_for_every_lint_case(tmp_path):
    """``keras_cnnkit.lint(path)`` on each hostile file raises ``BudgetError`` (a
    ``ModelFileError``) — in-process, under a budget small enough for the slowest."""
    for case in hf.CASES:
        if case.mode != "lint" or case.slow_build or case.name not in _FAST:
            continue
        folder = tmp_path / case.name
        folder.mkdir()
        path = case.build(str(folder))
        with pytest.raises(ModelFileError) as info:
            import keras_cnnkit
            keras_cnnkit.lint(path)
        assert "unexpected" not in str(info.value), (case.name, info.value)


def test_input_values_budget_is_checked_before_keras_and_can_be_raised(tmp_path):
    """A 5,000 × 5,000 RGB input (75,000,000 values a sample) is over the default
    ``max-input-values`` (2**26 = 67,108,864) for a command that runs the model; a raised
    budget lets the same file through the gate; linting never checks it."""
    from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras
    path = hf.write_config(str(tmp_path / "big.keras"), hf.huge_input_config(5000), "keras")
    assert Budgets().max_input_values == 2 ** 26 == 67_108_864
    with pytest.raises(BudgetError, match="over budget max-input-values: --fix would run "
                                          "the model on input 'x' of shape "
                                          r"\(5000, 5000, 3\): 75,000,000 values a sample"):
        check_before_keras(path)
    with budgets.using(max_input_values=75_000_000):
        assert check_before_keras(path)["x"].output_shape == (5000, 5000, 3)
    assert budgets.current().max_input_values == 2 ** 26
    import keras_cnnkit
    assert keras_cnnkit.lint(path).graph["x"].output_shape == (5000, 5000, 3)


def test_verification_inputs_are_bounded():
    """The random inputs an export is verified on are sized before they are drawn."""
    from onnx import TensorProto, helper

    from keras_cnnkit.onnx_convert import VerificationInputError, verification_inputs
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [None, 3, 10 ** 5, 10 ** 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    with pytest.raises(VerificationInputError, match="over budget max-input-values "
                                                     "67,108,864.*--no-verify"):
        verification_inputs(helper.make_model(graph))
    small = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                             [None, 3, 100, 100])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    assert verification_inputs(helper.make_model(small))["x"].shape == (2, 3, 100, 100)
    with budgets.using(max_input_values=29_999):    # 3 × 100 × 100 = 30,000 a sample
        with pytest.raises(VerificationInputError, match="30,000 values a sample"):
            verification_inputs(helper.make_model(small))


def test_onnx_constant_claiming_external_data_is_not_read(tmp_path):
    """A ``Constant`` whose tensor says its data is external (without saying where):
    never read (onnx would raise its own ``ValidationError``); the node is unknown."""
    import keras_cnnkit
    path = hf.onnx_external_constant(str(tmp_path / "ext.onnx"))
    report = keras_cnnkit.lint(path)
    assert report.graph is not None


# --- budgets are checked before, and can be raised ---------------------------------------------

def test_budget_from_flag_and_from_config(tmp_path, capsys):
    path = smf.write_json(tmp_path / "m.json", smf.conv_chain_config(8))
    assert _lint(capsys, path)[0] == 0
    status, _, err = _lint(capsys, path, "--budget", "max-nodes=5")
    assert status == 2 and "over budget max-nodes: the model expands to 6 layers by layer " \
                              "'c4' (Conv2D); the limit is 5" in err, err
    (tmp_path / "pyproject.toml").write_text("[tool.cnnkit-lint.budgets]\nmax-nodes = 5\n")
    status = main([str(path), "--config", str(tmp_path / "pyproject.toml")])
    assert status == 2 and "over budget max-nodes" in capsys.readouterr().err
    status = main([str(path), "--config", str(tmp_path / "pyproject.toml"), "--budget",
                   "max-nodes=100"])
    assert status == 0, capsys.readouterr().err
    (tmp_path / "setup.cfg").write_text("[cnnkit-lint]\nbudgets =\n    max-nodes: 5\n"
                                        "    max-json-depth = 40\n")
    settings = read_config_file(tmp_path / "setup.cfg")
    assert settings.budgets == {"max-nodes": 5, "max-json-depth": 40}
    status, _, err = _lint(capsys, path, "--budget", "max-nodes=0")
    assert status == 2 and "must be a positive integer" in err


def test_bad_budget_settings_are_config_errors(tmp_path, capsys):
    path = smf.write_json(tmp_path / "m.json", smf.conv_chain_config(2))
    for text in ("[tool.cnnkit-lint.budgets]\nmax-noodles = 5\n",
                 "[tool.cnnkit-lint.budgets]\nmax-nodes = -5\n",
                 "[tool.cnnkit-lint]\nbudgets = 5\n"):
        (tmp_path / "pyproject.toml").write_text(text)
        status = main([str(path), "--config", str(tmp_path / "pyproject.toml")])
        err = capsys.readouterr().err
        assert status == 2 and len(err.splitlines()) == 1 and "budget" in err, err


def test_api_budgets_argument(tmp_path):
    import keras_cnnkit
    path = smf.write_json(tmp_path / "m.json", smf.conv_chain_config(8))
    with pytest.raises(BudgetError) as info:
        keras_cnnkit.lint(path, budgets={"max-nodes": 5})
    assert info.value.budget == "max-nodes" and info.value.limit == 5
    assert keras_cnnkit.lint(path, budgets=Budgets(max_nodes=9)).summary.layer_count == 8


def test_raised_budget_lets_a_bigger_block_through(tmp_path):
    """A DenseBlock of 20 layers is 140 nodes: refused under max-nodes=100, read under
    the default."""
    config = hf.dense_block_bomb(20)
    path = hf.write_config(tmp_path / "db.keras", config, "keras")
    with budgets.using(max_nodes=100), pytest.raises(BudgetError, match="141 layers"):
        static_file.load_graph(path)
    assert len(static_file.load_graph(path).nodes) == 141


def test_zip_members_ratio_and_inflation(tmp_path):
    """A .keras re-zipped deflated reads the same (inflated once, counted, into an
    anonymous file); too many members or a thousandfold member are refused unread."""
    config = smf.conv_chain_config(4)
    weights = smf.weights_h5_bytes(lambda h5: h5.create_group("layers/conv2d/vars")
                                   .create_dataset("0", shape=(1, 1, 8, 8), dtype="float32"))
    stored = smf.write_keras_archive(tmp_path / "stored.keras", config, weights)
    deflated = str(tmp_path / "deflated.keras")
    with zipfile.ZipFile(stored) as src, zipfile.ZipFile(deflated, "w",
                                                         zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    a, b = static_file.load_graph(stored), static_file.load_graph(deflated)
    assert [n.params for n in a] == [n.params for n in b]
    assert sorted(os.listdir(tmp_path)) == ["deflated.keras", "stored.keras"]
    many = smf.write_keras_archive(tmp_path / "many.keras", config,
                                   extra={f"x/{i}": b"" for i in range(10_001)})
    with pytest.raises(BudgetError, match="max-zip-members: the archive has 10,003 members"):
        static_file.load_graph(many)
    with budgets.using(max_inflated_bytes=3000), \
            pytest.raises(BudgetError, match="max-inflated-bytes: model.weights.h5"):
        static_file.load_graph(deflated)


def test_h5_budgets(tmp_path):
    """Links are counted; a path deeper than the budget is refused unwalked; a group
    linked twice is refused."""
    path = smf.write_legacy_h5(tmp_path / "m.h5", smf.KERAS2_NESTED_CONFIG,
                               smf.KERAS2_NESTED_WEIGHTS)
    assert static_file.load_graph(path)
    with budgets.using(max_h5_links=5), pytest.raises(BudgetError, match="max-h5-links"):
        static_file.load_graph(path)
    with h5py.File(path, "a") as h5:
        group = h5["model_weights/c1"]
        group["again"] = group
        group.attrs["weight_names"] = np.array([b"again/again/again/c1/kernel:0"])
    with budgets.using(max_h5_path_depth=3), \
            pytest.raises(BudgetError, match="is a path 5 groups deep; the limit is 3"):
        static_file.load_graph(path)


def test_gate_before_keras_names_what_keras_would_refuse(tmp_path):
    """TFSMLayer and a lookup layer whose vocabulary is a path are refused as what they
    are, by the static gate (Keras is never asked)."""
    from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras

    base = smf.conv_chain_config(2)
    tfsm = json.loads(json.dumps(base))
    tfsm["config"]["layers"][1].update(class_name="TFSMLayer", module="keras.layers")
    tfsm["config"]["layers"][1]["config"]["filepath"] = "/srv/model"
    path = hf.write_config(tmp_path / "tfsm.keras", tfsm, "keras")
    with pytest.raises(ModelFileError, match="'c0' \\(TFSMLayer\\) loads the TensorFlow "
                                             "SavedModel '/srv/model'"):
        check_before_keras(path)
    lookup = json.loads(json.dumps(base))
    lookup["config"]["layers"][1].update(class_name="StringLookup", module="keras.layers")
    lookup["config"]["layers"][1]["config"]["vocabulary"] = "/etc/passwd"
    path = hf.write_config(tmp_path / "lookup.h5", lookup, "h5")
    with pytest.raises(ModelFileError, match="reads its vocabulary from the file "
                                             "'/etc/passwd'"):
        check_before_keras(path)
    ok = hf.write_config(tmp_path / "ok.keras", base, "keras")
    with budgets.using(max_params=10), pytest.raises(BudgetError, match="max-params"):
        check_before_keras(ok)
    assert check_before_keras(ok) is not None


def test_load_problem_names_the_refused_layer():
    from keras_cnnkit.io_guard import _load_problem  # pylint: disable=protected-access
    text = ("Requested the deserialization of a `TFSMLayer`, which loads an external "
            "SavedModel. ... pass `safe_mode=False`")
    assert _load_problem(ValueError(text)).startswith("holds a TFSMLayer layer, which "
                                                      "Keras' safe mode refuses")
    text = ("Requested the loading of a vocabulary file outside of the model archive. "
            "... `safe_mode=False` ... Vocabulary file: '/etc/passwd'")
    assert "vocabulary file '/etc/passwd'" in _load_problem(TypeError(text))
    assert "Lambda" in _load_problem(ValueError("a `Lambda` layer ... safe_mode"))


@settings(max_examples=30, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(num_layers=st.integers(1, 10 ** 12), kernel=st.integers(2, 10 ** 12))
def test_block_bombs_are_refused_at_once_whatever_the_size(tmp_path, num_layers, kernel):
    """Over budget, refused before anything is expanded (no time to speak of); under
    it, read."""
    path = hf.write_config(tmp_path / "m.json", hf.dense_block_bomb(num_layers), "json")
    with budgets.using(max_nodes=200):
        if num_layers * 7 + 1 > 200:
            with pytest.raises(BudgetError, match="max-nodes"):
                static_file.load_graph(path)
        else:
            assert len(static_file.load_graph(path).nodes) == num_layers * 7 + 1
    kernel += 1 - kernel % 2   # stacked kernels are odd
    path = hf.write_config(tmp_path / "f.json", hf.factorized_bomb(kernel), "json")
    with budgets.using(max_kernel_size=15):
        if kernel > 15:
            with pytest.raises(BudgetError, match="max-kernel-size"):
                static_file.load_graph(path)
        else:
            assert static_file.load_graph(path)
