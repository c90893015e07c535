"""Fixes that keep what a trained model learned, on real data (scikit-learn's digits).

1. Train a deliberately wasteful CNN on the 8×8 digits: a 5×5 conv where cheaper forms
   exist, a wide 3×3 conv with no 1×1 bottleneck, and a Flatten + Dense head (over the
   2×2 map left after two poolings, as VGG flattens its last pooled map).
2. Lint it and apply the bottleneck and head fixes with the trained weights carried into
   the new layers (``keras_cnnkit.rewrite.rewrite_with_weights``: Tucker-2 by HOSVD for
   both convs, the Dense kernel summed over positions for the pooled head), refitted by
   least squares on the training images (no labels), layer by layer.
3. Compare four points: the original; the fixed model before any fine-tuning; the fixed
   model after ``keras_cnnkit.rewrite.distill`` with 5% of the original training budget;
   and, as the control, the same fixed architecture re-initialised and trained with the
   same 5%.  Params, FLOPs (the linter's cost model), CPU latency (measured here,
   interleaved) and test accuracy.
4. Plot accuracy against FLOPs (``keep_weights.png`` in ``--out``).

The linter also proposes depthwise-separable forms (the biggest FLOP savings, rank-1
per input channel when carried).  On a CPU their FLOP savings rarely become time
savings (XLA's depthwise convolution is slow there), so, like ``lint_a_model.py``, the
example selects the bottleneck and head fixes.

Run: ``python examples/keep_weights.py [--quick] [--out DIR] [-q]`` (needs scikit-learn
and matplotlib; a progress bar on stderr in a terminal).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from keras_cnnkit import lint
from keras_cnnkit.console import import_keras
from keras_cnnkit.progress import Progress, set_quiet

#: The fixes applied.
FIXES = ("missing-bottleneck", "flatten-dense-head")

#: Rule options for this small model: ``missing-bottleneck`` proposes a bottleneck only
#: where its width would be at least 32 channels (right for ImageNet-sized networks);
#: the 64-channel convs here get the rule's usual ÷4 width, 16.
OPTIONS = {"missing-bottleneck": {"min_width": 16}}

#: The share of the original training budget (epochs × samples) that the distillation
#: and the control get.
BUDGET = 0.05


def digits(seed: int = 0) -> tuple:
    """``(x_train, x_test, y_train, y_test)``: the 1,797 8×8 digits scaled to [0, 1],
    a stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    return train_test_split(x, data.target, test_size=0.25, random_state=seed,
                            stratify=data.target)


def wasteful_cnn():
    """A digits classifier with a 5×5 conv, a wide conv without a bottleneck and a
    Flatten + Dense head."""
    import keras
    inp = keras.Input((8, 8, 1), name="digits")
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="stem")(inp)
    x = keras.layers.Conv2D(64, 5, padding="same", activation="relu", name="conv5x5")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="wide_conv")(x)
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(10, activation="softmax", name="classifier")(x)
    return keras.Model(inp, out, name="wasteful_cnn")


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy."""
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def flops(model) -> int:
    """FLOPs per image by the linter's cost model."""
    from keras_cnnkit.analysis.cost import summarize
    from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
    return summarize(graph_from_keras(model)).flops


def train(model, x, y, epochs: int, bar: Progress) -> None:
    """Adam 1e-3, batch 32, cross-entropy on the labels."""
    import keras
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0,
              callbacks=[bar.keras_callback(epochs)])


