"""What a new user meets first: entry points, missing extras, configuration, words.

Each test runs the commands the way a user does (``python -m``, console-script mains, a
fresh interpreter) and checks the one thing a newcomer would trip over.
"""
import configparser
import os
import re
import subprocess
import sys
import textwrap

import pytest

from keras_cnnkit.errors import EXTRAS
from keras_cnnkit.lint.cli import build_parser, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
           PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))


def python(code: str, cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (this checkout first on the path)."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout, check=False)


# --- entry points ------------------------------------------------------------------------

@pytest.mark.notf
def test_python_m_keras_cnnkit_runs_the_linter():
    """``python -m keras_cnnkit`` is ``cnnkit-lint``."""
    proc = subprocess.run([sys.executable, "-m", "keras_cnnkit", EXAMPLE, "--no-config",
                           "-q"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "CNK103 missing-bottleneck" in proc.stdout


@pytest.mark.notf
def test_help_names_every_model_format():
    """--help lists .onnx among the model files, and every flag it accepts."""
    text = build_parser().format_help()
    path_help = " ".join(text.split("positional arguments:")[1].split("options:")[0].split())
    for kind in (".keras", ".h5", "JSON", ".onnx"):
        assert kind in path_help
    assert "--verbose-json" in text and "-q, --quiet" in text


# --- import keras_cnnkit registers the blocks -------------------------------------------

def test_import_registers_blocks_without_importing_keras(tmp_path):
    """``import keras_cnnkit`` imports neither Keras nor TensorFlow; a .keras file with
    keras_cnnkit blocks then loads with Keras imported before or after it."""
    import keras  # the file is written here; only the loads need fresh interpreters

    from keras_cnnkit.layers import Bottleneck1x1, SqueezeExcite
    x = keras.Input((8, 8, 16))
    y = SqueezeExcite()(Bottleneck1x1(16, bottleneck_filters=4)(x))
    keras.Model(x, y).save(str(tmp_path / "m.keras"))
    cheap = python("import sys, keras_cnnkit; "
                   "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    assert cheap.stdout.strip() == "[]", cheap.stderr[-2000:]
    for imports in ("import keras, keras_cnnkit", "import keras_cnnkit, keras"):
        proc = python(f"""
            {imports}
            model = keras.models.load_model({str(tmp_path / "m.keras")!r})
            print([type(layer).__name__ for layer in model.layers])
            """)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "'Bottleneck1x1', 'SqueezeExcite'" in proc.stdout


# --- a missing optional dependency: one line naming the extra, exit 2 -------------------

def _without(modules: tuple, call: str, cwd=ROOT) -> subprocess.CompletedProcess:
    """Run ``call`` (a console-script main) where ``modules`` cannot be imported, on the
    TensorFlow backend."""
    hide = "; ".join(f"sys.modules[{m!r}] = None" for m in modules)
    return python(f"import os, sys; os.environ['KERAS_BACKEND'] = 'tensorflow'; {hide}; "
                  f"{call}", cwd=cwd)


@pytest.mark.notf
def test_extras_table_matches_setup_cfg():
    """errors.EXTRAS names, for each optional module, an extra that installs it."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"), encoding="utf-8")
    extras = {name: [re.split(r"[<>=!~ ]", req.strip())[0]
                     for req in reqs.strip().splitlines() if req.strip()]
              for name, reqs in parser["options.extras_require"].items()}
    for module, extra in EXTRAS.items():
        assert module in extras[extra], (module, extra)


@pytest.mark.notf
@pytest.mark.parametrize("hidden, call, extra", [
    # the IR exporter needs onnx (not TensorFlow); the tf2onnx path needs all four
    (("onnx",), f"from keras_cnnkit.export import main; sys.exit(main([{EXAMPLE!r}, '-o', "
     "'m.onnx', '--no-verify']))", "keras-cnnkit[export]"),
    (("tensorflow",), "from keras_cnnkit.export import main; sys.exit(main(['m.keras', '-o', "
     "'m.onnx', '--via', 'tf2onnx']))", "cnnkit-export needs tensorflow"),
    # (where TensorFlow is missing too, as in tox notf, the extras named are
    # "tensorflow,export")
    (("tf2onnx", "onnxruntime"), "from keras_cnnkit.export import main; "
     "sys.exit(main(['m.keras', '-o', 'm.onnx', '--via', 'tf2onnx']))",
     re.compile(r'keras-cnnkit\[(tensorflow,)?export\]')),
    (("tensorflow",), f"from keras_cnnkit.lint.cli import main; sys.exit(main(["
     f"{EXAMPLE!r}, '--fix', '-o', 'fixed.keras', '--no-config']))", "--fix needs tensorflow"),
    (("tensorflow",), f"from keras_cnnkit.lint.cli import main; sys.exit(main(["
     f"{EXAMPLE!r}, '--benchmark', '--no-config']))", "--benchmark needs tensorflow"),
])
def test_missing_extra_is_one_line_and_exit_2(hidden, call, extra, tmp_path):
    """No traceback: one line on stderr naming the extra (pip install
    "keras-cnnkit[...]"), exit status 2."""
    (tmp_path / "m.keras").write_bytes(b"PK")      # a model file (never read: deps first)
    proc = _without(hidden, call, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1, proc.stderr
    named = extra.search(lines[0]) if isinstance(extra, re.Pattern) else extra in lines[0]
    assert named and 'pip install "keras-cnnkit[' in lines[0], lines[0]


@pytest.mark.notf
def test_onnx_file_without_onnx_names_the_extra(tmp_path):
    """Linting an .onnx file without the onnx package is one line naming the extra."""
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x07\x12\x07pytorch")        # an ONNX ModelProto's first fields
    proc = _without(("onnx",), f"from keras_cnnkit.lint.cli import main; "
                               f"sys.exit(main([{str(path)!r}, '--no-config']))")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert 'pip install "keras-cnnkit[export]"' in line


# --- configuration -------------------------------------------------------------------------

@pytest.mark.notf
def test_config_input_shape_never_conflicts_with_a_declared_input(tmp_path, capsys,
                                                                  monkeypatch):
    """A config's input-shape fills unknown dims only: on the 32×32 example it changes
    nothing (the flag still conflicts), and the example's MACs are those of 32×32."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.cnnkit-lint]\ninput-shape = [224, 224, 3]\n', encoding="utf-8")
    assert main([EXAMPLE, "--format", "json", "--min-impact", "0"]) == 1
    out = capsys.readouterr().out
    # The first conv of the example, at 32×32: 32·32·64·(3·3·3) MACs.
    assert '"macs_before": 1769472' in out
    assert main([EXAMPLE, "--input-shape", "224,224,3"]) == 2
    assert "--input-shape (224, 224, 3) conflicts with input" in capsys.readouterr().err


@pytest.mark.notf
def test_config_input_shape_fills_unknown_dims_and_names_its_file(tmp_path, capsys,
                                                                  monkeypatch):
    """On a model with unknown spatial dims the config value is used; one that does not
    fit is an error naming the config file, not a flag."""
    import static_model_files as smf  # pylint: disable=import-outside-toplevel

    monkeypatch.chdir(tmp_path)
    config = smf.conv_chain_config(1, size=8, channels=4)
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, None, None, 4]
    smf.write_json(tmp_path / "open.json", config)
    toml = tmp_path / "pyproject.toml"
    toml.write_text('[tool.cnnkit-lint]\ninput-shape = [64, 48, 4]\n', encoding="utf-8")
    assert main(["open.json", "--format", "json", "--exit-zero"]) == 0
    # One 1×1 conv 4→4 over 64·48 positions: 64·48·4·4 MACs.
    assert '"macs": 49152' in capsys.readouterr().out
    toml.write_text('[tool.cnnkit-lint]\ninput-shape = [64, 48, 4, 2]\n', encoding="utf-8")
    assert main(["open.json"]) == 2
    err = capsys.readouterr().err
    assert f"input-shape (64, 48, 4, 2) from {toml}" in err and "--input-shape" not in err


@pytest.mark.notf
def test_missing_baseline_says_where_it_was_named_and_how_to_make_it(tmp_path, capsys,
                                                                     monkeypatch):
    """The README's configuration example names a baseline; before it exists the error
    names the config file and the command that writes it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.cnnkit-lint]\nbaseline = "base.json"\n', encoding="utf-8")
    assert main([EXAMPLE]) == 2
    err = capsys.readouterr().err
    assert "no such baseline file" in err and "pyproject.toml" in err
    assert "--write-baseline" in err and len(err.strip().splitlines()) == 1


# --- words a user can follow ---------------------------------------------------------------

#: Internal source notes ("seed 003", "seeds 001/004", "the seed's formula").
SOURCE_NOTE = re.compile(r"\bseeds?\s+\d{3}|\bseed's\b|\bseeds'|\bseed (?:documents?|formula)",
                         re.IGNORECASE)


def _user_facing_texts():
    """(where, text): --explain pages, --help, the README, docs and examples."""
    from keras_cnnkit.lint import registry  # pylint: disable=import-outside-toplevel
    from keras_cnnkit.lint.formatters import RuleInfo  # pylint: disable=import-outside-toplevel

    for rule in registry.all_rules():
        yield f"--explain {rule.code}", RuleInfo.from_rule(rule).explain()
    yield "--help", build_parser().format_help()
    paths = ["README.md", *(f"docs/{n}" for n in sorted(os.listdir(os.path.join(ROOT, "docs")))
                            if n.endswith(".md"))]
    paths += [f"examples/{n}" for n in sorted(os.listdir(os.path.join(ROOT, "examples")))
              if n.endswith(".py")]
    for path in paths:
        with open(os.path.join(ROOT, path), encoding="utf-8") as handle:
            yield path, handle.read()


@pytest.mark.notf
def test_user_facing_text_cites_papers_not_source_notes():
    """No "Seed 003" or "the seed's formula" where a user reads."""
    found = [(where, m.group(0)) for where, text in _user_facing_texts()
             for m in SOURCE_NOTE.finditer(text)]
    assert found == []
