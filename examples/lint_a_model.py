"""Build a deliberately inefficient CNN, lint it, fix it, and compare the two.

The model collects common habits that cost parameters and FLOPs: a 5×5 conv where two 3×3
would do (64→64: 25·64·64 = 102,400 weights against 2·9·64·64 = 73,728), a wide 3×3
conv with no 1×1 bottleneck, conv biases in front of batch norm, Dropout feeding
BatchNormalization, and a Flatten + Dense head.  The script prints the findings (one per
site: the rules proposing fixes for the same layer are its alternatives) with their
estimated savings, applies the fixes (``keras_cnnkit.rewrite.apply_report``; where
several of them touch the same layer, the recommended one), re-lints the fixed model, trains
both models briefly on the same synthetic data and times their forward passes side by
side on this machine.

Run: ``python examples/lint_a_model.py [--quick] [-q]`` (a progress bar on stderr in a
terminal).
"""
from __future__ import annotations

import argparse

import numpy as np

from keras_cnnkit import lint
from keras_cnnkit.console import import_keras
from keras_cnnkit.progress import Progress, set_quiet

#: The fixes applied: stacked 3×3 (VGG), bottleneck (ResNet), global pooling head (NIN),
#: no bias before batch norm, no dropout into batch norm.  (Depthwise-separable and
#: asymmetric forms are reported too; on a CPU their FLOP savings rarely become time
#: savings.)
FIXES = ["large-kernel", "missing-bottleneck", "flatten-dense-head", "bias-before-batchnorm",
         "dropout-before-batchnorm"]


def inefficient_model(classes: int = 10):
    """A small image classifier with one instance of each inefficiency."""
    import keras

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


def train(model, x: np.ndarray, y: np.ndarray, epochs: int, bar: Progress) -> float:
    """Train briefly (one step of ``bar``); the final training loss."""
    import keras

    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=epochs, batch_size=32, verbose=0,
                        callbacks=[bar.keras_callback(epochs)])
    return float(history.history["loss"][-1])


def main(argv=None) -> dict:
    """Lint, fix, re-lint, train and time; print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less data, fewer repeats")
    parser.add_argument("--out", default=None, help="(unused: no figure)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    set_quiet(args.quiet)

    with Progress(7, "lint_a_model") as bar:
        bar.step("importing Keras")
        keras = import_keras()
        from keras_cnnkit.bench import detect
        from keras_cnnkit.bench.timing import time_models
        from keras_cnnkit.rewrite import apply_report

        keras.utils.set_random_seed(0)
        bar.step("linting")
        model = inefficient_model()
        report = lint(model, min_impact=0)   # every finding, however small
        bar.step("fixing")
        fixed = apply_report(model, report, select=FIXES)
        fixed_report = lint(fixed, min_impact=0)

        rng = np.random.default_rng(0)
        n = 256 if args.quick else 2048
        x = rng.standard_normal((n, 32, 32, 3)).astype("float32")
        y = rng.integers(0, 10, n)
        losses = []
        for which, m in (("original", model), ("fixed", fixed)):
            bar.step(f"training the {which} model")
            losses.append(train(m, x, y, epochs=1 if args.quick else 3, bar=bar))
        bar.step("timing both models")
        (t_before, t_after), mode = time_models([model, fixed], batch=32,
                                                repeats=3 if args.quick else 10)
        bar.step("detecting the device")
        device = detect()
    print(f"{len(report.findings)} findings on {model.name}:")
    for f in report.findings:
        saving = "" if f.params_before is None else (
            f"  params {f.params_before:,} → {f.params_after:,}")
        others = ", ".join(a.finding.symbol for a in f.alternatives[1:])
        print(f"  {f.layer}: {f.code} {f.symbol}{saving}"
              + (f"  (alternatives: {others})" if others else ""))
    applied = ({f.symbol for f in report.rule_findings}
               - {f.symbol for f in fixed_report.rule_findings})
    print(f"\nfixed model: rules no longer reported: {', '.join(sorted(applied))}")
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
