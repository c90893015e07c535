"""A character-level text CNN in Keras: original vs 1×1 bottleneck vs global-average-pooling head.

A small character-level CNN text classifier (Embedding, two Conv1D + BatchNorm blocks, a
Flatten + Dense head with Dropout and BatchNorm) is optimised twice:

1. a 1×1 Conv1D (24 → 12) before the second conv (12 → 48, k=3) cuts that conv pair from
   24·3·48 + 48 = 3,504 parameters to (24·12 + 12) + (12·3·48 + 48) = 300 + 1,776 = 2,076
   (the 1×1 reduction of Lin et al., "Network In Network", ICLR 2014,
   https://arxiv.org/abs/1312.4400, and GoogLeNet);
2. the Flatten + Dense head is replaced by 1×1 convs and global average pooling (Network
   In Network, §3.2), which removes almost all of the head's parameters.

This script builds the three variants from ``keras_cnnkit`` blocks, prints their parameter
counts, trains each for a few epochs on a synthetic task (does a sequence contain a fixed
trigram?), prints the test accuracy, and lints each model.

Run: ``python examples/char_cnn_bottleneck.py [--quick] [--epochs N] [-q]`` (a progress
bar on stderr in a terminal).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from keras_cnnkit import lint
from keras_cnnkit.console import import_keras
from keras_cnnkit.progress import Progress, set_quiet

VOCAB, SEQ_LEN, EMBED = 32, 64, 16
TRIGRAM = (1, 2, 3)
# PyTorch's BatchNorm momentum 0.1 (the original model is PyTorch's) is Keras' 0.9.
BN = {"bn_momentum": 0.9}


def make_data(n: int, rng: np.random.Generator) -> tuple:
    """Random character sequences; label 1 where the trigram was planted."""
    x = rng.integers(4, VOCAB, size=(n, SEQ_LEN))
    y = rng.integers(0, 2, size=n)
    for i in np.flatnonzero(y):
        pos = rng.integers(0, SEQ_LEN - len(TRIGRAM))
        x[i, pos:pos + len(TRIGRAM)] = TRIGRAM
    return x, y


def build(variant: str):
    """``"original"``, ``"bottleneck"`` or ``"gap"`` (bottleneck + GAP head)."""
    import keras

    from keras_cnnkit.layers import Bottleneck1x1, ConvBNAct

    inp = keras.Input((SEQ_LEN,), dtype="int32", name="chars")
    x = keras.layers.Embedding(VOCAB, EMBED, name="embedding")(inp)
    x1 = ConvBNAct(24, 3, use_bias=True, name="cnn1", **BN)(x)
    x1 = keras.layers.MaxPooling1D(2, name="cnn1_pool")(x1)
    if variant == "original":
        x2 = ConvBNAct(48, 3, use_bias=True, name="cnn2", **BN)(x1)
    else:
        x2 = Bottleneck1x1(48, bottleneck_filters=12, kernel_size=3, use_bias=True,
                           name="cnn2", **BN)(x1)
    x2 = keras.layers.MaxPooling1D(2, name="cnn2_pool")(x2)
    if variant == "gap":
        p1 = ConvBNAct(2, 1, use_bias=True, name="prepare_output_cnn1", **BN)(x1)
        p2 = ConvBNAct(24, 1, use_bias=True, name="prepare_output_cnn2", **BN)(x2)
        p2 = keras.layers.Conv1D(2, 1, name="prepare_output_cnn2_out")(p2)
        p1 = keras.layers.GlobalAveragePooling1D(name="gap1")(p1)
        p2 = keras.layers.GlobalAveragePooling1D(name="gap2")(p2)
        out = keras.layers.Activation("softmax", name="softmax")(
            keras.layers.Add(name="add")([p1, p2]))
        return keras.Model(inp, out, name="char_cnn_gap")
    # The original head, in its own order: Linear → Dropout → BatchNorm → ReLU.
    h = keras.layers.Concatenate(name="concat")([keras.layers.Flatten(name="flat1")(x1),
                                                 keras.layers.Flatten(name="flat2")(x2)])
    h = keras.layers.Dense(128, name="linear1")(h)
    h = keras.layers.Dropout(0.3, name="linear1_dropout")(h)
    h = keras.layers.BatchNormalization(momentum=0.9, name="linear1_bn")(h)
    h = keras.layers.ReLU(name="linear1_relu")(h)
    h = keras.layers.Dense(2, name="linear2")(h)
    h = keras.layers.Dropout(0.3, name="linear2_dropout")(h)
    h = keras.layers.BatchNormalization(momentum=0.9, name="linear2_bn")(h)
    out = keras.layers.Activation("softmax", name="softmax")(h)
    return keras.Model(inp, out, name=f"char_cnn_{variant}")


def conv_pair_params(model) -> int:
    """Weights + biases of the convolutions inside block ``cnn2`` (BN excluded)."""
    import keras

    block = model.get_layer("cnn2")
    return sum(layer.count_params() for layer in block.op_layers
               if isinstance(layer, keras.layers.Conv1D))


def main(argv=None) -> dict:
    """Print parameters, accuracy and lint findings of the three variants."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, 2 epochs")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--out", default=os.path.join("examples", "out"))
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    set_quiet(args.quiet)
    n_train, epochs = (1500, 3) if args.quick else (6000, args.epochs)

    rows = {}
    with Progress(4, "char_cnn_bottleneck") as bar:
        bar.step("importing Keras")
        keras = import_keras()
        keras.utils.set_random_seed(0)
        rng = np.random.default_rng(0)
        x_train, y_train = make_data(n_train, rng)
        x_test, y_test = make_data(1000, rng)
        for variant in ("original", "bottleneck", "gap"):
            bar.step(f"training the {variant} variant")
            model = build(variant)
            model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            model.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0,
                      callbacks=[bar.keras_callback(epochs)])
            _, acc = model.evaluate(x_test, y_test, verbose=0)
            report = lint(model, min_impact=0)   # every finding, every rule's proposal
            rows[variant] = {"params": model.count_params(),
                             "conv_pair": conv_pair_params(model),
                             "accuracy": float(acc), "findings": len(report.findings),
                             "symbols": sorted({f.symbol for f in report.rule_findings})}
    print(f"{'variant':<11} | {'total params':>12} | {'cnn2 convs':>10} | {'test acc':>8} | "
          "lint findings")
    print("-" * 80)
    for variant, row in rows.items():
        print(f"{variant:<11} | {row['params']:>12,} | {row['conv_pair']:>10,} | "
              f"{row['accuracy']:>8.3f} | {row['findings']} {', '.join(row['symbols'])}")
    # The conv pair's parameters, from the formulas above.
    assert rows["original"]["conv_pair"] == 24 * 3 * 48 + 48 == 3504
    assert rows["bottleneck"]["conv_pair"] == (24 * 12 + 12) + (12 * 3 * 48 + 48) == 2076
    assert rows["gap"]["params"] < rows["bottleneck"]["params"] / 10
    assert "flatten-dense-head" in rows["original"]["symbols"]
    assert "flatten-dense-head" not in rows["gap"]["symbols"]
    assert "dropout-before-batchnorm" in rows["original"]["symbols"]
    assert all(row["accuracy"] > 0.6 for row in rows.values()), rows
    return rows


if __name__ == "__main__":
    main()
