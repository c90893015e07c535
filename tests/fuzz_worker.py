"""The fuzz worker: structured mutations of real model files, each linted as a user would.

Run by ``tests/test_fuzz_hostile.py`` as a child process under ``RLIMIT_AS`` (1 GB)::

    python tests/fuzz_worker.py SEED COUNT WORKDIR BASE_FILE...

For example ``i`` (``0 <= i < COUNT``) a generator seeded with ``(SEED, i)`` picks a base
file and a mutation: of the JSON config (a value set to a hostile one — a huge or
negative size, a deep or long list, a block bomb, a copied or self-referencing layer — at
a path chosen among the config's own paths), of the container (a ``.keras`` re-zipped
deflated, padded with members or with a member that inflates a thousandfold; an ``.h5``
given hard links back to its root, deep or numerous layer names; an ONNX graph given
folding bombs, huge attributes or dims, rank-growing chains), or of its bytes (flips,
truncation).  The mutated file is linted twice: ``cnnkit-lint FILE`` (in-process, through
``main``) and ``keras_cnnkit.lint(FILE)``.

Each run must end with exit status 0, 1 or 2, one line per error, no traceback, no
"unexpected" or "out of memory" error, the API raising nothing but ``ModelFileError``,
the file byte-identical afterwards and nothing left in its directory, within 10 s of CPU
time (a hard stop around each of the two runs: ``SIGPROF`` kills the worker after
``faulthandler`` dumps where it was; 60 s of wall-clock time stops a hang that does not
compute).  ``seconds`` in the records is the CPU time, the mean of the two runs.  The worker
prints one JSON line per example and exits 1 on the first failure.
"""
from __future__ import annotations

import contextlib
import copy
import faulthandler
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sys
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

import h5py  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

import hostile_files as hf  # noqa: E402  pylint: disable=wrong-import-position

#: CPU seconds one run may take before the worker is killed.
EXAMPLE_SECONDS = 10
#: Wall-clock seconds, however busy the machine, before a run counts as hung.
WALL_SECONDS = 60

HUGE_INTS = [0, -1, -(2 ** 63), 2 ** 31, 10 ** 6, 10 ** 9, 10 ** 12, 2 ** 63, 10 ** 30,
             10 ** 400]
#: What a protobuf int64 field can hold.
INT64_INTS = [0, -1, -(2 ** 63), 2 ** 31, 10 ** 6, 10 ** 9, 10 ** 12, 2 ** 62, 2 ** 63 - 1]
JSON_VALUES = [None, True, "", "x" * 1000, 1.5e308, [], {}, [[[]]], {"class_name": None},
               "keras_cnnkit>DenseBlock", "__keras_tensor__"]


# --- config mutations -----------------------------------------------------------------------

