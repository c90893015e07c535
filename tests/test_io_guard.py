"""No command replaces its input; inputs are read only when they are regular files.

Every case here runs the real command on real files in ``tmp_path``: the output named as
the input itself, by a relative path, through a symbolic link or a hard link (even with
``--force``); FIFOs (``os.mkfifo``), ``/dev/zero`` and directories as inputs; hostile
configuration and baseline files.  Each must exit 2 with one line on stderr, within
10 s, leave the input byte-identical and leave no temporary file behind.  Commands that
could hang (a FIFO opened for reading blocks until a writer comes) run in a subprocess
with a 10 s timeout.
"""
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import static_model_files as smf

from keras_cnnkit import io_guard
from keras_cnnkit.errors import ConfigError, ModelFileError

# pytest fixtures are parameters named after the fixture functions.
# pylint: disable=redefined-outer-name

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLE = os.path.join(ROOT, "examples", "models", "inefficient_cnn.h5")
LIMIT_S = 10


def digest(path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def run(tmp_path, *args, module="keras_cnnkit.lint"):
    """``(status, stdout, stderr)`` of the command in a subprocess, within 10 s."""
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=LIMIT_S, check=False,
                          env={**os.environ, "PYTHONPATH": ROOT})
    return proc.returncode, proc.stdout, proc.stderr


