"""``cnnkit-lint -j N``: parallel workers give the serial run's output, byte for byte.

Checked against the serial run (``-j 1``, in-process) on the same files in every output
format: stdout, stderr and the exit status.  Then the failure modes: a broken file among
good ones, a worker that dies, a worker that runs out of its memory limit, workers that
cannot start, and that no worker process outlives the run.  The model files are
hand-made (JSON configs, legacy HDF5, ``.keras`` archives) plus the bundled example, so
that the module runs without TensorFlow (tox ``notf``).
"""
import multiprocessing
import os
import shutil
import subprocess
import sys
import time

import parallel_tasks
import pytest
import static_model_files as smf

from keras_cnnkit.lint import parallel
from keras_cnnkit.lint.cli import main

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

pytestmark = pytest.mark.notf

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLE = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")
#: What the linter says about the broken file (a zip signature, then garbage).
BROKEN_LINE = "damaged zip archive (File is not a zip file)"


def large_kernel_config(size: int) -> dict:
    """A 7×7 conv of 24 filters (large-kernel and alignment findings) on ``size``²."""
    layers = [smf.k3_input("x", [size, size, 16]),
              smf.k3_layer("Conv2D", "wide7x7", ["x"], filters=24, kernel_size=[7, 7],
                           padding="same", use_bias=True),
              smf.k3_layer("ReLU", "relu", ["wide7x7"])]
    return smf.k3_functional("big", layers, ["x"], ["relu"])


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """Eight model files of different sizes and formats, and one broken file (4th)."""
    base = tmp_path_factory.mktemp("models")
    files = [shutil.copy(EXAMPLE, base / "example.h5"),
             smf.write_json(base / "chain.json", smf.conv_chain_config(40)),
             smf.write_json(base / "kernel.json", large_kernel_config(32))]
    broken = base / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 this is no zip archive")
    files.append(str(broken))
    files += [smf.write_keras_archive(base / "archive.keras", large_kernel_config(64)),
              smf.write_legacy_h5(base / "legacy.h5", smf.conv_chain_config(6)),
              smf.write_json(base / "keras2.json", smf.conv_chain_config(12, keras2=True)),
              smf.write_json(base / "long.json", smf.conv_chain_config(2000)),
              smf.write_json(base / "small.json", large_kernel_config(8))]
    return [os.fspath(f) for f in files]


def run_cli(capsys, *args):
    """``(status, stdout, stderr)`` of ``cnnkit-lint args``, in-process."""
    status = main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "github"])
def test_jobs_output_is_the_serial_output(capsys, model_files, fmt):
    """-j 2 (and -j 0) print exactly what the serial run prints, broken file included."""
    serial = run_cli(capsys, *model_files, "--no-config", "--format", fmt)
    assert serial[0] == 2 and serial[2].count("\n") == 1
    assert run_cli(capsys, "-j", "2", *model_files, "--no-config", "--format", fmt) == serial
    if fmt == "text":
        assert run_cli(capsys, "-j", "0", *model_files, "--no-config") == serial
    assert multiprocessing.active_children() == []


def test_broken_file_among_good_ones(capsys, model_files):
    """One broken file: exit 2, its one-line error, every other file's findings intact."""
    good = [p for p in model_files if not p.endswith("broken.keras")]
    status, out, err = run_cli(capsys, "-j", "2", *model_files, "--no-config", "-q")
    assert status == 2
    assert err == f"cnnkit-lint: error: {model_files[3]}: {BROKEN_LINE}\n"
    good_status, good_out, _ = run_cli(capsys, *good, "--no-config", "-q")
    assert good_status == 1
    assert out == good_out
    assert "example.h5:" in out and "wide7x7" in out