def _paths(value, prefix=(), out=None, limit=20000):
    out = [] if out is None else out
    stack = [(prefix, value)]
    while stack and len(out) < limit:
        path, item = stack.pop()
        out.append(path)
        if isinstance(item, dict):
            stack.extend(((*path, k), v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend(((*path, i), v) for i, v in enumerate(item))
    return out


def _get(value, path):
    for key in path:
        value = value[key]
    return value


def _set(root, path, value):
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _layers(config):
    body = config.get("config") if isinstance(config, dict) else None
    layers = body.get("layers") if isinstance(body, dict) else None
    return layers if isinstance(layers, list) else []


def _hostile_value(rng):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice(HUGE_INTS)
    if kind == 1:
        return [rng.choice(HUGE_INTS)] * rng.choice([2, 3, 1000])
    if kind == 2:
        depth = rng.choice([50, 300, 600])
        return json.loads("[" * depth + "]" * depth)
    if kind == 3:
        return [0] * rng.choice([10, 10 ** 5])
    if kind == 4:
        return {f"k{i}": i for i in range(rng.choice([3, 10 ** 4]))}
    return rng.choice(JSON_VALUES)


def mutate_config(config, rng):
    """One structured change of a Keras config; returns the mutated copy and its name."""
    config = copy.deepcopy(config)
    layers = _layers(config)
    kind = rng.randrange(8)
    if kind <= 2 or not layers:
        paths = _paths(config)
        path = rng.choice(paths)
        return _set(config, path, _hostile_value(rng)), f"set {'/'.join(map(str, path))[:80]}"
    layer = rng.choice(layers)
    cfg = layer.get("config") if isinstance(layer, dict) else None
    if kind == 3 and isinstance(cfg, dict):
        key = rng.choice(["kernel_size", "pool_size", "filters", "units", "strides",
                          "dilation_rate", "groups", "depth_multiplier", "axis", "padding",
                          "size", "target_shape", "dims", "rate"])
        cfg[key] = _hostile_value(rng)
        return config, f"layer {key}"
    if kind == 4 and isinstance(layer, dict):
        block = rng.choice([hf.dense_block_bomb(rng.choice([10, 10 ** 5, 10 ** 7])),
                            hf.factorized_bomb(rng.choice([7, 10 ** 4 + 1, 10 ** 7 + 1])),
                            hf.head_bomb(rng.choice([3, 10 ** 5]))])["config"]["layers"][1]
        block = copy.deepcopy(block)
        block["name"] = block["config"]["name"] = layer.get("name", "blk")
        block["inbound_nodes"] = layer.get("inbound_nodes", [])
        layers[layers.index(layer)] = block
        return config, f"block {block['class_name']}"
    if kind == 5:
        copies = rng.choice([2, 100, 5000])
        layers.extend(copy.deepcopy(layer) for _ in range(copies))
        return config, f"copied layer x{copies}"
    if kind == 6 and isinstance(layer, dict):
        layer["inbound_nodes"] = layer.get("inbound_nodes", []) * rng.choice([2, 1000])
        return config, "repeated calls"
    nested = copy.deepcopy(config)
    nested["name"] = "nested"
    nested.setdefault("config", {})
    layers.append(nested)
    return config, "model nested in itself"


# --- container mutations ----------------------------------------------------------------------

def _read_keras(path):
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i.filename) for i in zf.infolist()}


def _write_keras(path, members, deflate=False):
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def mutate_keras(base, out, rng):
    """A ``.keras``: its config, its container or its weights file."""
    members = _read_keras(base)
    kind = rng.randrange(7)
    if kind <= 2:
        config, what = mutate_config(json.loads(members["config.json"]), rng)
        members["config.json"] = json.dumps(config).encode()
        _write_keras(out, members, deflate=rng.random() < 0.3)
        return f"keras config: {what}"
    if kind == 3:
        _write_keras(out, members, deflate=True)
        return "keras deflated"
    if kind == 4:
        hf.write_zip(out, [(n, d) for n, d in members.items()
                           if n != "model.weights.h5"] + [
            ("model.weights.h5", hf.deflate_repeated(b"", b"\0" * hf.MB,
                                                       rng.choice([2, 200]), b""))])
        return "keras weights inflate"
    if kind == 5:
        extra = {f"pad/{i}": b"" for i in range(rng.choice([10, 10001]))}
        _write_keras(out, {**members, **extra})
        return "keras many members"
    weights = members.get("model.weights.h5")
    if weights:
        buffer = io.BytesIO(weights)
        with h5py.File(buffer, "a") as h5:
            groups = [g for g in _h5_groups(h5)]
            target = rng.choice(groups) if groups else h5
            target[f"loop{rng.randrange(100)}"] = h5 if rng.random() < 0.5 else target
        members["model.weights.h5"] = buffer.getvalue()
    _write_keras(out, members)
    return "keras weights hard link"


def _h5_groups(h5):
    found = []
    h5.visit(lambda name: found.append(h5[name]) if isinstance(h5[name], h5py.Group)
             and len(found) < 50 else None)
    return found


