"""The codebase is pylint-clean under the project's own configuration (setup.cfg).

pylint takes most of a minute on one core.  ``conftest.py`` calls :func:`start_early`
as soon as collection ends (when this module's test is selected), so that pylint runs on
the CI machine's second core while the tests before this one run; the test then waits
for it and checks its exit status and output as before.
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYLINT = [sys.executable, "-m", "pylint", "--rcfile", os.path.join(ROOT, "setup.cfg"),
          "keras_cnnkit", "lint_rules"]
#: Seconds pylint may take, counted from its start.
TIMEOUT_S = 900
#: The one pylint run: its process, output files and start time.
_RUN: dict = {}


def start_early():
    """Start pylint in the background (once); the process, or None without pylint."""
    if "proc" not in _RUN and importlib.util.find_spec("pylint") is not None:
        _RUN.update(out=tempfile.TemporaryFile(), err=tempfile.TemporaryFile(),
                    start=time.monotonic())
        _RUN["proc"] = subprocess.Popen(  # pylint: disable=consider-using-with
            PYLINT, cwd=ROOT, stdout=_RUN["out"], stderr=_RUN["err"])
    return _RUN.get("proc")


def _text(stream) -> str:
    stream.seek(0)
    return stream.read().decode("utf-8", "replace")


@pytest.mark.lint
def test_pylint_clean():
    """``pylint keras_cnnkit lint_rules`` reports nothing (exit status 0)."""
    pytest.importorskip("pylint")
    proc = start_early()                      # started at collection's end, or now
    try:
        code = proc.wait(timeout=max(0.0, TIMEOUT_S - (time.monotonic() - _RUN["start"])))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    assert code == 0, _text(_RUN["out"])[-5000:] + _text(_RUN["err"])[-2000:]