def live_processes_in_group(pgid: int) -> list:
    """PIDs of the processes of group ``pgid`` that are not zombies (Linux ``/proc``;
    an exited child waits as a zombie until init reaps it, which is not ours to time)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads the process table in /proc")
def test_cli_process_exits_with_no_worker_left(model_files):
    """The console command with -j 2 finishes (no hung worker) and leaves no live
    process in its process group."""
    proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, "-m", "keras_cnnkit.lint", "-j", "2", "--no-config", "-q",
         *model_files], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and BROKEN_LINE in err and "wide7x7" in out
    # multiprocessing's resource tracker exits just after the command; a hung worker
    # would not.
    deadline = time.monotonic() + 30
    while live_processes_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live_processes_in_group(proc.pid) == []


def test_dead_worker_is_one_file_error(tmp_path):
    """A worker dying on one file fails that file only, in its place in the order; the
    files other workers had begun are linted again and keep their results."""
    paths = []
    for i, name in enumerate(["a", "b", "crash", "c", "d", "e", "f"]):
        path = tmp_path / name
        path.write_bytes(b"x" * (1000 * (10 - i)))  # decreasing sizes: submitted in order
        paths.append(os.fspath(path))
    results = list(parallel.lint_paths(paths, parallel_tasks.lint_or_crash, 2))
    assert [r.path for r in results] == paths
    errors = [r.error for r in results]
    assert errors[:2] + errors[3:] == [f"linted {n}" for n in "abcdef"]
    assert errors[2].startswith("the worker process linting this file died")
    assert multiprocessing.active_children() == []


def test_worker_memory_is_bounded(tmp_path, monkeypatch):
    """Under a 1 GiB per-worker limit a task mapping 3 GiB is refused (and its result
    says so), while the same task in-process (no limit) gets its memory."""
    monkeypatch.setenv(parallel.MEMORY_ENV, "1024")
    assert parallel.memory_limit(2) == 1 << 30
    paths = [os.fspath(tmp_path / "a"), os.fspath(tmp_path / "b")]
    results = list(parallel.lint_paths(paths, parallel_tasks.reserve_3_gib, 2))
    assert [r.error for r in results] == ["out of memory", "out of memory"]
    assert parallel_tasks.reserve_3_gib("x").error == "mapped 3 GiB"


def test_workers_that_cannot_start(capsys, model_files, monkeypatch):
    """A memory limit too small for Python to start the workers: one usage-style error
    line and exit 2, not a traceback or a hang."""
    monkeypatch.setenv(parallel.MEMORY_ENV, "16")
    status, out, err = run_cli(capsys, "-j", "2", *model_files[:3], "--no-config")
    assert (status, out) == (2, "")
    assert err.startswith("cnnkit-lint: error: --jobs: the worker processes died before "
                          "linting any file (is the 16 MiB per-worker memory limit too small?")
    assert err.count("\n") == 1


@pytest.mark.parametrize("args,message", [
    (["-j", "-1", "m.h5"], "argument -j/--jobs: not a non-negative integer: '-1'"),
    (["--jobs", "two", "m.h5"], "argument -j/--jobs: not a non-negative integer: 'two'"),
    (["-j", "2", "--benchmark", "m.h5"],
     "--benchmark times the fixes and cannot be combined with -j"),
])
def test_jobs_usage_errors(capsys, args, message):
    """Bad -j values and -j with --benchmark are usage errors (exit 2)."""
    status, _, err = run_cli(capsys, *args)
    assert status == 2
    assert err.splitlines()[-1] == f"cnnkit-lint: error: {message}"


def test_worker_count():
    """-j 0 is one worker per CPU; never more workers than files."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert parallel.worker_count(0, 1000) == cpus
    assert parallel.worker_count(8, 3) == 3
    assert parallel.worker_count(1, 10) == 1


def test_workers_are_recycled_without_deadlock():
    """Workers retire after MAX_TASKS_PER_CHILD files and are replaced: 40 files at 3
    per worker finish, in order (a queued backlog would deadlock, CPython gh-115634).
    In a subprocess, so that a hang fails the test instead of the run."""
    code = ("import sys; import parallel_tasks; from keras_cnnkit.lint import parallel; "
            "parallel.MAX_TASKS_PER_CHILD = 3; paths = [f'f{i}' for i in range(40)]; "
            "results = list(parallel.lint_paths(paths, parallel_tasks.lint_or_crash, 2)); "
            "assert [r.error for r in results] == [f'linted {p}' for p in paths]; "
            "print('ok')")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.dirname(__file__)]))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert proc.stdout.strip() == "ok", proc.stderr[-3000:]
