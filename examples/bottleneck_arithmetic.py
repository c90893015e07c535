"""Bottleneck and depthwise-separable arithmetic, built from blocks and checked three ways.

A 256 → 256 3×3 conv has 256·3·3·256 = 589,824 weights; a 1×1 → 64, 3×3 64 → 64, 1×1 →
256 bottleneck (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
§4.1) has 256·64 + 64·9·64 + 64·256 = 69,632.  A 64 → 256 3×3 conv has 64·9·256 =
147,456 weights; its depthwise + pointwise form 64·9 + 64·256 = 576 + 16,384 = 16,960.
(A 3 → 256 RGB stem, 6,912 → 795 on paper, gets no linter proposal: MobileNet keeps its
stem a full conv.)  A standard conv costs D_K²·C_I·D_O²·C_O multiply-adds, the
depthwise-separable form D_O²·C_I·(D_K² + C_O): a cost ratio of 1/D_K² + 1/C_O (Howard
et al., "MobileNets", 2017, §3.1).

Each number is computed three ways and printed side by side: the formula, Keras'
``count_params()`` of the model built from ``keras_cnnkit`` blocks, and the linter's
before/after figures for the finding on the plain conv (its cost model).

Run: ``python examples/bottleneck_arithmetic.py [-q]`` (a progress bar on stderr in a
terminal).
"""
from __future__ import annotations

import argparse

from keras_cnnkit import lint
from keras_cnnkit.console import import_keras
from keras_cnnkit.progress import Progress, set_quiet

PLAIN = {"use_bias": False, "padding": "same"}
#: (D_K, C_I, C_O) of the cost-ratio table.
RATIO_CASES = ((3, 32, 64), (3, 256, 256), (5, 64, 128), (7, 16, 512))


def one(layer, shape):
    """A model holding one layer on an input of ``shape``."""
    import keras

    inp = keras.Input(shape)
    return keras.Model(inp, layer(inp))


def finding(model, symbol):
    """The single finding of rule ``symbol`` on ``model``."""
    (found,) = lint(model, select=[symbol], min_impact=0).rule_findings
    return found


def macs(model) -> int:
    """Multiply-accumulates of a model, from the linter's cost model."""
    return lint(model, select=[]).summary.macs


def main(argv=None) -> list:
    """Print the comparison tables and assert every row agrees."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="(no-op: it is quick)")
    parser.add_argument("--out", default=None, help="(unused: no figure)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    set_quiet(parser.parse_args(argv).quiet)

    with Progress(3 + len(RATIO_CASES), "bottleneck_arithmetic") as bar:
        bar.step("importing Keras")
        keras = import_keras()
        from keras_cnnkit.layers import Bottleneck1x1, DepthwiseSeparableConv

        rows = []
        bar.step("bottleneck 256→64→64→256")
        conv = one(keras.layers.Conv2D(256, 3, **PLAIN), (56, 56, 256))
        neck = one(Bottleneck1x1(256, bottleneck_filters=64, expand=True, use_bn=False,
                                 use_bias=False, activation="relu"), (56, 56, 256))
        found = finding(conv, "missing-bottleneck")
        rows.append(("bottleneck 256→64→64→256", 256 * 3 * 3 * 256,
                     256 * 64 + 64 * 9 * 64 + 64 * 256,
                     (conv.count_params(), neck.count_params()),
                     (found.params_before, found.params_after)))

        bar.step("depthwise separable 64→256")
        conv = one(keras.layers.Conv2D(256, 3, **PLAIN), (56, 56, 64))
        sep = one(DepthwiseSeparableConv(256, 3, use_bn=False, activation=None,
                                         use_bias=False), (56, 56, 64))
        found = finding(conv, "depthwise-separable-candidate")
        rows.append(("depthwise separable 64→256", 64 * 3 * 3 * 256, 64 * 3 * 3 + 64 * 256,
                     (conv.count_params(), sep.count_params()),
                     (found.params_before, found.params_after)))

        ratios = []
        for d_k, c_i, c_o in RATIO_CASES:
            bar.step(f"cost ratio at D_K={d_k}, C_I={c_i}, C_O={c_o}")
            standard = macs(one(keras.layers.Conv2D(c_o, d_k, **PLAIN), (14, 14, c_i)))
            separable = macs(one(DepthwiseSeparableConv(c_o, d_k, use_bn=False,
                                                        activation=None, use_bias=False),
                                 (14, 14, c_i)))
            ratios.append((d_k, c_i, c_o, standard, separable))

    print(f"{'comparison':<28} | {'formula':>17} | {'Keras count_params':>19} | "
          f"{'linter finding':>17}")
    print("-" * 92)
    for name, before, after, keras_counts, lint_counts in rows:
        print(f"{name:<28} | {before:>7,} → {after:>7,} | {keras_counts[0]:>8,} → "
              f"{keras_counts[1]:>8,} | {lint_counts[0]:>7,} → {lint_counts[1]:>7,}")
        assert keras_counts == lint_counts == (before, after), (name, keras_counts, lint_counts)

    print()
    print(f"{'D_K':>4} {'C_I':>5} {'C_O':>5} | {'MACs standard':>14} | {'MACs separable':>14} | "
          f"{'ratio':>8} | {'1/D_K² + 1/C_O':>14}")
    print("-" * 80)
    for d_k, c_i, c_o, standard, separable in ratios:
        ratio, expected = separable / standard, 1 / d_k ** 2 + 1 / c_o
        print(f"{d_k:>4} {c_i:>5} {c_o:>5} | {standard:>14,} | {separable:>14,} | "
              f"{ratio:>8.5f} | {expected:>14.5f}")
        # D_K²·C_I·D_O²·C_O against D_O²·C_I·(D_K² + C_O), D_O = 14.
        assert standard == d_k ** 2 * c_i * 14 * 14 * c_o
        assert separable == 14 * 14 * c_i * (d_k ** 2 + c_o)
        assert abs(ratio - expected) < 1e-12
    return rows


if __name__ == "__main__":
    main()
