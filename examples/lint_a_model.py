"""Build a deliberately inefficient CNN, lint it, fix it, and compare the two.

The model collects the habits the seeds warn about: a 5×5 conv where two 3×3 would do, a
wide 3×3 conv with no 1×1 bottleneck, conv biases in front of batch norm, Dropout feeding
BatchNormalization, and a Flatten + Dense head.  The script prints the findings (one per
site: the rules proposing fixes for the same layer are its alternatives) with their
estimated savings, applies the seeds' fixes (``keras_cnnkit.rewrite.apply_report``; where
several of them touch the same layer, the recommended one), re-lints the fixed model,
trains both models briefly on the same synthetic data and times their forward passes side
by side on this machine.

Run: ``python examples/lint_a_model.py [--quick]``.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

from keras_cnnkit import lint  # noqa: E402  pylint: disable=wrong-import-position
from keras_cnnkit.bench import detect  # noqa: E402  pylint: disable=wrong-import-position
from keras_cnnkit.bench.timing import time_models  # noqa: E402  pylint: disable=wrong-import-position
from keras_cnnkit.rewrite import apply_report  # noqa: E402  pylint: disable=wrong-import-position


#: The fixes applied: the seeds' techniques.  (Depthwise-separable and asymmetric forms are
#: reported too; on a CPU their FLOP savings rarely become time savings.)
FIXES = ["large-kernel", "missing-bottleneck", "flatten-dense-head", "bias-before-batchnorm",
         "dropout-before-batchnorm"]


def inefficient_model(classes: int = 10) -> keras.Model:
    """A small image classifier with one instance of each inefficiency."""
    inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Conv2D(64, 3, padding="same", name="stem_conv")(inp)    # bias before BN
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = keras.layers.Conv2D(64, 5, padding="same", activation="relu", name="conv5x5")(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(256, 3, padding="same", activation="relu", name="widen")(x)
    x = keras.layers.Conv2D(256, 3, padding="same", activation="relu", name="wide_conv")(x)
    x = keras.layers.MaxPooling2D(name="pool2")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)                      # dropout → BN
    x = keras.layers.Flatten(name="flatten")(x)                             # Flatten + Dense
    out = keras.layers.Dense(classes, activation="softmax", name="classifier")(x)
    return keras.Model(inp, out, name="inefficient_cnn")


def train(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    """Train briefly; the final training loss."""
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)
    return float(history.history["loss"][-1])


def main(argv=None) -> dict:
    """Lint, fix, re-lint, train and time; print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less data, fewer repeats")
    parser.add_argument("--out", default=None, help="(unused: no figure)")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)

    model = inefficient_model()
    report = lint(model, min_impact=0)   # every finding, however small
    print(f"{len(report.findings)} findings on {model.name}:")
    for f in report.findings:
        saving = "" if f.params_before is None else (
            f"  params {f.params_before:,} → {f.params_after:,}")
        others = ", ".join(a.finding.symbol for a in f.alternatives[1:])
        print(f"  {f.layer}: {f.code} {f.symbol}{saving}"
              + (f"  (alternatives: {others})" if others else ""))

    fixed = apply_report(model, report, select=FIXES)
    fixed_report = lint(fixed, min_impact=0)
    applied = ({f.symbol for f in report.rule_findings}
               - {f.symbol for f in fixed_report.rule_findings})
    print(f"\nfixed model: rules no longer reported: {', '.join(sorted(applied))}")

    rng = np.random.default_rng(0)
    n = 256 if args.quick else 2048
    x = rng.standard_normal((n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, n)
    losses = [train(m, x, y, epochs=1 if args.quick else 3) for m in (model, fixed)]
    (t_before, t_after), mode = time_models([model, fixed], batch=32,
                                            repeats=3 if args.quick else 10)
    device = detect()
    rows = [("params", model.count_params(), fixed.count_params()),
            ("FLOPs (cost model)", report.summary.flops, fixed_report.summary.flops),
            ("warnings", sum(f.severity >= 2 for f in report.findings),
             sum(f.severity >= 2 for f in fixed_report.findings))]
    print(f"\n{'':<20} | {'original':>14} | {'fixed':>14}")
    print("-" * 54)
    for name, before, after in rows:
        print(f"{name:<20} | {before:>14,} | {after:>14,}")
    print(f"{'final train loss':<20} | {losses[0]:>14.3f} | {losses[1]:>14.3f}")
    print(f"{'forward ms (b=32)':<20} | {t_before.median_ms:>14.2f} | {t_after.median_ms:>14.2f}")
    speedup = t_before.median_ms / t_after.median_ms
    print(f"\ntimed on {device.name} ({device.kind}, {device.backend}, {mode}): speed-up "
          f"{speedup:.2f}×.  FLOPs are not time: depthwise convolutions are memory-bound, "
          "so a fix that cuts FLOPs tenfold may run no faster (ShuffleNet V2, guideline 1); "
          "`cnnkit-lint --benchmark` measures each fix.  The fixed model needs retraining.")
    remaining = [f"{f.layer}: {f.symbol}" for f in fixed_report.findings if f.severity >= 2]
    print(f"still reported on the fixed model: {', '.join(remaining) or 'nothing'}")
    assert fixed.count_params() < model.count_params() / 2
    assert fixed_report.summary.flops < report.summary.flops
    assert set(FIXES) - {"large-kernel"} <= applied, applied
    assert all(np.isfinite(losses))
    assert [t.shape for t in fixed.outputs] == [t.shape for t in model.outputs]
    return {"params": rows[0][1:], "flops": rows[1][1:]}


if __name__ == "__main__":
    main()
