"""``cnnkit-export --no-verify`` through the IR needs neither TensorFlow nor Keras (issue 20).

Runs in the tox ``notf`` env (no TensorFlow installed) as well as in the others: the
export runs in a subprocess whose ``tensorflow``, ``keras``, ``jax`` and ``torch``
imports are poisoned, on the bundled example model (made without TensorFlow).
"""
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.notf
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _subprocess_env():
    """The child's environment: this checkout's package first on ``PYTHONPATH``, then
    what the env already had there (onnx put beside an env on ``PYTHONPATH`` stays
    importable)."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path)


NOTF_SCRIPT = r"""
import builtins, json, sys
real = builtins.__import__
def guard(name, *args, **kwargs):
    if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "jax", "torch"):
        raise ImportError("poisoned: " + name)
    return real(name, *args, **kwargs)
builtins.__import__ = guard
from keras_cnnkit.export import main
code = main([sys.argv[1], "-o", sys.argv[2], "--no-verify", "--via", "ir"])
heavy = [m for m in ("tensorflow", "keras") if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}))
"""


def _export_example(script: str, out) -> subprocess.CompletedProcess:
    """``script`` (with tensorflow and keras poisoned) exporting the bundled example to
    ``out``, run in ``out``'s directory."""
    example = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")
    return subprocess.run([sys.executable, "-c", script, example, str(out)],
                          cwd=out.parent, capture_output=True, text=True, check=False,
                          timeout=300, env=_subprocess_env())


def test_no_verify_needs_neither_tensorflow_nor_keras(tmp_path):
    """``--no-verify`` on the IR path: no tensorflow or keras import (both poisoned)."""
    out = tmp_path / "example.onnx"
    proc = _export_example(NOTF_SCRIPT, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_outputs()


VERIFY_SCRIPT = NOTF_SCRIPT.replace('"--no-verify", ', "")


def test_verification_without_keras_is_one_line(tmp_path):
    """Without a usable Keras, verifying is refused in one line that names --no-verify;
    nothing is written."""
    out = tmp_path / "example.onnx"
    proc = _export_example(VERIFY_SCRIPT, out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["code"] == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--no-verify" in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists() and os.listdir(tmp_path) == []
