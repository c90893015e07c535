"""The IR exporter on mutated model files (issue 20: a hostile file exits 2, one line).

Mutations of a small ``.keras`` and ``.h5`` (``fuzz_worker.mutate``: configs, zip
members, HDF5 links and names, bytes) go through ``cnnkit-export --via ir --no-verify``
in one child process under ``RLIMIT_AS`` = 2 GB.  Every example must end with exit 0 or
2, one line on stderr when 2, no traceback, the input unchanged and, on exit 2, nothing
written next to the output.  Seeds are fixed.
"""
# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name
import json
import os
import subprocess
import sys

import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("onnx")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLES = 60

CHILD = r"""
import contextlib, hashlib, io, json, os, random, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 1024 ** 3, 2 * 1024 ** 3))
sys.path[:0] = [sys.argv[1]]
import fuzz_worker
from keras_cnnkit.export import main
base, work, count, seed = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(seed)
report = []
for i in range(count):
    folder = os.path.join(work, str(i))
    os.makedirs(folder)
    src = os.path.join(folder, "model" + os.path.splitext(base)[1])
    what = fuzz_worker.mutate(base, src, rng)
    digest = hashlib.sha256(open(src, "rb").read()).hexdigest()
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([src, "-o", os.path.join(folder, "out.onnx"), "--via", "ir",
                         "--no-verify"])
    except BaseException as exc:  # what escapes main is a bug
        import traceback
        where = traceback.extract_tb(exc.__traceback__)[-3:]
        code = (f"raised {type(exc).__name__}: {exc}"[:300] + " at " +
                "; ".join(f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno}" for f in where))
    left = sorted(set(os.listdir(folder)) - {os.path.basename(src)})
    same = hashlib.sha256(open(src, "rb").read()).hexdigest() == digest
    report.append({"what": what, "code": code, "err": err.getvalue(), "left": left,
                   "same": same})
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def small_files(tmp_path_factory):
    """A small conv/BN/depthwise/dense model saved as .keras and .h5."""
    from keras import layers as L
    root = tmp_path_factory.mktemp("fuzz_base")
    model = keras.Sequential([
        keras.Input((12, 12, 3)), L.Conv2D(8, 3, padding="same", groups=1, name="conv"),
        L.BatchNormalization(name="bn"), L.ReLU(name="relu"),
        L.DepthwiseConv2D(3, name="dw"), L.GlobalAveragePooling2D(name="gap"),
        L.Dense(4, name="fc")], name="small")
    paths = {}
    for fmt in ("keras", "h5"):
        paths[fmt] = str(root / f"small.{fmt}")
        model.save(paths[fmt])
    return paths


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_mutated_files_exit_0_or_2_cleanly(small_files, tmp_path, fmt):
    """Each mutation: exit 0, or exit 2 with one line and nothing written."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, HERE, small_files[fmt], str(tmp_path), str(EXAMPLES),
         "20"], capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, PYTHONPATH=ROOT), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(report) == EXAMPLES
    bad = []
    for example in report:
        lines = example["err"].strip().splitlines()
        ok = example["same"] and example["code"] in (0, 2) and "Traceback" not in \
            example["err"]
        if example["code"] == 2:
            ok = ok and len(lines) == 1 and not example["left"]
        if not ok:
            bad.append(example)
    assert not bad, json.dumps(bad[:3], indent=1)
    assert any(e["code"] == 2 for e in report)