def plot(rows: list, path: str) -> None:
    """Accuracy against FLOPs, one marker per point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for (name, _, n_flops, _, acc), marker in zip(rows, "osDx"):
        ax.scatter(n_flops / 1e6, 100 * acc, marker=marker, s=60, label=name)
    ax.set_xlim(left=0)
    ax.set_xlabel("MFLOPs per image (the linter's cost model)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("digits: carried weights vs. re-initialised, 5% budget")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    """Train, fix with weights carried, distil, compare with the control; print, plot,
    assert."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="20 training epochs instead of 40, shorter timings")
    parser.add_argument("--lr", type=float, default=3e-4,
                        help="the distillation's learning rate (Adam)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split, the initialisation and the training")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"),
                        help="directory of the figure (default: examples/out)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    set_quiet(args.quiet)
    epochs = 20 if args.quick else 40
    budget = max(1, round(BUDGET * epochs))
    with Progress(7, "keep_weights") as bar:
        bar.step("importing Keras")
        keras = import_keras()
        from keras_cnnkit.bench import detect
        from keras_cnnkit.bench.timing import time_models
        from keras_cnnkit.rewrite import distill, rewrite_with_weights
        keras.utils.set_random_seed(args.seed)
        x_train, x_test, y_train, y_test = digits(args.seed)

        bar.step(f"training the original ({epochs} epochs)")
        original = wasteful_cnn()
        train(original, x_train, y_train, epochs, bar)
        bar.step("linting; fixing with the weights carried and refitted")
        report = lint(original, options=OPTIONS)
        print(f"{len(report.findings)} findings on {original.name}: "
              + ", ".join(f"{f.layer} {f.symbol}" for f in report.findings))
        carried = rewrite_with_weights(original, report.findings, select=FIXES,
                                       graph=report.graph, calibration=x_train)
        fixed = carried.model
        print(carried.format_text())
        fixed_accuracy = accuracy(fixed, x_test, y_test)

        bar.step(f"distilling ({budget} epoch{'s' * (budget > 1)})")
        distilled = fixed
        before_distill = [w.copy() for w in fixed.get_weights()]
        result = distill(original, distilled, (x_train, y_train), epochs=budget,
                         batch_size=32, learning_rate=args.lr, seed=args.seed,
                         callbacks=[bar.keras_callback(budget)])
        bar.step(f"training the re-initialised control ({budget} epoch{'s' * (budget > 1)})")
        control = keras.models.clone_model(fixed)          # same layers, fresh initialisers
        train(control, x_train, y_train, budget, bar)
        snapshot = keras.models.clone_model(fixed)
        snapshot.set_weights(before_distill)

        bar.step("timing the four models")
        models = [original, snapshot, distilled, control]
        names = ["original", "fixed, weights carried (no training)",
                 f"fixed + distill ({budget} epoch{'s' * (budget > 1)} = 5%)",
                 f"control: re-initialised + {budget} epoch{'s' * (budget > 1)}"]
        timings, mode = time_models(models, batch=256, repeats=5 if args.quick else 15,
                                    budget_s=10.0 if args.quick else 40.0)
        rows = [(name, m.count_params(), flops(m), t.median_ms, accuracy(m, x_test, y_test))
                for name, m, t in zip(names, models, timings)]
        bar.step("plotting")
        os.makedirs(args.out, exist_ok=True)
        figure = os.path.join(args.out, "keep_weights.png")
        plot(rows, figure)
    print(f"\n{'':<42} | {'params':>8} | {'MFLOPs':>7} | {'ms (b=256)':>10} | {'test acc':>8}")
    print("-" * 87)
    for name, params, n_flops, ms, acc in rows:
        print(f"{name:<42} | {params:>8,} | {n_flops / 1e6:>7.2f} | {ms:>10.2f} | "
              f"{100 * acc:>7.2f}%")
    device = detect()
    print(f"\ntimed on {device.name} ({device.kind}, {device.backend}, {mode}), "
          f"{len(x_test)} test images; distillation: {result.fidelity.summary()}")
    print(f"wrote {figure}")

    orig, before, after, ctrl = rows
    assert after[2] <= 0.5 * orig[2], "FLOPs fall by at least half"
    assert before[2] == after[2] == ctrl[2] and before[1] == after[1] == ctrl[1]
    assert after[4] > ctrl[4], "carried weights beat re-initialisation on the same budget"
    assert fixed_accuracy == before[4]
    if not args.quick:
        assert after[4] >= orig[4] - 0.01, "within 1 point of the original after distill"
        assert ctrl[4] < orig[4] - 0.01, "the control is not"
        assert after[3] < orig[3], "the fixed model runs faster on this CPU"
    return {"rows": rows, "figure": figure}


if __name__ == "__main__":
    main()
