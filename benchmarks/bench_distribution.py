"""Training throughput under ``keras.distribution.DataParallel``: a builder against its
keras.applications twin.

Both models are built inside the same ``DataParallel`` over every device JAX sees (one
GPU, eight GPUs, or CPUs), compiled with SGD (momentum 0.9), and trained on one fixed
random batch that is placed on the devices once, so the timings are the train step
alone.  After ``--warmup`` steps (compilation), the two models are timed in alternating
rounds of ``--steps`` steps each; the median round gives images per second.  The
losses of the last step are reported as a sanity check (both start near ln(classes)).

JAX backend only (no TensorFlow needed).  Writes ``distribution_<device>.json`` and
``.md`` under ``--out`` (default ``benchmarks/results``).

Usage::

    # the GPU reading: ResNet50 at 224x224, global batch 64
    python benchmarks/bench_distribution.py --model resnet50
    # a CPU smoke run with eight virtual devices
    XLA_FLAGS=--xla_force_host_platform_device_count=8 python benchmarks/bench_distribution.py --quick
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

HERE = os.path.dirname(os.path.abspath(__file__))
#: Registered builders and their keras.applications twins.
TWINS = {"resnet50": "ResNet50", "resnet50_v2": "ResNet50V2", "mobilenet": "MobileNet",
         "mobilenet_v2": "MobileNetV2", "vgg16": "VGG16", "densenet121": "DenseNet121",
         "densenet169": "DenseNet169", "densenet201": "DenseNet201",
         "inception_v3": "InceptionV3", "xception": "Xception"}


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--model", default="resnet50", choices=sorted(TWINS),
                        help="registered builder with a keras.applications twin")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument("--batch", type=int, default=64,
                        help="global batch size (divisible by the number of devices)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "mixed_bfloat16"],
                        help="Keras dtype policy")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds")
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="directory for the JSON and markdown results")
    parser.add_argument("--quick", action="store_true",
                        help="a CPU smoke run: MobileNetV2 at 32x32, 10 classes, a batch of "
                             "two per device, two steps, one round")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.size, args.classes = "mobilenet_v2", 32, 10
        args.batch, args.steps, args.warmup, args.rounds = 0, 2, 1, 1
    return args


def build(kind: str, args):
    """``kind`` ``"keras_cnnkit"`` or ``"keras.applications"``: the model, random init."""
    import keras

    kwargs = {"weights": None, "input_shape": (args.size, args.size, 3),
              "classes": args.classes}
    if kind == "keras_cnnkit":
        from keras_cnnkit import models
        return models.create_model(args.model, **kwargs)
    return getattr(keras.applications, TWINS[args.model])(**kwargs)


class Runner:
    """One model compiled under the distribution, with its batch on the devices."""

    def __init__(self, kind: str, args, distribution):
        import jax
        import keras
        import numpy as np

        self.kind = kind
        rng = np.random.default_rng(0)
        x = rng.uniform(-1, 1, (args.batch, args.size, args.size, 3)).astype("float32")
        y = rng.integers(0, args.classes, args.batch)
        with distribution.scope():
            self.model = build(kind, args)
            self.model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                               loss="sparse_categorical_crossentropy")
        self.distribution = distribution
        self.x = jax.device_put(x, distribution.get_data_layout(x.shape).backend_layout)
        self.y = jax.device_put(y, distribution.get_data_layout(y.shape).backend_layout)
        self.loss = float("nan")

    def steps(self, n: int) -> float:
        """Run ``n`` train steps; the wall time in seconds (the last loss is a Python
        float, so the device has finished)."""
        with self.distribution.scope():
            start = time.perf_counter()
            for _ in range(n):
                self.loss = float(self.model.train_on_batch(self.x, self.y))
            return time.perf_counter() - start


def device_name() -> str:
    """``<platform>-<kind>-x<count>``, e.g. ``gpu-nvidia-h200-x1``."""
    import jax

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", device.platform).lower().replace(" ", "-")
    return f"{device.platform}-{kind}-x{jax.device_count()}"


def run(args) -> dict:
    """Time both models; the result record."""
    import jax
    import keras

    if keras.backend.backend() != "jax":
        raise SystemExit("bench_distribution.py needs KERAS_BACKEND=jax")
    keras.config.set_dtype_policy(args.dtype)
    devices = keras.distribution.list_devices()
    args.batch = args.batch or 2 * len(devices)
    if args.batch % len(devices):
        raise SystemExit(f"--batch {args.batch} is not divisible by the {len(devices)} devices")
    distribution = keras.distribution.DataParallel(devices=devices)
    runners = [Runner(kind, args, distribution) for kind in ("keras_cnnkit", "keras.applications")]
    for runner in runners:
        runner.steps(args.warmup)
    times = {r.kind: [] for r in runners}
    for _ in range(args.rounds):
        for runner in runners:
            times[runner.kind].append(runner.steps(args.steps))
    record = {"device": device_name(), "devices": len(devices), "jax": jax.__version__,
              "keras": keras.__version__, "python": platform.python_version(),
              "model": args.model, "size": args.size, "batch": args.batch,
              "classes": args.classes, "dtype": args.dtype, "steps": args.steps,
              "rounds": args.rounds, "results": {}}
    for runner in runners:
        median = statistics.median(times[runner.kind])
        record["results"][runner.kind] = {
            "params": runner.model.count_params(), "round_seconds": times[runner.kind],
            "step_ms": 1000 * median / args.steps,
            "images_per_s": args.batch * args.steps / median, "last_loss": runner.loss}
    ours, theirs = (record["results"][k]["images_per_s"]
                    for k in ("keras_cnnkit", "keras.applications"))
    record["ratio"] = ours / theirs
    return record


def markdown(record: dict) -> str:
    """The result as a markdown table."""
    lines = [f"# DataParallel training throughput: {record['model']} on {record['device']}",
             "",
             f"{record['devices']} device(s), global batch {record['batch']}, "
             f"{record['size']}x{record['size']}, {record['classes']} classes, "
             f"{record['dtype']}; JAX {record['jax']}, Keras {record['keras']}; median of "
             f"{record['rounds']} alternating rounds of {record['steps']} steps.", "",
             "| model | params | step (ms) | images/s | last loss |",
             "|---|---:|---:|---:|---:|"]
    for kind, res in record["results"].items():
        lines.append(f"| {kind} | {res['params']:,} | {res['step_ms']:.1f} | "
                     f"{res['images_per_s']:.1f} | {res['last_loss']:.3f} |")
    lines += ["", f"keras_cnnkit / keras.applications throughput: {record['ratio']:.3f}", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run, print the table, write the JSON and markdown files (skipped, exit 0, where
    JAX is not installed: ``run_all.py`` runs every script in the TensorFlow env)."""
    args = parse_args(argv)
    try:
        import jax  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        print("bench_distribution.py: skipped, JAX is not installed")
        return 0
    record = run(args)
    text = markdown(record)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"distribution_{record['device']}_{args.model}")
    with open(stem + ".json", "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=2)
    with open(stem + ".md", "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
