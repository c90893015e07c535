"""The static linter path works where TensorFlow is not installed (tox env ``notf``).

These tests use only files that need no TensorFlow to make: the bundled example model and
hand-written Keras configs.  In the ``notf`` env (``CNNKIT_EXPECT_NO_TF=1``) they also
check that TensorFlow really is absent, so a passing run means what it says.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.notf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")


def _lint(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "keras_cnnkit.lint", *args], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=120)


def test_environment_has_no_tensorflow_when_asked():
    """In the notf env TensorFlow must be missing (else the env tests nothing)."""
    if os.environ.get("CNNKIT_EXPECT_NO_TF") != "1":
        pytest.skip("only meaningful in the tox notf env")
    assert importlib.util.find_spec("tensorflow") is None


def test_bundled_example_is_linted_with_exact_savings():
    """The example's 256→256 3×3 conv with bias: 256·9·256 + 256 = 590,080 parameters; a
    1×1 → 64, 3×3 64→64, 1×1 → 256 bottleneck with biases: (256·64 + 64) + (64·9·64 + 64)
    + (64·256 + 256) = 70,016.  Its 64→64 5×5 conv: 64·25·64 + 64 = 102,464 → two 3×3:
    2·(64·9·64 + 64) = 73,856."""
    proc = _lint(EXAMPLE, "--format", "json", "--no-config")
    assert proc.returncode == 1, proc.stderr
    (model,) = json.loads(proc.stdout)["models"]
    found = {(a["symbol"], f["layer"]): (a["params_before"], a["params_after"])
             for f in model["findings"] for a in f["alternatives"]}
    assert found[("missing-bottleneck", "wide_conv")] == (590_080, 70_016)
    assert found[("large-kernel", "conv5x5")] == (102_464, 73_856)
    assert ("flatten-dense-head", "classifier") in found


def test_hand_written_config_with_a_malicious_layer(tmp_path):
    """A Keras 3 JSON config naming ``os.system``: an opaque-layer finding, nothing run,
    and neither keras nor tensorflow imported."""
    marker = tmp_path / "pwned"
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 3], "name": "in"}},
        {"class_name": "Conv2D", "module": "keras.layers", "config": {
            "name": "conv", "filters": 16, "kernel_size": [3, 3], "padding": "same",
            "use_bias": True}},
        {"class_name": "system", "module": "os",
         "config": {"name": "evil", "command": f"touch {marker}"}}]}}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    code = ("import sys, runpy; sys.argv = ['cnnkit-lint', %r, '--format', 'json', "
            "'--exit-zero', '--no-config']\ntry:\n    runpy.run_module('keras_cnnkit.lint', "
            "run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('IMPORTED', 'tensorflow' in sys.modules, 'keras' in sys.modules)" % str(path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert "IMPORTED False False" in proc.stdout, proc.stdout + proc.stderr
    report = json.loads(proc.stdout[:proc.stdout.rindex("IMPORTED")])
    symbols = {f["symbol"] for f in report["models"][0]["findings"]}
    assert "opaque-layer" in symbols
    assert not marker.exists()
