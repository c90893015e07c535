"""The codebase is pylint-clean under the project's own configuration (setup.cfg)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.lint
def test_pylint_clean():
    """``pylint keras_cnnkit lint_rules`` reports nothing (exit status 0)."""
    pytest.importorskip("pylint")
    proc = subprocess.run(
        [sys.executable, "-m", "pylint", "--rcfile", os.path.join(ROOT, "setup.cfg"),
         "keras_cnnkit", "lint_rules"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
