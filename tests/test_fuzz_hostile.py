"""Fuzzing the readers with structured mutations of real model files (issue 17).

``fuzz_worker.py`` mutates real files — their JSON configs at their own paths, their
containers (zip members, HDF5 links and name lists, ONNX nodes, attributes and dims) and
their bytes — and lints each result through ``cnnkit-lint`` and ``keras_cnnkit.lint``.
It runs as one child process under ``RLIMIT_AS`` = 1 GB, with a hard stop per run;
every example must end with exit 0, 1 or 2, no traceback, no "unexpected" or
out-of-memory error, the API raising only ``ModelFileError``, the input unchanged and
nothing left behind, within 10 s of CPU time per run.  The seeds are fixed, so a run is
reproducible.

* fast suite: :data:`FAST_EXAMPLES` examples over a keras.applications model
  (MobileNetV3Small, minimalistic, 96×96) written by Keras as ``.keras``, ``.h5`` and a
  JSON config, its ONNX export (tf2onnx), and the bundled example ``.h5``;
* ``slow``: :data:`SLOW_EXAMPLES` examples over every keras.applications config of the
  corpus (``CNNKIT_CORPUS_DIR``: ``keras_apps/*.json`` in all three containers, the
  ``.keras``/``.h5`` files under 64 MB as they are) and its ONNX exports under 32 MB.
"""
import glob
import json
import os
import sys

import pytest

import hostile_files as hf

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "fuzz_worker.py")
EXAMPLE = os.path.join(HERE, "..", "examples", "models", "inefficient_cnn.h5")
FAST_EXAMPLES = 60
SLOW_EXAMPLES = 3000
CORPUS = os.environ.get("CNNKIT_CORPUS_DIR",
                        os.path.expanduser("~/.cache/keras-cnnkit/corpus"))


def _run_worker(bases: list, seed: int, count: int, workdir) -> list:
    """Run the worker under the limits; returns its JSON records (fails on any
    problem, with the failing example's record)."""
    workdir = str(workdir)
    run = hf.run_limited([sys.executable, WORKER, str(seed), str(count), workdir, *bases],
                         hf.GB, timeout=120 + 60 * count, cwd=workdir)
    records = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert not run.timed_out, run.describe()
    assert run.returncode == 0, (f"{run.describe()}\n{records[-1:] if records else ''}\n"
                                 f"{run.stderr[-3000:]}")
    assert records[-1] == {"done": count, "slowest_seconds": records[-1]["slowest_seconds"]}
    assert records[-1]["slowest_seconds"] < 10
    assert run.peak_bytes < hf.GB
    return records[:-1]


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    """A keras.applications model as Keras writes it (.keras, .h5, config), its ONNX
    export, and the bundled example."""
    keras = pytest.importorskip("keras")
    pytest.importorskip("tf2onnx")
    import static_model_files as smf
    from keras_cnnkit.onnx_convert import to_onnx

    folder = tmp_path_factory.mktemp("fuzz_bases")
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3),
                                                minimalistic=True, classes=10)
    files = [smf.save_quietly(model, folder / "mnv3.keras"),
             smf.save_quietly(model, folder / "mnv3.h5"),
             smf.write_json(folder / "mnv3.json", model.to_json()), EXAMPLE]
    proto, _ = to_onnx(model)
    with open(folder / "mnv3.onnx", "wb") as fh:
        fh.write(proto.SerializeToString())
    files.append(str(folder / "mnv3.onnx"))
    keras.backend.clear_session()
    return files


def test_fuzz_real_files(real_files, tmp_path):
    """FAST_EXAMPLES structured mutations: no traceback, hang or overrun."""
    records = _run_worker(real_files, seed=17, count=FAST_EXAMPLES, workdir=tmp_path)
    assert len(records) == FAST_EXAMPLES
    statuses = {r["status"] for r in records}
    assert statuses <= {0, 1, 2} and 2 in statuses and statuses & {0, 1}
    assert any("over budget" in r["error"] for r in records)


def _corpus_bases(folder) -> list:
    """Every keras.applications config as .json, light .keras and .h5 (config only), the
    small real files as they are, and the small ONNX exports."""
    import h5py

    apps = os.path.join(CORPUS, "keras_apps")
    bases = []
    for path in sorted(glob.glob(os.path.join(apps, "*.json"))):
        name = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        bases.append(path)
        bases.append(hf.write_config(os.path.join(folder, f"{name}.keras"), text, "keras"))
        light = os.path.join(folder, f"{name}.h5")
        with h5py.File(light, "w") as h5:
            h5.attrs["model_config"] = text
        bases.append(light)
    for pattern, limit in (("keras_apps/*.keras", 64), ("keras_apps/*.h5", 64),
                           ("tf_keras_apps/*.h5", 64), ("onnx/*.onnx", 32)):
        bases += [p for p in sorted(glob.glob(os.path.join(CORPUS, pattern)))
                  if os.path.getsize(p) < limit * hf.MB]
    return bases


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(os.path.join(CORPUS, "keras_apps")),
                    reason="no model corpus (set CNNKIT_CORPUS_DIR)")
def test_fuzz_corpus(tmp_path):
    """SLOW_EXAMPLES structured mutations of every keras.applications config and the
    corpus' ONNX exports."""
    bases_dir = tmp_path / "bases"
    bases_dir.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    bases = _corpus_bases(str(bases_dir))
    records = _run_worker(bases, seed=1700, count=SLOW_EXAMPLES, workdir=work)
    assert len(records) == SLOW_EXAMPLES