def mutate_h5(base, out, rng):
    """A legacy ``.h5``: its ``model_config`` or its weight groups."""
    shutil.copyfile(base, out)
    kind = rng.randrange(4)
    with h5py.File(out, "a", libver="latest") as h5:
        if kind <= 1:
            config, what = mutate_config(json.loads(h5.attrs["model_config"]), rng)
            h5.attrs["model_config"] = json.dumps(config)
            return f"h5 config: {what}"
        root = h5.get("model_weights")
        if not isinstance(root, h5py.Group):
            return "h5 (no weights)"
        names = [n.decode() if isinstance(n, bytes) else n for n in
                 root.attrs.get("layer_names", [])]
        if kind == 2:
            root["loop"] = root
            deep = "/".join(["loop"] * rng.choice([3, 100, 100000]))
            names.append(deep)
            _set_names(root, names)
            return "h5 deep layer name"
        count = rng.choice([10, 300000])
        _set_names(root, names[:1] * count)
        return f"h5 layer names x{count}"


def _set_names(group, names):
    """``group``'s ``layer_names``, whatever their size: an attribute over 64 KiB needs
    dense storage, which only a group made under ``libver="latest"`` has, so the group
    is remade (its members hard-linked into the new one)."""
    file, name = group.file, group.name
    file.move(name, name + "_old")
    old = file[name + "_old"]
    new = file.create_group(name)
    for key in old:
        new[key] = old[key]
    del file[name + "_old"]
    new.attrs.create("layer_names", np.array(names, dtype=object), dtype=h5py.string_dtype())


def mutate_onnx(base, out, rng):
    """An ONNX model: a folding bomb, a huge attribute or dim, a rank-growing chain."""
    import onnx
    from onnx import helper

    model = onnx.load(base, load_external_data=False)
    graph = model.graph
    kind = rng.randrange(6)
    first = graph.node[0].output[0] if graph.node else graph.input[0].name
    if kind == 0:
        n = rng.choice([10, 10 ** 5, 10 ** 9])
        nodes = [hf._int64s("fz_s", [n, rng.choice([1, n])]),  # pylint: disable=protected-access
                 helper.make_node("ConstantOfShape", ["fz_s"], ["fz_c"])]
        graph.node.extend(nodes)
        what = f"ConstantOfShape {n}"
    elif kind == 1:
        limit = rng.choice([100, 10 ** 9])
        for name, value in (("fz_a", 0), ("fz_b", limit), ("fz_d", 1)):
            graph.node.append(helper.make_node("Constant", [], [name], value=helper.make_tensor(
                name + "_v", 7, [], [value])))
        graph.node.append(helper.make_node("Range", ["fz_a", "fz_b", "fz_d"], ["fz_r"]))
        graph.node.append(helper.make_node("Concat", ["fz_r"] * rng.choice([2, 1000]),
                                           ["fz_cc"], axis=0))
        what = f"Range {limit}"
    elif kind == 2:
        node = rng.choice(list(graph.node))
        for attribute in node.attribute:
            if attribute.ints:
                attribute.ints[0] = rng.choice(INT64_INTS)
        what = f"attribute of {node.op_type}"
    elif kind == 3:
        dims = graph.input[0].type.tensor_type.shape.dim
        if dims:
            dims[-1].dim_value = rng.choice([10 ** 6, 10 ** 12, 2 ** 62])
        what = "input dim"
    elif kind == 4:
        axes = hf._int64s("fz_axes", [0])  # pylint: disable=protected-access
        graph.node.append(axes)
        prev = first
        for i in range(rng.choice([10, 3000])):
            graph.node.append(helper.make_node("Unsqueeze", [prev, "fz_axes"], [f"fz_u{i}"]))
            prev = f"fz_u{i}"
        what = "Unsqueeze chain"
    else:
        data = model.SerializeToString()
        with open(out, "wb") as fh:
            fh.write(_flip(bytearray(data), rng))
        return "onnx bytes"
    with open(out, "wb") as fh:
        fh.write(model.SerializeToString())
    return f"onnx {what}"


def _flip(blob: bytearray, rng) -> bytes:
    for _ in range(rng.randrange(1, 9)):
        blob[rng.randrange(len(blob))] = rng.randrange(256)
    if rng.random() < 0.3:
        blob = blob[:rng.randrange(1, len(blob))]
    return bytes(blob)


