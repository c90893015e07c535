"""Small hostile model files (issue 17) and a runner that measures a child under limits.

Each builder writes one file into a directory and returns its path; the files are made
by hand (JSON, h5py, crafted zip and deflate streams, ONNX protos), never by Keras, so
that building them is fast and needs no TensorFlow.  :data:`CASES` lists every case with
the command that reads it and the budget that must refuse it.

:func:`run_limited` runs a command in a child process under an address-space limit
(``RLIMIT_AS``) and a wall-clock timeout, and returns its exit status, output, wall and
CPU time and peak resident memory (from ``wait4``'s ``ru_maxrss``): the measurements of
the tests and of ``benchmarks/bench_hostile.py``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib
from typing import Callable, Optional

import h5py
import numpy as np

import static_model_files as smf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MB = 1 << 20
GB = 1 << 30


# --- running a child under limits --------------------------------------------------------

@dataclasses.dataclass
class Run:
    """What a limited child did."""

    returncode: Optional[int]   # None when it was killed for time
    stdout: str
    stderr: str
    seconds: float              # wall-clock time
    peak_bytes: int             # peak resident memory (ru_maxrss)
    timed_out: bool
    cpu_seconds: float = 0.0    # user + system time of the child (its own work, whatever
                                # else the machine is doing)

    def describe(self) -> str:
        """``"2.1 s (CPU 0.9 s), 73 MB, exit 2"`` (or ``killed after``/``signal``)."""
        peak = f"{self.peak_bytes / MB:,.0f} MB"
        if self.timed_out:
            return f"killed after {self.seconds:.0f} s (CPU {self.cpu_seconds:.0f} s), {peak}"
        times = f"{self.seconds:.1f} s (CPU {self.cpu_seconds:.1f} s), {peak}"
        if self.returncode is not None and self.returncode < 0:
            return f"{times}, killed by {signal.Signals(-self.returncode).name}"
        return f"{times}, exit {self.returncode}"


def _limit(mem_bytes: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setsid()
    return apply


def child_env(**extra) -> dict:
    """The environment of a measured child: this checkout first on the path, quiet
    TensorFlow, one BLAS thread (its per-thread buffers would count against the limit)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, os.path.join(ROOT, "tests"), os.environ.get("PYTHONPATH", "")]),
        TF_CPP_MIN_LOG_LEVEL="3", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    env.update(extra)
    return env