def one_line(err: str, *parts: str) -> str:
    """The single stderr line of a failed run, checked to hold every one of ``parts``."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def model(tmp_path):
    """A copy of the example model in ``tmp_path``, its digest, and the files there."""
    path = tmp_path / "m.h5"
    shutil.copy(EXAMPLE, path)
    return path


def names(tmp_path) -> list:
    return sorted(p.name for p in tmp_path.iterdir())


# --- an output that resolves to an input is refused, whatever the flags -------------------

def _aliases(tmp_path, model):
    """The model by other names: itself, relative with ``..``, a symlink, a hard link."""
    (tmp_path / "sub").mkdir()
    os.symlink(model.name, tmp_path / "link.h5")
    os.link(model, tmp_path / "hard.h5")
    return ["m.h5", f"sub/../{model.name}", str(model), "link.h5", "hard.h5"]


@pytest.mark.parametrize("flags", [["-o"], ["--format", "json", "-o"], ["--write-baseline"]])
def test_lint_never_writes_a_report_or_baseline_over_the_model(tmp_path, model, flags):
    aliases = _aliases(tmp_path, model)
    before, listing = digest(model), names(tmp_path)
    for alias in aliases:
        status, out, err = run(tmp_path, "m.h5", "--no-config", *flags, alias)
        assert status == 2 and out == ""
        one_line(err, alias, "is the input file")
        assert digest(model) == before and names(tmp_path) == listing


def test_fix_and_export_never_write_over_the_model_even_with_force(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"PK\x03\x04 stands in for a model: refused before it is read")
    os.symlink("m.keras", tmp_path / "link.keras")
    os.link(path, tmp_path / "hard.keras")
    before, listing = digest(path), names(tmp_path)
    for alias in ("m.keras", "./m.keras", "link.keras", "hard.keras"):
        for argv, module in ((["--fix", "m.keras", "--force", "-o", alias],
                              "keras_cnnkit.lint"),
                             (["m.keras", "-o", alias, "--force"], "keras_cnnkit.export")):
            status, _, err = run(tmp_path, *argv, module=module)
            assert status == 2, (argv, err)
            one_line(err, "is the input file")
            assert digest(path) == before and names(tmp_path) == listing


def test_report_never_replaces_the_config_or_the_baseline(tmp_path, model):
    (tmp_path / "pyproject.toml").write_text('[tool.cnnkit-lint]\nfail-on = "error"\n')
    run(tmp_path, "m.h5", "--write-baseline", "base.json")
    listing = names(tmp_path)
    digests = {name: digest(tmp_path / name) for name in listing}
    for argv in (["-o", "pyproject.toml"], ["--baseline", "base.json", "-o", "base.json"],
                 ["--fix", "-o", "pyproject.toml"]):
        status, _, err = run(tmp_path, "m.h5", *argv)
        assert status == 2
        one_line(err, "is the input file")
        assert {n: digest(tmp_path / n) for n in names(tmp_path)} == digests


def test_the_baseline_may_be_rewritten_in_place(tmp_path, model):
    """``--write-baseline`` does not read the baseline it replaces: the usual update."""
    (tmp_path / "pyproject.toml").write_text('[tool.cnnkit-lint]\nbaseline = "b.json"\n')
    (tmp_path / "b.json").write_text('{"findings": []}')
    status, _, err = run(tmp_path, "m.h5", "--write-baseline", "b.json")
    assert status == 0 and "wrote" in err
    assert json.loads((tmp_path / "b.json").read_text())["findings"]


def test_no_baseline_is_written_for_a_run_whose_input_failed(tmp_path, model):
    (tmp_path / "broken.h5").write_bytes(b"not a model")
    status, _, err = run(tmp_path, "m.h5", "broken.h5", "--no-config",
                         "--write-baseline", "b.json")
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 2 and "broken.h5" in lines[0] and "not written" in lines[1]
    assert not (tmp_path / "b.json").exists()


# --- non-regular inputs: never opened, one line ------------------------------------------

@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("argv, parts", [
    (["m.h5", "--no-config", "--baseline", "pipe"], ["pipe", "FIFO"]),
    (["m.h5", "--no-config", "--baseline", "/dev/zero"], ["/dev/zero", "character device"]),
    (["m.h5", "--no-config", "--baseline", "sub"], ["sub", "directory"]),
    (["m.h5", "--config", "pipe"], ["pipe", "FIFO"]),
    (["m.h5", "--config", "/dev/zero"], ["/dev/zero", "character device"]),
    (["--fix", "pipe", "-o", "out.keras"], ["pipe", "FIFO"]),
    (["--fix", "/dev/zero", "-o", "out.keras"], ["/dev/zero", "character device"]),
    (["--fix", "sub", "-o", "out.keras"], ["sub", "directory"]),
])
def test_non_regular_inputs_are_refused_without_opening_them(tmp_path, model, fifo, argv,
                                                             parts):
    (tmp_path / "sub").mkdir()
    before, listing = digest(model), names(tmp_path)
    status, out, err = run(tmp_path, *argv)
    assert status == 2 and out == ""
    line = one_line(err, *parts)
    assert "no such file" not in line
    assert digest(model) == before and names(tmp_path) == listing
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_fifo_model_file_is_an_error_of_that_file(tmp_path, model, fifo):
    status, _, err = run(tmp_path, "pipe", "m.h5", "--no-config", "-q")
    assert status == 2
    one_line(err, "pipe")
    assert fifo.exists()


def test_export_refuses_a_fifo_model(tmp_path, fifo):
    status, _, err = run(tmp_path, "pipe", "-o", "out.onnx", module="keras_cnnkit.export")
    assert status == 2
    one_line(err, "pipe", "FIFO")
    assert not (tmp_path / "out.onnx").exists() and fifo.exists()


# --- hostile configuration, baseline and model files --------------------------------------

def _nested_toml(depth: int) -> str:
    return f"[tool.cnnkit-lint]\nselect = {'[' * depth}{']' * depth}\n"


def test_a_deeply_nested_pyproject_is_one_line(tmp_path, model):
    (tmp_path / "deep.toml").write_text(_nested_toml(5000))
    status, _, err = run(tmp_path, "m.h5", "--config", "deep.toml")
    assert status == 2
    one_line(err, "deep.toml", "nested too deeply")
    shutil.copy(tmp_path / "deep.toml", tmp_path / "pyproject.toml")   # found, not named
    status, _, err = run(tmp_path, "m.h5")
    assert status == 2
    one_line(err, "pyproject.toml", "nested too deeply")


def test_a_deeply_nested_baseline_is_one_line(tmp_path, model):
    depth = 100_000
    (tmp_path / "b.json").write_text('{"findings": ' + "[" * depth + "]" * depth + "}")
    status, _, err = run(tmp_path, "m.h5", "--no-config", "--baseline", "b.json")
    assert status == 2
    one_line(err, "b.json", "nested too deeply")


@pytest.mark.parametrize("name, flag", [("b.json", "--baseline"), ("c.toml", "--config")])
def test_oversized_config_and_baseline_files_are_not_read(tmp_path, model, name, flag):
    with open(tmp_path / name, "wb") as handle:   # sparse: 16 MiB + 1 of zeros
        handle.truncate(io_guard.MAX_TEXT_BYTES + 1)
    args = [flag, name] if flag == "--config" else ["--no-config", flag, name]
    status, _, err = run(tmp_path, "m.h5", *args)
    assert status == 2
    one_line(err, name, f"larger than {io_guard.MAX_TEXT_BYTES:,} bytes")


def _profile_text(**changes) -> str:
    """The packaged ``cpu-generic`` profile as JSON with ``changes`` (``classes_conv_X``:
    field ``X`` of the conv class)."""
    with open(os.path.join(ROOT, "keras_cnnkit", "latency", "profiles", "cpu-generic.json"),
              encoding="utf-8") as handle:
        data = json.load(handle)
    for key, value in changes.items():
        if key.startswith("classes_conv_"):
            data["classes"]["conv"][key[len("classes_conv_"):]] = value
        else:
            data[key] = value
    return json.dumps(data)


HOSTILE_PROFILES = [
    ("utf16.json", b"\xff\xfe{}", "not UTF-8"),
    ("list.json", b"[1, 2]", "a JSON list, not an object"),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("peak.json", _profile_text(peak_flops="fast").encode(), "peak_flops"),
    ("zero.json", _profile_text(bandwidth=0).encode(), "bandwidth 0"),
    ("nan.json", _profile_text(depth_norm=float("nan")).encode(), "depth_norm nan"),
    ("class.json", _profile_text(classes={"conv": 5}).encode(), "'classes' must map"),
    ("eff.json", _profile_text(classes_conv_compute_efficiency="x").encode(),
     "compute_efficiency"),
    ("factors.json", _profile_text(classes_conv_kernel_factors={"5x5": {}}).encode(),
     "kernel_factors"),
    ("fusion.json", _profile_text(fusion=[]).encode(), "fusion"),
    ("errors.json", _profile_text(errors={"held_out": [1]}).encode(), "errors.held_out"),
    ("device.json", _profile_text(device="gpu").encode(), "'device' is not an object"),
]


@pytest.mark.parametrize("name, data, problem", HOSTILE_PROFILES,
                         ids=[case[0] for case in HOSTILE_PROFILES])
def test_a_hostile_device_profile_is_one_line(tmp_path, model, name, data, problem):
    """``--device-profile FILE.json`` and a calibrated ``local.json`` in the cache
    directory are checked where they are read: each field's type and range (the latency
    model divides by them), the file's size, encoding and nesting."""
    (tmp_path / name).write_bytes(data)
    status, _, err = run(tmp_path, "m.h5", "--no-config", "--device-profile", name)
    assert status == 2
    one_line(err, name, problem)
    cache = tmp_path / "cache" / "profiles"
    cache.mkdir(parents=True)
    shutil.copy(tmp_path / name, cache / "local.json")
    proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.lint", "m.h5", "--no-config"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=LIMIT_S,
                          check=False, env={**os.environ, "PYTHONPATH": ROOT,
                                            "KERAS_CNNKIT_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 2
    one_line(proc.stderr, "local.json", problem)


def test_an_oversized_device_profile_is_not_read(tmp_path, model):
    with open(tmp_path / "big.json", "wb") as handle:   # sparse
        handle.truncate(2 ** 20 + 1)
    status, _, err = run(tmp_path, "m.h5", "--no-config", "--device-profile", "big.json")
    assert status == 2
    one_line(err, "big.json", "larger than 1,048,576 bytes")


def test_calibrate_checks_the_cache_directory_before_measuring(tmp_path):
    """An unusable ``KERAS_CNNKIT_CACHE_DIR`` is refused before a minute of measuring
    (and before Keras is imported), not by a traceback at the end."""
    (tmp_path / "file").write_text("")
    (tmp_path / "dir" / "profiles" / "local.json").mkdir(parents=True)
    for cache, problem in (("file", "cannot create the profile directory"),
                           ("dir", "is a directory")):
        proc = subprocess.run([sys.executable, "-m", "keras_cnnkit.lint", "--calibrate"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=LIMIT_S,
                              check=False, env={**os.environ, "PYTHONPATH": ROOT,
                                                "KERAS_CNNKIT_CACHE_DIR": cache})
        assert proc.returncode == 2
        one_line(proc.stderr, problem)


def test_a_profile_is_saved_atomically_without_following_links(tmp_path):
    """``Profile.save`` (``--calibrate``) replaces the file, never writes through a
    symbolic link at the output or at a fixed temporary name."""
    from keras_cnnkit.latency import load_profile
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    os.symlink(victim, tmp_path / "local.json.tmp")
    os.symlink(victim, tmp_path / "local.json")
    load_profile("cpu-generic").save(str(tmp_path / "local.json"))
    assert victim.read_text() == "keep"
    assert not os.path.islink(tmp_path / "local.json")
    assert load_profile(str(tmp_path / "local.json")).name == "cpu-generic"


def test_a_2501_digit_filters_value_is_one_line(tmp_path):
    """Its parameter counts would have over 4,300 digits: Python refuses to print them."""
    config = smf.conv_chain_config(3, size=16, channels=16)
    for layer in config["config"]["layers"][1:4]:
        layer["config"].update(filters=int("9" * 2501), kernel_size=[3, 3])
    path = smf.write_json(tmp_path / "huge.json", config)
    before = digest(path)
    for fmt in ("text", "json"):
        status, out, err = run(tmp_path, "huge.json", "--no-config", "--format", fmt)
        assert status == 2
        one_line(err, "huge.json", "layer 'c0'", "64-bit")
        assert "Traceback" not in out
    assert digest(path) == before


# --- atomic writes with the umask's permissions -------------------------------------------

@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield 0o640
    os.umask(old)


def test_writes_get_the_umasks_permissions(tmp_path, umask_027):
    written = io_guard.write_atomic(tmp_path / "r.txt", "report\n")
    assert stat.S_IMODE(os.stat(written).st_mode) == umask_027
    io_guard.write_atomic(tmp_path / "r.txt", b"again\n", force=True)
    assert stat.S_IMODE(os.stat(tmp_path / "r.txt").st_mode) == umask_027
    io_guard.write_atomic(tmp_path / "m.bin", lambda tmp: open(tmp, "wb").close())
    assert stat.S_IMODE(os.stat(tmp_path / "m.bin").st_mode) == umask_027
    assert names(tmp_path) == ["m.bin", "r.txt"]


def test_cli_report_and_baseline_get_the_umasks_permissions(tmp_path, model, umask_027):
    for argv, name in ((["-o", "r.txt"], "r.txt"), (["--write-baseline", "b.json"], "b.json")):
        status, _, _ = run(tmp_path, "m.h5", "--no-config", "--exit-zero", *argv)
        assert status == 0
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == umask_027


def test_fixed_model_and_onnx_get_the_umasks_permissions(tmp_path, umask_027):
    keras = pytest.importorskip("keras")
    from keras_cnnkit.lint.fix import fix_file
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, name="conv")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    keras.Model(x, y).save(tmp_path / "m.keras")
    fix_file(tmp_path / "m.keras", tmp_path / "fixed.keras")
    assert stat.S_IMODE(os.stat(tmp_path / "fixed.keras").st_mode) == umask_027
    pytest.importorskip("tf2onnx")
    from keras_cnnkit.onnx_convert import export_onnx
    export_onnx(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
                tmp_path / "d.onnx", verify=False)
    assert stat.S_IMODE(os.stat(tmp_path / "d.onnx").st_mode) == umask_027
    assert names(tmp_path) == ["d.onnx", "fixed.keras", "m.keras"]


def test_a_failed_write_leaves_the_old_output_and_no_temp_file(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old")

    def fail(tmp):
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write("half")
        raise OSError(28, "No space left on device")
    with pytest.raises(io_guard.OutputFileError, match="No space left"):
        io_guard.write_atomic(out, fail, force=True)
    assert out.read_text() == "old" and names(tmp_path) == ["out.txt"]


def test_an_existing_device_output_is_written_in_place(tmp_path):
    """``-o /dev/null`` stays a device: it is written to, never replaced."""
    io_guard.write_atomic(os.devnull, "x", force=True)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    with pytest.raises(io_guard.OutputFileError, match="character device"):
        io_guard.write_atomic(os.devnull, lambda tmp: None, force=True)


# --- the guards themselves -----------------------------------------------------------------

def test_same_file_sees_through_links_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("a")        # same bytes, another file
    os.symlink("a", tmp_path / "s")
    os.link(tmp_path / "a", tmp_path / "h")
    assert io_guard.same_file("a", tmp_path / "a")
    assert io_guard.same_file("s", "a") and io_guard.same_file("h", "a")
    (tmp_path / "x").mkdir()
    assert io_guard.same_file("./x/../a", "a")
    assert not io_guard.same_file("b", "a")
    assert not io_guard.same_file("missing", "a")
    assert io_guard.same_file("missing", "./missing")


def test_check_output_path_rules(tmp_path):
    (tmp_path / "in.h5").write_text("model")
    (tmp_path / "old.txt").write_text("old")
    with pytest.raises(io_guard.OutputFileError, match="is the input file"):
        io_guard.check_output_path(tmp_path / "in.h5", [tmp_path / "in.h5"], force=True)
    with pytest.raises(io_guard.OutputFileError, match="already exists"):
        io_guard.check_output_path(tmp_path / "old.txt")
    assert io_guard.check_output_path(tmp_path / "old.txt", force=True)
    with pytest.raises(io_guard.OutputFileError, match="is a directory"):
        io_guard.check_output_path(tmp_path, force=True)
    with pytest.raises(io_guard.OutputFileError, match="does not exist"):
        io_guard.check_output_path(tmp_path / "no" / "x.txt")
    with pytest.raises(io_guard.OutputFileError, match=r"must end in \.keras or \.h5"):
        io_guard.check_output_path(tmp_path / "x.txt", suffixes=(".keras", ".h5"))


def test_read_guards_name_the_kind_and_the_error_class(tmp_path):
    os.mkfifo(tmp_path / "p")
    with pytest.raises(ConfigError, match="not a file but a FIFO"):
        io_guard.read_text_file(tmp_path / "p", what="baseline file", error=ConfigError)
    with pytest.raises(ModelFileError, match="no such model file"):
        io_guard.require_regular_file(tmp_path / "nope", what="model file")
    (tmp_path / "t.txt").write_bytes(b"\xef\xbb\xbfhi")
    assert io_guard.read_text_file(tmp_path / "t.txt") == "hi"
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe")
    with pytest.raises(ModelFileError, match="not UTF-8"):
        io_guard.read_text_file(tmp_path / "bad.txt")
    assert io_guard.file_kind(os.stat(tmp_path).st_mode) == "a directory"