def mutate(base, out, rng):
    """A mutation of ``base`` written to ``out``; returns its description."""
    if rng.random() < 0.12:
        with open(base, "rb") as fh:
            data = bytearray(fh.read())
        with open(out, "wb") as fh:
            fh.write(_flip(data, rng))
        return "bytes"
    if base.endswith(".onnx"):
        return mutate_onnx(base, out, rng)
    if base.endswith(".keras"):
        return mutate_keras(base, out, rng)
    if base.endswith(".h5"):
        return mutate_h5(base, out, rng)
    with open(base, encoding="utf-8") as fh:
        config, what = mutate_config(json.load(fh), rng)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(config, fh)
    return f"json: {what}"


# --- checking one example ----------------------------------------------------------------------

def _digest(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@contextlib.contextmanager
def _deadline():
    """A hard stop: past :data:`EXAMPLE_SECONDS` of CPU time (``SIGPROF``, whose default
    action ends the process, after ``faulthandler`` dumped where it was: a hang in C
    code cannot be interrupted otherwise), or :data:`WALL_SECONDS` of wall-clock time
    (a hang that does not compute)."""
    faulthandler.dump_traceback_later(WALL_SECONDS, exit=True)
    signal.setitimer(signal.ITIMER_PROF, EXAMPLE_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        faulthandler.cancel_dump_traceback_later()


def check_example(path: str) -> tuple:
    """``(status, first error line, problems)`` of linting ``path`` both ways."""
    from keras_cnnkit.errors import ModelFileError
    from keras_cnnkit.lint.cli import main

    problems = []
    folder = os.path.dirname(path)
    before = (_digest(path), sorted(os.listdir(folder)))
    out, err = io.StringIO(), io.StringIO()
    with _deadline(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([path, "--no-config", "-q"])
    text = err.getvalue()
    if status not in (0, 1, 2):
        problems.append(f"exit status {status}")
    for marker in ("Traceback", "unexpected", "out of memory", "internal error",
                   "nested too deeply to analyse"):
        if marker in text + out.getvalue():
            problems.append(f"{marker!r} in the output")
    if status == 2 and len(text.strip().splitlines()) != 1:
        problems.append(f"{len(text.strip().splitlines())} error lines")
    try:
        import keras_cnnkit
        with _deadline():
            keras_cnnkit.lint(path)
    except ModelFileError as exc:
        if "unexpected" in str(exc) or "out of memory" in str(exc):
            problems.append(f"API: {exc}")
    except BaseException as exc:  # pylint: disable=broad-exception-caught
        problems.append(f"API raised {type(exc).__name__}: {exc}")
    if (_digest(path), sorted(os.listdir(folder))) != before:
        problems.append("the input changed or a file was left beside it")
    line = text.strip().splitlines()[0] if text.strip() else ""
    return status, line, problems


def main(argv=None) -> int:
    """Run the examples; one JSON line each; exit 1 at the first failing one."""
    argv = sys.argv[1:] if argv is None else argv
    seed, count, workdir, bases = int(argv[0]), int(argv[1]), argv[2], argv[3:]
    worst = 0.0
    for i in range(count):
        rng = random.Random(f"{seed}:{i}")
        base = rng.choice(bases)
        folder = os.path.join(workdir, f"ex{i}")
        os.mkdir(folder)
        path = os.path.join(folder, "model" + os.path.splitext(base)[1])
        what = mutate(base, path, rng)
        print(f"example {i}: {os.path.basename(base)}: {what}", file=sys.stderr, flush=True)
        start = time.process_time()
        try:
            status, line, problems = check_example(path)
        except BaseException as exc:  # pylint: disable=broad-exception-caught
            status, line, problems = None, "", [f"raised {type(exc).__name__}: {exc}"]
        seconds = (time.process_time() - start) / 2   # two runs: the CLI's and the API's
        worst = max(worst, seconds)
        print(json.dumps({"i": i, "base": os.path.basename(base), "mutation": what,
                          "status": status, "seconds": round(seconds, 2),
                          "error": line[-200:], "problems": problems}), flush=True)
        if problems:
            print(f"FAILED example {i} ({what}); kept at {path}", file=sys.stderr)
            return 1
        shutil.rmtree(folder)
    print(json.dumps({"done": count, "slowest_seconds": round(worst, 2)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
