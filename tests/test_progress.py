"""Progress bars: drawn on a terminal (checked under a real pseudo-terminal), silent in
pipes and with ``-q``; TensorFlow's start-up lines never reach the terminal.

The long-running commands covered: ``cnnkit-lint --fix``, ``cnnkit-lint --benchmark``,
``cnnkit-export`` (here) and the examples (``tests/test_examples.py``, which runs each on
a pseudo-terminal).  In a pipe, the README's ``cnnkit-lint --fix`` block must leave stderr
free of TensorFlow's lines (``tests/test_readme_snippets.py``).
"""
import os
import re
import subprocess
import sys

import pytest
from terminal import run_on_terminal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")
# No TF_CPP_MIN_LOG_LEVEL: the commands must keep TensorFlow quiet by themselves.
ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
ENV["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
#: What TensorFlow's runtime prints at start-up ("oneDNN custom operations are on",
#: "cudart_stub.cc ... Could not find cuda drivers", absl's pre-init warning).
TF_STARTUP = re.compile(r"oneDNN|cudart_stub|absl::InitializeLog|cpu_feature_guard|cuInit")
DEMO = ("import time\nfrom keras_cnnkit.progress import Progress, set_quiet\n"
        "set_quiet({quiet})\nwith Progress(3, 'demo') as bar:\n"
        "    for i in range(3):\n        bar.step(f'step {{i}}')\n        time.sleep(0.3)\n"
        "print('done')\n")


@pytest.mark.notf
@pytest.mark.parametrize("quiet", [False, True])
def test_bar_on_a_terminal_unless_quiet(quiet):
    """On a terminal the bar is drawn, complete, on stderr only; -q (set_quiet) draws
    nothing."""
    code, out, terminal = run_on_terminal([sys.executable, "-c", DEMO.format(quiet=quiet)],
                                          env=ENV, timeout=60)
    assert code == 0 and out == "done\n"
    if quiet:
        assert terminal == ""
    else:
        assert "demo" in terminal and "3/3" in terminal


@pytest.mark.notf
def test_no_bar_in_a_pipe():
    """Off a terminal (CI logs, pipes) nothing at all is written."""
    proc = subprocess.run([sys.executable, "-c", DEMO.format(quiet=False)], env=ENV,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and proc.stdout == "done\n" and proc.stderr == ""


def test_fix_then_export_show_progress_and_no_tensorflow_lines(tmp_path):
    """``cnnkit-lint --fix`` and ``cnnkit-export`` draw their bars on a terminal, print
    their results on stdout, and no TensorFlow start-up line appears anywhere."""
    fix = [sys.executable, "-m", "keras_cnnkit.lint", "--no-config", "--fix", EXAMPLE,
           "-o", "fixed.keras"]
    code, out, terminal = run_on_terminal(fix, cwd=tmp_path, env=ENV)
    assert code == 0, terminal[-3000:]
    assert "wrote fixed.keras" in out
    assert "cnnkit-lint --fix" in terminal and "6/6" in terminal   # import + 5 stages
    assert not TF_STARTUP.search(out + terminal), terminal[-3000:]

    export = [sys.executable, "-m", "keras_cnnkit.export", "fixed.keras", "-o", "m.onnx"]
    code, out, terminal = run_on_terminal(export, cwd=tmp_path, env=ENV)
    assert code == 0, terminal[-3000:]
    assert out.startswith("wrote m.onnx")
    # the IR exporter: read the file, import Keras (to verify), write and verify
    assert "cnnkit-export" in terminal and "3/3" in terminal
    assert not TF_STARTUP.search(out + terminal), terminal[-3000:]


def test_benchmark_shows_progress(tmp_path):
    """``cnnkit-lint --benchmark`` draws the import bar and the benchmark's bar."""
    bench = [sys.executable, "-m", "keras_cnnkit.lint", "--no-config", "--benchmark",
             EXAMPLE, "--select", "CNK108", "--batch", "1", "--min-impact", "0"]
    code, out, terminal = run_on_terminal(bench, cwd=tmp_path, env=ENV)
    assert code == 1, terminal[-3000:]                 # the finding is still reported
    assert "[measured " in out
    assert "importing Keras" in terminal and "benchmark" in terminal
    assert not TF_STARTUP.search(out + terminal), terminal[-3000:]
