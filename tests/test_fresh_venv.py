"""The README's first commands, as written, from a fresh clone in a fresh virtual env.

Slow (each builds a virtual environment and installs from a package index), so marked
``slow``: the tox ``slow`` env runs them.  The fast suite runs the same README blocks
against the installed checkout instead (``tests/test_readme_snippets.py``).

The "clone" is ``git archive HEAD``: the committed files only, as ``git clone`` gives.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import readme_snippets  # noqa: E402  pylint: disable=wrong-import-position,import-error

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A fresh copy of the committed tree and a fresh venv (no system packages) in it."""
    where = tmp_path_factory.mktemp("clone")
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", "HEAD"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(where / ".venv")], check=True)
    return where


def _shell(clone, command: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    """``command`` in the clone with its venv activated (and nothing else on PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run(["bash", "-c", f". .venv/bin/activate && {command}"], cwd=clone,
                          env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def _here(*args) -> subprocess.CompletedProcess:
    """``cnnkit-lint args`` run from this checkout (its installed package), in the root."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "keras_cnnkit.lint", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600, check=False)


def test_first_command_as_written(clone):
    """``python -m pip install . && cnnkit-lint examples/...``: exit 1 and the findings
    this checkout prints for the example; then, in that base install, cnnkit-export is one
    line naming the extra."""
    first = readme_snippets.parse("README.md")[0]
    proc = _shell(clone, first.code.strip())
    assert proc.returncode == first.exit == 1, proc.stderr[-3000:]
    want = _here("examples/models/inefficient_cnn.h5")
    assert want.returncode == 1 and "finding" in want.stdout.splitlines()[-1]
    assert proc.stdout.endswith(want.stdout)     # pip's own lines come first
    proc = _shell(clone, "cnnkit-export examples/models/inefficient_cnn.h5 -o m.onnx")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    # the IR exporter needs onnx, not TensorFlow: the base install lacks the export extra
    assert line.startswith("cnnkit-export: error: cnnkit-export needs onnx")
    assert 'pip install "keras-cnnkit[export]"' in line
    proc = _shell(clone, "python -m keras_cnnkit --version && cnnkit-lint --help")
    assert proc.returncode == 0 and ".onnx" in proc.stdout
    proc = _shell(clone, "cnnkit-lint examples/models/inefficient_cnn.h5 --format json")
    with open(os.path.join(ROOT, "keras_cnnkit", "schemas", "lint-report.schema.json"),
              encoding="utf-8") as fh:
        version = json.load(fh)["properties"]["schema_version"]["const"]
    assert proc.returncode == 1 and json.loads(proc.stdout)["schema_version"] == version


def test_second_command_as_written(clone):
    """``python -m pip install -q -e ".[test]" && python -m pytest -m "not slow" ...``:
    the test extra installs and the fast suite passes (what CI runs)."""
    second = readme_snippets.parse("README.md")[1]
    proc = _shell(clone, second.code.strip(), timeout=4 * 3600)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
