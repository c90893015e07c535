"""``cnnkit-lint model.onnx``: ONNX files are detected by content and linted end to end."""
import json
import os
import subprocess
import sys

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
import numpy as np  # noqa: E402


def _conv_model(path):
    """NCHW 1×64×16×16 input → 5×5 conv 64→64 (no bias) → ReLU: one large-kernel finding,
    64·64·25 = 102,400 weights → two 3×3 convs: 2·64·64·9 = 73,728."""
    weight = numpy_helper.from_array(
        np.random.default_rng(0).standard_normal((64, 64, 5, 5)).astype("float32"), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv5x5", pads=[2, 2, 2, 2],
                          kernel_shape=[5, 5]),
         helper.make_node("Relu", ["y"], ["z"], name="relu")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 16, 16])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 64, 16, 16])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "keras_cnnkit.lint", *args],
                          capture_output=True, text=True, check=False, timeout=120)


def test_onnx_file_is_linted_whatever_its_suffix(tmp_path):
    """The file is recognised by its bytes (saved as ``.bin``) and the finding's figures
    are the hand-computed ones."""
    path = str(tmp_path / "model.bin")
    _conv_model(path)
    proc = _run(path, "--format", "json", "--select", "large-kernel")
    assert proc.returncode == 1, proc.stderr
    (model,) = json.loads(proc.stdout)["models"]
    (finding,) = model["findings"]
    assert finding["layer"] == "conv5x5"
    assert (finding["params_before"], finding["params_after"]) == (102_400, 73_728)


def test_corrupt_onnx_file_is_a_one_line_error(tmp_path):
    """A truncated ONNX file: exit 2, one line naming the file, no traceback."""
    path = str(tmp_path / "model.onnx")
    _conv_model(path)
    with open(path, "rb") as fh:
        data = fh.read()
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])
    proc = _run(path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and path in lines[0] and "Traceback" not in proc.stderr
    assert os.path.getsize(path) == len(data) // 2
