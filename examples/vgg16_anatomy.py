"""Seed 003's anatomy of VGG16 — activation memory and parameters per layer — from the
linter's cost model, then the linter's findings on VGG16 with before/after totals.

Seed 003 tabulates, for one 224×224 image, the values each layer produces and the weights
it holds, and concludes: the first two conv layers hold most of the activation memory, the
fully connected head most of the parameters (FC6 alone 7·7·512·4096 = 102,760,448
weights, which the seed writes "98M" counting M as 2^20); a forward pass needs at least
60 MB and the parameters at least 526 MB (float32).

Run: ``python examples/vgg16_anatomy.py``.
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_cnnkit import lint  # noqa: E402  pylint: disable=wrong-import-position
from keras_cnnkit.models import build_vgg16  # noqa: E402  pylint: disable=wrong-import-position
from keras_cnnkit.rewrite import apply_report  # noqa: E402  pylint: disable=wrong-import-position

#: Seed 003's rows: (our layer name, seed label, activation elements, weight formula).
SEED_TABLE = [
    ("input_layer", "Input", 224 * 224 * 3, 0),
    ("block1_conv1", "Conv1-1", 224 * 224 * 64, 64 * 3 * 3 * 3),
    ("block1_conv2", "Conv1-2", 224 * 224 * 64, 64 * 3 * 3 * 64),
    ("block1_pool", "MaxPool1", 112 * 112 * 64, 0),
    ("block2_conv1", "Conv2-1", 112 * 112 * 128, 128 * 3 * 3 * 64),
    ("block2_conv2", "Conv2-2", 112 * 112 * 128, 128 * 3 * 3 * 128),
    ("block2_pool", "MaxPool2", 56 * 56 * 128, 0),
    ("block3_conv1", "Conv3-1", 56 * 56 * 256, 256 * 3 * 3 * 128),
    ("block3_conv2", "Conv3-2", 56 * 56 * 256, 256 * 3 * 3 * 256),
    ("block3_conv3", "Conv3-3", 56 * 56 * 256, 256 * 3 * 3 * 256),
    ("block3_pool", "MaxPool3", 28 * 28 * 256, 0),
    ("block4_conv1", "Conv4-1", 28 * 28 * 512, 512 * 3 * 3 * 256),
    ("block4_conv2", "Conv4-2", 28 * 28 * 512, 512 * 3 * 3 * 512),
    ("block4_conv3", "Conv4-3", 28 * 28 * 512, 512 * 3 * 3 * 512),
    ("block4_pool", "MaxPool4", 14 * 14 * 512, 0),
    ("block5_conv1", "Conv5-1", 14 * 14 * 512, 512 * 3 * 3 * 512),
    ("block5_conv2", "Conv5-2", 14 * 14 * 512, 512 * 3 * 3 * 512),
    ("block5_conv3", "Conv5-3", 14 * 14 * 512, 512 * 3 * 3 * 512),
    ("block5_pool", "MaxPool5", 7 * 7 * 512, 0),
    ("fc1", "FC6", 4096, 7 * 7 * 512 * 4096),
    ("fc2", "FC7", 4096, 4096 * 4096),
    ("predictions", "FC8", 1000, 4096 * 1000),
]


def _bias(row) -> int:
    """Bias count of a conv/dense row (the seed counts weights only)."""
    return row.output_shape[-1] if row.op in ("conv", "dense") else 0


def main(argv=None) -> dict:
    """Print the table and the findings; assert the seed's numbers and conclusions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="(no-op: it is quick)")
    parser.add_argument("--out", default=None, help="(unused: no figure)")
    parser.parse_args(argv)

    model = build_vgg16(weights=None)
    report = lint(model)
    summary = report.summary
    print(f"{'layer':<13} {'seed':<9} | {'activations':>12} | {'weights':>12} | "
          f"{'bias':>5} | {'seed weights':>12}")
    print("-" * 76)
    memory = {}
    for name, label, seed_mem, seed_weights in SEED_TABLE:
        row = summary.node(name)
        elements = row.cost.activation_bytes // 4
        weights = row.cost.params - _bias(row)
        memory[name] = elements
        print(f"{name:<13} {label:<9} | {elements:>12,} | {weights:>12,} | {_bias(row):>5,} | "
              f"{seed_weights:>12,}")
        assert (elements, weights) == (seed_mem, seed_weights), name
    total_mb = sum(memory.values()) * 4 / 1e6
    params_mib = summary.params * 4 / 2 ** 20
    head = sum(summary.node(n).cost.params for n in ("fc1", "fc2", "predictions"))
    print(f"\nforward activations: {total_mb:.1f} MB per image (seed: at least 60 MB); "
          f"parameters: {summary.params:,} = {params_mib:.0f} MiB (seed: at least 526 MB); "
          f"Flatten+Dense head: {head / summary.params:.1%} of the parameters")
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
    fixed = apply_report(model, report, select=["flatten-dense-head", "missing-bottleneck"])
    after = lint(fixed).summary
    print(f"\nwhole model with flatten-dense-head and missing-bottleneck fixes applied: "
          f"params {summary.params:,} → {after.params:,}, "
          f"FLOPs {summary.flops:,} → {after.flops:,} (needs retraining)")
    (fc1,) = report.by_rule("flatten-dense-head")
    assert (fc1.params_before, fc1.params_after) == (102_764_544, 2_101_248)
    assert after.params < summary.params - 100_000_000
    return {"params": summary.params, "params_fixed": after.params}


if __name__ == "__main__":
    main()