def _high_water(pid: int) -> int:
    """The peak resident bytes of process ``pid`` so far (``VmHWM``; 0 once it is gone).

    Not ``wait4``'s ``ru_maxrss``: a child forked from this (large) test process and then
    exec'd keeps the parent's resident size at fork as its high-water mark, so a 30 MB
    child of a 600 MB pytest would read as 600 MB."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def run_limited(argv: list, mem_bytes: int = GB, timeout: float = 10.0,
                cwd: Optional[str] = None, env: Optional[dict] = None) -> Run:
    """Run ``argv`` with ``RLIMIT_AS = mem_bytes``, killing its process group after
    ``timeout`` seconds; returns a :class:`Run`."""
    import tempfile
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd,  # pylint: disable=consider-using-with
                                env=env or child_env(), preexec_fn=_limit(mem_bytes))
        timed_out = False
        peak = 0
        while True:
            peak = max(peak, _high_water(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.monotonic() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(None if timed_out else proc.returncode,
                   out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"),
                   seconds, peak or usage.ru_maxrss * 1024, timed_out,
                   usage.ru_utime + usage.ru_stime)


def lint_argv(path: str, *flags: str) -> list:
    """``python -m keras_cnnkit.lint --no-config PATH``."""
    return [sys.executable, "-m", "keras_cnnkit.lint", "--no-config", *flags, str(path)]


def case_argv(case, path: str, out_dir: str) -> list:
    """The command that reads ``path`` the way ``case.mode`` says (lint, the API,
    ``--fix`` or ``cnnkit-export`` into ``out_dir``)."""
    if case.mode == "api":
        return api_argv(path)
    if case.mode == "fix":
        return lint_argv(path, "--fix", "-o", os.path.join(out_dir, "fixed.keras"))
    if case.mode == "export":
        return [sys.executable, "-m", "keras_cnnkit.export", path, "-o",
                os.path.join(out_dir, "out.onnx"), "--no-verify"]
    return lint_argv(path)


def api_argv(path: str) -> list:
    """A child calling ``keras_cnnkit.lint(path)``: prints the exception type and exits 2
    on ``ModelFileError``, 3 on anything else (the API's promise is the first)."""
    code = ("import sys, keras_cnnkit\n"
            "from keras_cnnkit.errors import ModelFileError\n"
            "try:\n    keras_cnnkit.lint(sys.argv[1])\n"
            "except ModelFileError as exc:\n    print(type(exc).__name__, exc, file=sys.stderr)"
            "\n    sys.exit(2)\n"
            "except BaseException as exc:\n    print('ESCAPED', type(exc).__name__, exc,"
            " file=sys.stderr)\n    sys.exit(3)\n")
    return [sys.executable, "-c", code, str(path)]


# --- configs -------------------------------------------------------------------------

def block_model(class_name: str, module: str, input_shape=(8, 8, 4), **config) -> dict:
    """A Functional model of one ``keras_cnnkit`` block, as Keras 3 writes it."""
    layers = [smf.k3_input("x", list(input_shape)),
              smf.k3_layer(class_name, "blk", ["x"], module=module,
                           registered_name=f"keras_cnnkit>{class_name}",
                           dtype={"module": "keras", "class_name": "DTypePolicy",
                                  "config": {"name": "float32"}, "registered_name": None},
                           data_format="channels_last", **config)]
    layers[1]["build_config"] = {"input_shape": [None, *input_shape]}
    return smf.k3_functional("bomb", layers, ["x"], ["blk"])


def dense_block_bomb(num_layers: int = 200_000) -> dict:
    """``keras_cnnkit>DenseBlock`` with ``num_layers`` layers (issue 17: 200,000)."""
    return block_model("DenseBlock", "keras_cnnkit.layers.dense", num_layers=num_layers,
                       growth_rate=4, bottleneck_width=4, kernel_size=3, dilation_rate=1,
                       activation="relu", bn_epsilon=1.001e-5, bn_momentum=0.99)


def factorized_bomb(kernel_size: int = 10_000_001) -> dict:
    """``keras_cnnkit>FactorizedConv`` with a stacked kernel of ``kernel_size``."""
    return block_model("FactorizedConv", "keras_cnnkit.layers.factorized", filters=4,
                       kernel_size=kernel_size, mode="stacked")


def head_bomb(hidden: int = 1_000_000) -> dict:
    """``ClassifierHead`` with a million hidden layers: a list, not a count."""
    return block_model("ClassifierHead", "keras_cnnkit.layers.heads", classes=10,
                       hidden_units=[4] * hidden)


def shared_model_bomb(inner: int = 1000, calls: int = 1000) -> dict:
    """A nested model of ``inner`` layers called ``calls`` times in a chain: a million
    nodes from a config of two thousand entries."""
    sub_layers = [smf.k3_input("si", [4])]
    for i in range(inner):
        sub_layers.append(smf.k3_layer("ReLU", f"r{i}", [sub_layers[-1]["name"]]))
    sub = smf.k3_functional("sub", sub_layers, ["si"], [sub_layers[-1]["name"]])
    sub["name"] = "sub"
    sub["inbound_nodes"] = [
        {"args": [smf.k3_tensor("x") if c == 0 else smf.k3_tensor("sub", node=c - 1)],
         "kwargs": {}} for c in range(calls)]
    model = smf.k3_functional("m", [smf.k3_input("x", [4]), sub], ["x"], ["x"])
    model["config"]["output_layers"] = ["sub", calls - 1, 0]
    return model


def huge_kernel_conv(kernel: int = 2 ** 40) -> dict:
    """A plain Conv2D whose kernel is 2⁴⁰ × 2⁴⁰ (its weight count overflows int64)."""
    layers = [smf.k3_input("x", [8, 8, 4]),
              smf.k3_layer("Conv2D", "c", ["x"], filters=4, kernel_size=[kernel, kernel],
                           padding="same")]
    return smf.k3_functional("m", layers, ["x"], ["c"])


def huge_filters_conv(filters: int = 10 ** 15) -> dict:
    """A Conv2D with 10¹⁵ filters."""
    layers = [smf.k3_input("x", [8, 8, 4]),
              smf.k3_layer("Conv2D", "c", ["x"], filters=filters, kernel_size=[1, 1])]
    return smf.k3_functional("m", layers, ["x"], ["c"])


# --- containers --------------------------------------------------------------------------

def write_config(path, config, fmt: str) -> str:
    """``config`` (a dict or raw JSON text/bytes) as a bare ``.json``, a legacy ``.h5``
    (root attribute ``model_config``) or a ``.keras`` zip."""
    path = os.fspath(path)
    text = config if isinstance(config, (str, bytes)) else json.dumps(config)
    if fmt == "json":
        with open(path, "wb") as fh:
            fh.write(text.encode() if isinstance(text, str) else text)
    elif fmt == "h5":
        with h5py.File(path, "w", libver="latest") as h5:
            h5.attrs["model_config"] = text if isinstance(text, str) else text.decode()
            h5.attrs["keras_version"] = "3.15.1"
    else:
        smf.write_keras_archive(path, text)
    return path


def deflate_repeated(head: bytes, chunk: bytes, count: int, tail: bytes = b"") -> tuple:
    """A raw deflate stream of ``head + chunk * count + tail`` built by repeating one
    compressed block (full flushes make each block self-contained): megabytes of
    output for gigabytes of content.  Returns ``(compressed, crc32, size)``."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    last = comp.compress(tail) + comp.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(tail, crc)
    return first + block * count + last, crc, len(head) + len(chunk) * count + len(tail)


def write_zip(path, members: list) -> str:
    """A zip archive written by hand: ``members`` are ``(name, data)`` (stored) or
    ``(name, (deflated, crc, size))`` (a precomputed deflate stream).  Sizes up to
    4 GiB − 1, no zip64."""
    path = os.fspath(path)
    central, offset = [], 0
    with open(path, "wb") as fh:
        for name, data in members:
            if isinstance(data, tuple):
                (payload, crc, size), method = data, 8
            else:
                payload, crc, size, method = data, zlib.crc32(data), len(data), 0
            raw = name.encode()
            header = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21,
                                 crc, len(payload), size, len(raw), 0)
            fh.write(header + raw)
            fh.write(payload)
            central.append(struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0,
                                       method, 0, 0x21, crc, len(payload), size, len(raw),
                                       0, 0, 0, 0, 0o644 << 16, offset) + raw)
            offset += len(header) + len(raw) + len(payload)
        directory = b"".join(central)
        fh.write(directory)
        fh.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(central), len(central),
                             len(directory), offset, 0))
    return path


def small_config() -> dict:
    """A valid two-layer config (for files whose bomb is elsewhere)."""
    return smf.conv_chain_config(2)


# --- the cases -----------------------------------------------------------------------------

def json_bomb_keras(path, size: int = 512 * MB) -> str:
    """A ``.keras`` whose ``config.json`` deflates to ``size`` bytes of ``[],``."""
    head = b'{"class_name": "Functional", "config": {"layers": ['
    chunk = b"[]," * (1 << 18)
    stream = deflate_repeated(head, chunk, size // len(chunk), b"[]]}}")
    return write_zip(path, [("metadata.json", b'{"keras_version": "3.15.1"}'),
                            ("config.json", stream)])


def json_values_bomb(path, fmt: str, count: int = 5_000_000) -> str:
    """``count`` empty lists in a config: 15 MB, under the byte budget (32 MiB), over
    the value budget (2,000,000)."""
    text = (b'{"class_name": "Functional", "config": {"layers": ['
            + b"[]," * count + b'[]]}}')
    return write_config(path, text, fmt)


def json_depth_bomb(path, fmt: str, depth: int = 1_000_000) -> str:
    """A config nested ``depth`` lists deep."""
    text = b'{"class_name": "Functional", "config": ' + b"[" * depth + b"]" * depth + b"}"
    return write_config(path, text, fmt)


def zip_zeros_weights(path, zeros: int = 2 * GB) -> str:
    """A ``.keras`` whose ``model.weights.h5`` deflates to ``zeros`` zero bytes before
    its HDF5 metadata (a user block: the superblock is searched at 0, 512, 1024...)."""
    data = smf.weights_h5_bytes(lambda h5: h5.create_group("layers/conv2d/vars")
                                .create_dataset("0", shape=(1, 1, 8, 8), dtype="float32"))
    chunk = b"\0" * MB
    stream = deflate_repeated(b"", chunk, zeros // MB, data)
    return write_zip(path, [("metadata.json", b'{"keras_version": "3.15.1"}'),
                            ("config.json", json.dumps(small_config()).encode()),
                            ("model.weights.h5", stream)])


def hardlink_weights_keras(path, fanout: int = 8) -> str:
    """A ``.keras`` whose ``model.weights.h5`` links back to its root from ``fanout``
    groups: a walk that follows links without remembering them never ends."""
    def build(h5):
        layers = h5.create_group("layers")
        for i in range(fanout):
            layers[f"l{i}"] = h5
    return smf.write_keras_archive(path, small_config(), smf.weights_h5_bytes(build))


def h5_path_bomb(path, segments: int = 2_000_000, where: str = "layer_names") -> str:
    """A legacy ``.h5`` whose ``layer_names`` (or a ``weight_names``) is one
    ``segments``-part path through a self hard link."""
    smf.write_legacy_h5(path, small_config())
    deep = "/".join(["a"] * segments)
    with h5py.File(path, "a", libver="latest") as h5:
        root = h5.create_group("model_weights")
        group = root.create_group("a")
        group["a"] = group
        if where == "layer_names":
            root.attrs["layer_names"] = np.array([deep.encode()])
        else:
            root.attrs["layer_names"] = np.array([b"a"])
            group.attrs["weight_names"] = np.array([(deep + "/k").encode()])
    return os.fspath(path)


def h5_many_names(path, count: int = 1_000_000) -> str:
    """A legacy ``.h5`` listing one layer group a million times in ``layer_names``."""
    smf.write_legacy_h5(path, small_config())
    with h5py.File(path, "a", libver="latest") as h5:
        root = h5.create_group("model_weights")
        group = root.create_group("a")
        group.create_dataset("k", shape=(1,), dtype="float32")
        group.attrs["weight_names"] = np.array([b"k"])
        root.attrs["layer_names"] = np.array([b"a"] * count)
    return os.fspath(path)


def _outside_dataset(group, name: str, shape, target: str, virtual: bool) -> None:
    """``group[name]``: a float32 dataset of ``shape`` whose data lives in ``target``
    (HDF5 external storage: raw bytes of any file; or a virtual dataset mapping
    ``target`` as an HDF5 file)."""
    if virtual:
        layout = h5py.VirtualLayout(shape=shape, dtype="float32")
        layout[...] = h5py.VirtualSource(target, "w", shape=shape)
        group.create_virtual_dataset(name, layout)
    else:
        group.create_dataset(name, shape=shape, dtype="float32",
                             external=[(target, 0, h5py.h5f.UNLIMITED)])


def outside_data_weights(path, fmt: str, virtual: bool = False) -> str:
    """A model whose one weight keeps its data outside the file, in a FIFO beside it (an
    open would block: a reader that follows it hangs instead of refusing)."""
    folder = os.path.dirname(os.path.abspath(path))
    fifo = os.path.join(folder, "outside.fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    config = smf.conv_chain_config(1)
    if fmt == "h5":
        smf.write_legacy_h5(path, config)
        with h5py.File(path, "a") as h5:
            group = h5.create_group("model_weights")
            group.attrs["layer_names"] = np.array([b"c0"])
            layer = group.create_group("c0")
            layer.attrs["weight_names"] = np.array([b"c0/kernel:0"])
            _outside_dataset(layer.create_group("c0"), "kernel:0", (3, 3, 3, 8), fifo,
                             virtual)
        return os.fspath(path)
    data = smf.weights_h5_bytes(lambda h5: _outside_dataset(
        h5.create_group("layers/c0/vars"), "0", (3, 3, 3, 8), fifo, virtual))
    return smf.write_keras_archive(path, config, data)


def oversized_weight(path, elements: int = 2 ** 28) -> str:
    """A legacy ``.h5`` whose conv kernel is a chunked dataset declaring ``elements``
    float32 values (a GiB for 2**28) in a 10 KB file: nothing is stored, a reader that
    reads it before comparing shapes allocates it all."""
    smf.write_legacy_h5(path, smf.conv_chain_config(1),
                        {"c0": {"c0/kernel:0": (3, 3, 3, 8)}})
    with h5py.File(path, "a") as h5:
        group = h5["model_weights/c0"]
        del group["c0/kernel:0"]
        group.create_dataset("c0/kernel:0", shape=(elements,), dtype="float32",
                             chunks=(1024,))
    return os.fspath(path)


def huge_input_config(side: int = 10 ** 9) -> dict:
    """A one-conv model declaring a ``side`` × ``side`` RGB input: linted statically
    without trouble, but a command that runs it (``--fix``, ``cnnkit-export``) would
    draw random inputs of that size (tf2onnx's tracing crashed with a segfault)."""
    layers = [smf.k3_input("x", [side, side, 3]),
              smf.k3_layer("Conv2D", "c", ["x"], filters=4, kernel_size=[1, 1])]
    return smf.k3_functional("m", layers, ["x"], ["c"])


def control_name_config() -> dict:
    """A model whose conv is named ``"a\x00b"`` (Keras loads it, then fails to call it)."""
    layers = [smf.k3_input("x", [8, 8, 3]),
              smf.k3_layer("Conv2D", "a\x00b", ["x"], filters=4, kernel_size=[1, 1])]
    return smf.k3_functional("m", layers, ["x"], ["a\x00b"])


def _onnx_model(nodes: list, outputs: list, initializers=()) -> bytes:
    from onnx import TensorProto, helper
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info(
            o, TensorProto.FLOAT, None) for o in outputs], initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _int64s(name: str, values: list):
    from onnx import helper
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name + "_v", 7, [len(values)], values))


