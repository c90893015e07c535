"""Every example runs (``--quick``) and checks its own key numbers (each asserts them).

Each runs with its stderr on a pseudo-terminal, as from a shell: those that take more than
a few seconds must draw a progress bar there, and no example may leak TensorFlow's
start-up lines or write anything but its results to stdout.
"""
import os
import re
import sys

import pytest
from terminal import run_on_terminal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(
    name for name in os.listdir(os.path.join(ROOT, "examples"))
    if name.endswith(".py") and not name.startswith("_"))
#: The examples that run for seconds (numpy only, no Keras): no bar needed.
QUICK = {"mobilenet_v2_linear_bottleneck.py"}
TF_STARTUP = re.compile(r"oneDNN|cudart_stub|absl::InitializeLog|cpu_feature_guard|cuInit")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs(name, tmp_path):
    """``python examples/NAME.py --quick --out TMP`` exits 0, prints its table on stdout,
    and (unless it is one of the quick ones) draws a complete progress bar on the
    terminal."""
    # PYTHONPATH: this checkout's package, whatever else is installed.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    code, out, terminal = run_on_terminal(
        [sys.executable, os.path.join("examples", name), "--quick", "--out", str(tmp_path)],
        cwd=ROOT, env=env, timeout=600)
    assert code == 0, out[-3000:] + terminal[-3000:]
    assert out.strip(), "an example prints its comparison table"
    assert "\x1b[" not in out
    assert not TF_STARTUP.search(terminal), terminal[-2000:]
    if name not in QUICK:
        steps = re.findall(r"(\d+)/(\d+)", terminal)
        assert name[:-3] in terminal and any(a == b for a, b in steps), terminal[-2000:]
