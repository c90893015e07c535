"""The anatomy of VGG16 — activation memory and parameters per layer — from the linter's
cost model, then the linter's findings on VGG16 with before/after totals.

For one 224×224 image, each layer of VGG16 (configuration D of Simonyan & Zisserman,
"Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015, Table 1,
https://arxiv.org/abs/1409.1556) produces H·W·C values and holds k·k·C_in·C_out weights.
The table below checks the cost model against those formulas, row by row, and the two
conclusions they lead to: the first two conv layers hold most of the activation memory
(224·224·64 = 3,211,264 values each), the fully connected head most of the parameters
(fc1 alone 7·7·512·4096 = 102,760,448 weights); one forward pass writes about 61 MB of
activations and the parameters take about 528 MiB (float32, 4 bytes each).

Run: ``python examples/vgg16_anatomy.py [-q]`` (a progress bar on stderr in a terminal).
"""
from __future__ import annotations

import argparse

from keras_cnnkit.console import import_keras
from keras_cnnkit.progress import Progress, set_quiet

#: VGG16's rows: (our layer name, the paper's name, activation elements H·W·C, weights
#: k·k·C_in·C_out, biases left out).
VGG16_TABLE = [
    ("input_layer", "input", 224 * 224 * 3, 0),
    ("block1_conv1", "conv3-64", 224 * 224 * 64, 64 * 3 * 3 * 3),
    ("block1_conv2", "conv3-64", 224 * 224 * 64, 64 * 3 * 3 * 64),
    ("block1_pool", "maxpool", 112 * 112 * 64, 0),
    ("block2_conv1", "conv3-128", 112 * 112 * 128, 128 * 3 * 3 * 64),
    ("block2_conv2", "conv3-128", 112 * 112 * 128, 128 * 3 * 3 * 128),
    ("block2_pool", "maxpool", 56 * 56 * 128, 0),
    ("block3_conv1", "conv3-256", 56 * 56 * 256, 256 * 3 * 3 * 128),
    ("block3_conv2", "conv3-256", 56 * 56 * 256, 256 * 3 * 3 * 256),
    ("block3_conv3", "conv3-256", 56 * 56 * 256, 256 * 3 * 3 * 256),
    ("block3_pool", "maxpool", 28 * 28 * 256, 0),
    ("block4_conv1", "conv3-512", 28 * 28 * 512, 512 * 3 * 3 * 256),
    ("block4_conv2", "conv3-512", 28 * 28 * 512, 512 * 3 * 3 * 512),
    ("block4_conv3", "conv3-512", 28 * 28 * 512, 512 * 3 * 3 * 512),
    ("block4_pool", "maxpool", 14 * 14 * 512, 0),
    ("block5_conv1", "conv3-512", 14 * 14 * 512, 512 * 3 * 3 * 512),
    ("block5_conv2", "conv3-512", 14 * 14 * 512, 512 * 3 * 3 * 512),
    ("block5_conv3", "conv3-512", 14 * 14 * 512, 512 * 3 * 3 * 512),
    ("block5_pool", "maxpool", 7 * 7 * 512, 0),
    ("fc1", "FC-4096", 4096, 7 * 7 * 512 * 4096),
    ("fc2", "FC-4096", 4096, 4096 * 4096),
    ("predictions", "FC-1000", 1000, 4096 * 1000),
]


def _bias(row) -> int:
    """Bias count of a conv/dense row (the table counts weights only)."""
    return row.output_shape[-1] if row.op in ("conv", "dense") else 0


def main(argv=None) -> dict:
    """Print the table and the findings; assert the formulas and the conclusions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="(no-op: it is quick)")
    parser.add_argument("--out", default=None, help="(unused: no figure)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    set_quiet(parser.parse_args(argv).quiet)

    with Progress(5, "vgg16_anatomy") as bar:
        bar.step("importing Keras")
        import_keras()
        from keras_cnnkit import lint
        from keras_cnnkit.models import build_vgg16
        from keras_cnnkit.rewrite import apply_report

        bar.step("building VGG16")
        model = build_vgg16(weights=None)
        bar.step("linting")
        report = lint(model)
        bar.step("applying two fixes")
        fixed = apply_report(model, report, select=["flatten-dense-head", "missing-bottleneck"])
        bar.step("linting the fixed model")
        after = lint(fixed).summary
    summary = report.summary
    print(f"{'layer':<13} {'VGG16':<9} | {'activations':>12} | {'weights':>12} | "
          f"{'bias':>5} | {'k·k·Cin·Cout':>12}")
    print("-" * 76)
    memory = {}
    for name, label, elements_formula, weights_formula in VGG16_TABLE:
        row = summary.node(name)
        elements = row.cost.activation_bytes // 4
        weights = row.cost.params - _bias(row)
        memory[name] = elements
        print(f"{name:<13} {label:<9} | {elements:>12,} | {weights:>12,} | {_bias(row):>5,} | "
              f"{weights_formula:>12,}")
        assert (elements, weights) == (elements_formula, weights_formula), name
    total_mb = sum(memory.values()) * 4 / 1e6
    params_mib = summary.params * 4 / 2 ** 20
    head = sum(summary.node(n).cost.params for n in ("fc1", "fc2", "predictions"))
    print(f"\nforward activations: {total_mb:.1f} MB per image; parameters: "
          f"{summary.params:,} = {params_mib:.0f} MiB (float32); Flatten+Dense head: "
          f"{head / summary.params:.1%} of the parameters")
    largest = sorted(memory, key=memory.get, reverse=True)[:2]
    assert set(largest) == {"block1_conv1", "block1_conv2"}, largest
    assert 60 <= total_mb < 62 and 526 <= params_mib < 530
    assert head / summary.params > 0.85

    print(f"\n{'finding':<46} {'layer':<13} | {'params before → after':>25}")
    print("-" * 88)
    for f in report.findings:
        if f.params_before is not None and f.replacement is not None:
            print(f"{f.code + ' ' + f.symbol:<46} {f.layer:<13} | "
                  f"{f.params_before:>11,} → {f.params_after:>11,}")
    print(f"\nwhole model with flatten-dense-head and missing-bottleneck fixes applied: "
          f"params {summary.params:,} → {after.params:,}, "
          f"FLOPs {summary.flops:,} → {after.flops:,} (needs retraining)")
    (fc1,) = report.by_rule("flatten-dense-head")
    assert (fc1.params_before, fc1.params_after) == (102_764_544, 2_101_248)
    assert after.params < summary.params - 100_000_000
    return {"params": summary.params, "params_fixed": after.params}


if __name__ == "__main__":
    main()