def onnx_constant_of_shape(path, dims=(20_000, 20_000)) -> str:
    """``ConstantOfShape`` of a constant shape: billions of elements from a few bytes."""
    from onnx import helper
    nodes = [_int64s("s", list(dims)), helper.make_node("ConstantOfShape", ["s"], ["y"])]
    return _write(path, _onnx_model(nodes, ["y"]))


def onnx_broadcast_bomb(path, side: int = 40_000) -> str:
    """Two allowed ``ConstantOfShape`` results, ``[n, 1]`` and ``[1, n]``, added: the
    broadcast makes ``n²`` elements."""
    from onnx import helper
    nodes = [_int64s("s1", [side, 1]), _int64s("s2", [1, side]),
             helper.make_node("ConstantOfShape", ["s1"], ["a"]),
             helper.make_node("ConstantOfShape", ["s2"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"]),
             helper.make_node("Add", ["y", "y"], ["z"])]
    return _write(path, _onnx_model(nodes, ["z"]))


def onnx_range(path, limit: int = 500_000_000) -> str:
    """``Range(0, limit, 1)``."""
    from onnx import helper
    nodes = [helper.make_node("Constant", [], [n], value=helper.make_tensor(n + "_v", 7, [],
                                                                             [v]))
             for n, v in (("a", 0), ("b", limit), ("c", 1))]
    nodes.append(helper.make_node("Range", ["a", "b", "c"], ["y"]))
    return _write(path, _onnx_model(nodes, ["y"]))


def onnx_concat_bomb(path, size: int = 4_000_000, copies: int = 2000) -> str:
    """One allowed constant (``[size, 1]``) concatenated with itself ``copies`` times."""
    from onnx import helper
    nodes = [_int64s("s", [size, 1]), helper.make_node("ConstantOfShape", ["s"], ["a"]),
             helper.make_node("Concat", ["a"] * copies, ["y"], axis=0)]
    return _write(path, _onnx_model(nodes, ["y"]))


def onnx_rank_growth(path, kind: str = "unsqueeze", count: int = 5000) -> str:
    """Tensors whose rank grows along the graph: ``count`` chained ``Unsqueeze`` (rank
    1, 2, ... ``count``), or ``count`` ops on a rank-20,000 ``ConstantOfShape``; ONNX's
    shape inference records every dimension of every tensor."""
    from onnx import helper
    nodes = [_int64s("axes", [0])]
    prev = "x"
    if kind != "unsqueeze":
        nodes += [_int64s("s", [1] * 20_000),
                  helper.make_node("ConstantOfShape", ["s"], ["c"])]
        prev = "c"
    for i in range(count):
        op = helper.make_node("Unsqueeze", [prev, "axes"], [f"t{i}"]) if kind == "unsqueeze" \
            else helper.make_node("Relu", [prev], [f"t{i}"])
        nodes.append(op)
        prev = f"t{i}"
    return _write(path, _onnx_model(nodes, [prev]))


def onnx_declared_concat(path, length: int = 100_000_000) -> str:
    """A declared 1-D input of ``length`` concatenated with itself: ONNX's data
    propagation writes one entry per element."""
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Concat", ["v", "v"], ["y"], axis=0)], "g",
                              [helper.make_tensor_value_info("v", TensorProto.INT64,
                                                             [length])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return _write(path, model.SerializeToString())


def onnx_external_constant(path) -> str:
    """A ``Constant`` whose tensor claims external data (without saying where)."""
    from onnx import TensorProto, helper
    tensor = helper.make_tensor("v", TensorProto.FLOAT, [4], [0.0] * 4)
    tensor.data_location = TensorProto.EXTERNAL
    nodes = [helper.make_node("Constant", [], ["c"], value=tensor),
             helper.make_node("Add", ["x", "c"], ["y"])]
    return _write(path, _onnx_model(nodes, ["y"]))


def _write(path, data: bytes) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return os.fspath(path)


@dataclasses.dataclass
class Case:
    """One hostile file: how to build it, how to read it, and the budget that stops it."""

    name: str
    build: Callable[[str], str]     # build(directory) -> path
    budget: str                     # the budget named in the one-line error
    mode: str = "lint"              # lint | api | fix | export
    issue: bool = False             # one of issue 17's measured cases
    slow_build: bool = False        # takes seconds to write (gigabytes inflated)


def _in(directory, name):
    return os.path.join(os.fspath(directory), name)


def _config_case(name, config_fn, fmt, budget, mode="lint", issue=False):
    def build(directory):
        return write_config(_in(directory, f"{name}.{fmt}"), config_fn(), fmt)
    return Case(name, build, budget, mode, issue)


def _cases() -> list:
    cases = []
    for fmt in ("keras", "h5", "json"):
        cases.append(_config_case(f"dense_block_{fmt}", dense_block_bomb, fmt, "max-nodes",
                                  issue=fmt == "keras"))
        cases.append(_config_case(f"dense_block_5m_{fmt}", lambda: dense_block_bomb(5_000_000),
                                  fmt, "max-nodes"))
        cases.append(_config_case(f"factorized_{fmt}", factorized_bomb, fmt, "max-kernel-size",
                                  issue=fmt == "keras"))
        cases.append(_config_case(f"head_{fmt}", head_bomb, fmt, "max-nodes"))
        cases.append(_config_case(f"shared_model_{fmt}", shared_model_bomb, fmt, "max-nodes"))
        cases.append(_config_case(f"int64_kernel_{fmt}", huge_kernel_conv, fmt,
                                  "max-kernel-size"))
        cases.append(Case(f"json_depth_{fmt}", lambda d, f=fmt: json_depth_bomb(
            _in(d, f"depth.{f}"), f), "max-json-depth"))
    for mode in ("fix", "export"):
        for fmt in ("keras", "h5"):
            cases.append(_config_case(f"dense_block_{mode}_{fmt}", dense_block_bomb, fmt,
                                      "max-nodes", mode=mode, issue=fmt == "keras"))
        cases.append(_config_case(f"factorized_{mode}_keras", factorized_bomb, "keras",
                                  "max-kernel-size", mode=mode))
    cases += [
        Case("json_bomb_keras", lambda d: json_bomb_keras(_in(d, "jb.keras")),
             "max-zip-ratio", issue=True),
        Case("json_values_keras", lambda d: json_values_bomb(_in(d, "jv.keras"), "keras"),
             "max-json-values"),
        Case("json_values_json", lambda d: json_values_bomb(_in(d, "jv.json"), "json"),
             "max-json-values"),
        Case("json_values_h5", lambda d: json_values_bomb(_in(d, "jv.h5"), "h5"),
             "max-json-values"),
        Case("zip_zeros_weights", lambda d: zip_zeros_weights(_in(d, "zz.keras")),
             "max-zip-ratio", issue=True, slow_build=True),
        Case("hardlink_weights_keras", lambda d: hardlink_weights_keras(_in(d, "hl.keras")),
             "max-h5-links", issue=True),
        Case("h5_layer_names_path", lambda d: h5_path_bomb(_in(d, "lp.h5")),
             "max-h5-path-depth", issue=True),
        Case("h5_weight_names_path", lambda d: h5_path_bomb(_in(d, "wp.h5"),
                                                             where="weight_names"),
             "max-h5-path-depth"),
        Case("h5_many_names", lambda d: h5_many_names(_in(d, "mn.h5")), "max-h5-links"),
        Case("h5_external_storage_keras", lambda d: outside_data_weights(
            _in(d, "es.keras"), "keras"), ""),
        Case("h5_external_storage_h5", lambda d: outside_data_weights(_in(d, "es.h5"), "h5"),
             ""),
        Case("h5_external_storage_export_h5", lambda d: outside_data_weights(
            _in(d, "es.h5"), "h5"), "", mode="export"),
        Case("h5_external_storage_fix_keras", lambda d: outside_data_weights(
            _in(d, "es.keras"), "keras"), "", mode="fix"),
        Case("oversized_weight_export", lambda d: oversized_weight(_in(d, "ow.h5")), "",
             mode="export"),
        Case("oversized_weight_fix", lambda d: oversized_weight(_in(d, "ow.h5")), "",
             mode="fix"),
        _config_case("huge_input_export", huge_input_config, "keras", "max-input-values",
                     mode="export"),
        _config_case("huge_input_fix", huge_input_config, "keras", "max-input-values",
                     mode="fix"),
        _config_case("control_name_fix", control_name_config, "keras", "", mode="fix"),
        Case("h5_virtual_dataset_keras", lambda d: outside_data_weights(
            _in(d, "vd.keras"), "keras", virtual=True), ""),
        Case("h5_virtual_dataset_export_h5", lambda d: outside_data_weights(
            _in(d, "vd.h5"), "h5", virtual=True), "", mode="export"),
        Case("onnx_constant_of_shape", lambda d: onnx_constant_of_shape(_in(d, "cos.onnx")),
             "max-const-elements", issue=True),
        Case("onnx_constant_of_shape_big", lambda d: onnx_constant_of_shape(
            _in(d, "cos2.onnx"), (40_000, 40_000)), "max-const-elements", issue=True),
        Case("onnx_range", lambda d: onnx_range(_in(d, "range.onnx")), "max-const-elements",
             issue=True),
        Case("onnx_broadcast", lambda d: onnx_broadcast_bomb(_in(d, "bc.onnx")),
             "max-const-elements"),
        Case("onnx_concat", lambda d: onnx_concat_bomb(_in(d, "cc.onnx")),
             "max-const-elements"),
        Case("onnx_unsqueeze_chain", lambda d: onnx_rank_growth(_in(d, "uq.onnx")),
             "max-shape-dims"),
        Case("onnx_rank_relu", lambda d: onnx_rank_growth(_in(d, "rr.onnx"), "relu", 2000),
             "max-shape-dims"),
        Case("onnx_declared_concat", lambda d: onnx_declared_concat(_in(d, "dc.onnx")),
             "max-shape-dims"),
        Case("onnx_external_constant_api", lambda d: onnx_external_constant(
            _in(d, "ext.onnx")), "", mode="api"),
        Case("onnx_constant_of_shape_api", lambda d: onnx_constant_of_shape(_in(d, "c.onnx")),
             "max-const-elements", mode="api"),
        Case("dense_block_api", lambda d: write_config(_in(d, "db.keras"), dense_block_bomb(),
                                                       "keras"), "max-nodes", mode="api"),
    ]
    return cases


CASES = _cases()
