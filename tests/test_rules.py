"""Each lint rule on positive, negative and near-miss models, and the seeds' numbers.

Expected before/after figures are the seeds' own arithmetic (``SEEDS.md``), the issue's,
or ``count_params()`` of the replacement built in Keras here.
"""
import math
from fractions import Fraction

import keras
import pytest
from keras import layers as L

from keras_cnnkit.lint.api import lint
from keras_cnnkit import layers as K
from keras_cnnkit.analysis.cost import nodes_cost
from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.lint import registry
from keras_cnnkit.lint.findings import DOC_SECTIONS, Severity
from keras_cnnkit.lint.sites import rule_findings


def model_of(input_shape, *layers, **input_kwargs):
    """A Sequential-style functional model of ``layers`` on ``input_shape``."""
    x = keras.Input(input_shape, **input_kwargs)
    y = x
    for layer in layers:
        y = layer(y)
    return keras.Model(x, y)


def count(input_shape, *layers):
    """``count_params()`` of ``layers`` stacked on ``input_shape`` (a replacement, built)."""
    return model_of(input_shape, *layers).count_params()


def findings(model, rule, **options):
    """The findings of one rule on ``model``, with the replacement checked for shape."""
    report = lint(model, select=[rule],
                               options={rule: options} if options else None, min_impact=0)
    found = rule_findings(report.findings)
    for finding in found:
        check_replacement(report.graph, finding)
    return found


def check_replacement(graph, finding):
    """A fix's fragment reads existing nodes, replaces its output's shape, and its
    before/after figures are the cost model's over removed vs new nodes."""
    rep = finding.replacement
    if rep is None:
        assert finding.params_before is None and finding.flops_after is None
        return
    names = set(graph.nodes) | {n.name for n in rep.nodes}
    for node in rep.nodes:
        assert set(node.inputs) <= names
    out = next((n for n in rep.nodes if n.name == rep.output), None) or graph[rep.output]
    assert out.output_shape == graph[rep.removed[-1]].output_shape
    before = nodes_cost(graph[n] for n in rep.removed)
    after = nodes_cost(rep.nodes)
    assert (finding.params_before, finding.params_after) == (before.params, after.params)
    assert (finding.flops_before, finding.flops_after) == (before.flops, after.flops)
    assert (finding.macs_before, finding.macs_after) == (before.macs, after.macs)


# --- rule metadata ---------------------------------------------------------------------

EXPECTED = {
    "CNK001": ("opaque-layer", Severity.INFO),
    "CNK101": ("large-kernel", Severity.WARNING),
    "CNK102": ("asymmetric-factorization", Severity.INFO),
    "CNK103": ("missing-bottleneck", Severity.WARNING),
    "CNK104": ("depthwise-separable-candidate", Severity.INFO),
    "CNK105": ("flatten-dense-head", Severity.WARNING),
    "CNK106": ("relu-after-projection", Severity.WARNING),
    "CNK107": ("group-conv-without-shuffle", Severity.WARNING),
    "CNK108": ("bias-before-batchnorm", Severity.WARNING),
    "CNK109": ("dropout-before-batchnorm", Severity.WARNING),
    "CNK110": ("plain-deep-stack", Severity.INFO),
    "CNK111": ("tensor-core-alignment", Severity.INFO),
    "CNK112": ("mergeable-branches", Severity.WARNING),
}


#: ruff's optional sections, each after the required one named (ruff's order).
OPTIONAL_SECTIONS = {"Known problems": "Why is this bad?", "Fix safety": "Use instead"}


def test_rule_codes_symbols_severities_and_docs():
    """The fixed codes and symbols, and every docstring section, non-empty, in ruff's
    order (*Known problems* and *Fix safety* where a rule has them)."""
    rules = {r.code: r for r in registry.all_rules()}
    assert {c: (r.symbol, r.severity) for c, r in rules.items()} == EXPECTED
    for rule in rules.values():
        docs = rule.docs()
        assert [s for s in docs if s not in OPTIONAL_SECTIONS] == list(DOC_SECTIONS), \
            rule.symbol
        for section, after in OPTIONAL_SECTIONS.items():
            if section in docs:
                assert list(docs).index(section) == list(docs).index(after) + 1, rule.symbol
        assert all(docs.values()) and rule.summary()
        assert rule.__module__ == "lint_rules." + rule.symbol.replace("-", "_")


# --- CNK101 large-kernel -----------------------------------------------------------------

def test_large_kernel_64_to_64_5x5():
    """The issue's figure: 102,400 → 73,728 weights."""
    model = model_of((32, 32, 64), L.Conv2D(64, 5, padding="same", use_bias=False))
    (f,) = findings(model, "large-kernel")
    stacked = count((32, 32, 64), L.Conv2D(64, 3, padding="same", use_bias=False),
                    L.Conv2D(64, 3, padding="same", use_bias=False))
    assert (f.params_before, f.params_after) == (102_400, 73_728) == (5 * 5 * 64 * 64, stacked)
    assert (f.macs_before, f.macs_after) == (32 * 32 * 102_400, 32 * 32 * 73_728)
    assert f.severity == Severity.WARNING and f.needs_retraining


def test_large_kernel_seeds():
    """Seed 003: (7,7,3) → 3 filters, 225 → 162; seeds 001/004: 25 vs 18 per pair."""
    (f,) = findings(model_of((7, 7, 3), L.Conv2D(3, 5, use_bias=False)), "large-kernel")
    assert (f.params_before, f.params_after) == (3 * 5 * 5 * 3, 6 * 3 * 3 * 3) == (225, 162)
    assert f.replacement.nodes[-1].output_shape == (3, 3, 3)
    (f,) = findings(model_of((9, 9, 1), L.Conv2D(1, 5, padding="same", use_bias=False)),
                    "large-kernel")
    assert (f.params_before, f.params_after) == (25, 18)


def test_large_kernel_7x7_and_stride():
    """⌈(7−1)/2⌉ = 3 stacked 3×3; a strided 5×5 keeps its output shape."""
    (f,) = findings(model_of((16, 16, 64), L.Conv2D(64, 7, padding="same", use_bias=False)),
                    "large-kernel")
    assert len(f.replacement.nodes) == 3 and f.params_after == 3 * 9 * 64 * 64
    (f,) = findings(model_of((16, 16, 64), L.Conv2D(64, 5, strides=2, padding="same")),
                    "large-kernel")
    assert f.replacement.nodes[0].attrs["strides"] == (2, 2)
    assert f.params_after == count((16, 16, 64), L.Conv2D(64, 3, strides=2, padding="same"),
                                   L.Conv2D(64, 3, padding="same"))


def test_large_kernel_silent_on_rgb_stem_and_near_misses():
    """ResNet's 7×7 stem on 3 channels: stacking costs more, no finding; nor on 3×3,
    dilated, depthwise or non-square kernels."""
    stem = model_of((224, 224, 3), L.Conv2D(64, 7, strides=2, padding="same"))
    assert not findings(stem, "large-kernel")
    for layer in (L.Conv2D(64, 3, padding="same"), L.Conv2D(64, 5, dilation_rate=2),
                  L.DepthwiseConv2D(5, padding="same"), L.Conv2D(64, (1, 7), padding="same")):
        assert not findings(model_of((32, 32, 64), layer), "large-kernel")


# --- CNK102 asymmetric-factorization ------------------------------------------------------

def test_asymmetric_factorization_on_a_17x17_map():
    """A 7×7 192→192 conv on 17×17 (InceptionV3's grid) → 1×7 + 7×1."""
    (f,) = findings(model_of((17, 17, 192), L.Conv2D(192, 7, padding="same")),
                    "asymmetric-factorization")
    pair = count((17, 17, 192), L.Conv2D(192, (1, 7), padding="same"),
                 L.Conv2D(192, (7, 1), padding="same"))
    assert (f.params_before, f.params_after) == (192 * 49 * 192 + 192, pair)
    assert f.severity == Severity.INFO


def test_asymmetric_factorization_only_on_medium_maps():
    """35×35 and 8×8 maps, strided convs and already-asymmetric kernels: none."""
    assert not findings(model_of((35, 35, 64), L.Conv2D(64, 3, padding="same")),
                    "asymmetric-factorization")
    assert not findings(model_of((8, 8, 64), L.Conv2D(64, 3, padding="same")),
                    "asymmetric-factorization")
    assert not findings(model_of((34, 34, 64), L.Conv2D(64, 3, strides=2, padding="same")),
                    "asymmetric-factorization")
    assert not findings(model_of((17, 17, 64), L.Conv2D(64, (1, 7), padding="same")),
                    "asymmetric-factorization")


# --- CNK103 missing-bottleneck -------------------------------------------------------------

def test_missing_bottleneck_seeds_001_004():
    """256→256 3×3: 589,824 → 69,632 (1×1→64, 3×3 64→64, 1×1→256)."""
    (f,) = findings(model_of((14, 14, 256), L.Conv2D(256, 3, padding="same", use_bias=False)),
                    "missing-bottleneck")
    bottleneck = count((14, 14, 256), L.Conv2D(64, 1, use_bias=False),
                       L.Conv2D(64, 3, padding="same", use_bias=False),
                       L.Conv2D(256, 1, use_bias=False))
    assert (f.params_before, f.params_after) == (589_824, 69_632) == (256 * 9 * 256, bottleneck)


def test_missing_bottleneck_seed_000():
    """24→48 3×3: 10,416 → 5,520 + the 1×1's 12 biases; Char-CNN Conv1D: 3,504 → 2,076.
    Their 12-wide bottlenecks are below the default ``min_width`` (32): silent unless
    it is lowered."""
    seed = model_of((50, 50, 24), L.Conv2D(48, 3, padding="same"))
    char_cnn = model_of((150, 24), L.Conv1D(48, 3, padding="same"))
    assert not findings(seed, "missing-bottleneck")
    assert not findings(char_cnn, "missing-bottleneck")
    (f,) = findings(seed, "missing-bottleneck", min_width=12)
    assert f.params_before == 24 * 3 * 3 * 48 + 48 == 10_416
    assert f.params_after - 12 == 24 * 12 + 12 * 3 * 3 * 48 + 48 == 5_520
    (f,) = findings(char_cnn, "missing-bottleneck", min_width=12)
    assert (f.params_before, f.params_after) == (3_504, 300 + 1_776)


def test_missing_bottleneck_widening_at_the_minimum_width():
    """64→128 3×3 doubles the width: 1×1 reduce to 32, then the 3×3 to 128."""
    (f,) = findings(model_of((28, 28, 64), L.Conv2D(128, 3, padding="same")),
                    "missing-bottleneck")
    reduced = count((28, 28, 64), L.Conv2D(32, 1), L.Conv2D(128, 3, padding="same"))
    assert (f.params_before, f.params_after) == (64 * 9 * 128 + 128, reduced)
    assert f.measurements == {"form": "reduce", "width": 32}


def test_missing_bottleneck_silent_inside_bottlenecks():
    """A 3×3 fed by a 1×1 (ResNet, Inception's double 3×3 branch) and narrow convs: none."""
    resnet = model_of((14, 14, 256), L.Conv2D(64, 1), L.BatchNormalization(), L.ReLU(),
                      L.Conv2D(64, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
                      L.Conv2D(256, 1))
    assert not findings(resnet, "missing-bottleneck")
    inception = model_of((35, 35, 288), L.Conv2D(64, 1), L.ReLU(),
                         L.Conv2D(96, 3, padding="same"), L.ReLU(),
                         L.Conv2D(96, 3, padding="same"))
    assert not findings(inception, "missing-bottleneck")
    assert not findings(model_of((14, 14, 8), L.Conv2D(8, 3, padding="same")),
                    "missing-bottleneck")
    assert not findings(model_of((14, 14, 256), L.Conv2D(256, 1)), "missing-bottleneck")


# --- CNK104 depthwise-separable-candidate ----------------------------------------------------

def test_depthwise_separable_seed_003_ratio():
    """64→256 3×3: 147,456 → 576 + 16,384 = 16,960; the MAC ratio is 1/D_K² + 1/C_O
    (seed 003)."""
    (f,) = findings(model_of((32, 32, 64), L.Conv2D(256, 3, padding="same", use_bias=False)),
                    "depthwise-separable-candidate")
    separable = count((32, 32, 64), L.DepthwiseConv2D(3, padding="same", use_bias=False),
                      L.Conv2D(256, 1, use_bias=False))
    assert (f.params_before, f.params_after) == (147_456, 16_960) == (64 * 9 * 256, separable)
    assert Fraction(f.macs_after, f.macs_before) == Fraction(1, 9) + Fraction(1, 256)
    assert f.macs_before == 32 * 32 * 64 * 9 * 256
    assert f.severity == Severity.INFO


def test_depthwise_separable_channels_first_with_biases():
    """(32,5,5) input to 64 channels: 18,496 → 288 + 32 + 2,048 + 64 = 2,432 (biases on
    both convs, as seed 000 counts them)."""
    model = model_of((32, 5, 5), L.Conv2D(64, 3, data_format="channels_first"))
    (f,) = findings(model, "depthwise-separable-candidate")
    assert (f.params_before, f.params_after) == (32 * 9 * 64 + 64, 32 * 9 + 32 + 32 * 64 + 64)
    assert (f.params_before, f.params_after) == (18_496, 2_432)
    assert f.replacement.nodes[-1].output_shape == (64, 3, 3)


def test_depthwise_separable_silent_on_rgb_stems_and_seed_examples():
    """The seeds' examples are RGB stems — 3→256 3×3 (6,912 → 795), (3,5,5) → 4
    (112 → 46) — and any conv over ≤ 4 channels: silent, whatever the options."""
    for model in (model_of((32, 32, 3), L.Conv2D(256, 3, padding="same", use_bias=False)),
                  model_of((3, 5, 5), L.Conv2D(4, 3, data_format="channels_first")),
                  model_of((32, 32, 4), L.Conv2D(64, 5, padding="same"))):
        assert not findings(model, "depthwise-separable-candidate", min_channels=0)


def test_depthwise_separable_silent_on_narrow_and_small_savings():
    """A conv over fewer than 32 channels, and one whose separable form saves under
    half: none."""
    assert not findings(model_of((16, 16, 16), L.Conv2D(64, 3, padding="same")),
                        "depthwise-separable-candidate")
    narrow = model_of((16, 16, 64), L.Conv2D(2, 3, padding="same", use_bias=False))
    assert not findings(narrow, "depthwise-separable-candidate")   # 1,152 → 704: −39%


# --- CNK105 flatten-dense-head -----------------------------------------------------------------

def test_flatten_dense_head_seed_003():
    """VGG16's FC6: 7·7·512·4096 = 102,760,448 weights → 512·4096 after pooling."""
    (f,) = findings(model_of((7, 7, 512), L.Flatten(), L.Dense(4096, use_bias=False)),
                    "flatten-dense-head")
    assert (f.params_before, f.params_after) == (102_760_448, 512 * 4096)
    kinds = [n.op for n in f.replacement.nodes]
    assert kinds == [OpKind.GLOBAL_POOL, OpKind.DENSE]


def test_flatten_dense_head_through_dropout_reshape_and_1d():
    """Dropout between is carried over; Reshape((-1,)) counts; Conv1D maps (Char-CNN)."""
    (f,) = findings(model_of((4, 4, 32), L.Flatten(), L.Dropout(0.5), L.Dense(10)),
                    "flatten-dense-head")
    assert [n.op for n in f.replacement.nodes] == [OpKind.GLOBAL_POOL, OpKind.DROPOUT,
                                                   OpKind.DENSE]
    assert (f.params_before, f.params_after) == (4 * 4 * 32 * 10 + 10, 32 * 10 + 10)
    (f,) = findings(model_of((4, 4, 32), L.Reshape((-1,)), L.Dense(10)), "flatten-dense-head")
    assert f.params_after == 32 * 10 + 10
    (f,) = findings(model_of((75, 48), L.Flatten(), L.Dense(128)), "flatten-dense-head")
    assert (f.params_before, f.params_after) == (75 * 48 * 128 + 128, 48 * 128 + 128)


def test_flatten_dense_head_near_misses():
    """A pooled head, a 1×1 map, and a flatten of a vector: none."""
    for model in (model_of((7, 7, 64), L.GlobalAveragePooling2D(), L.Dense(10)),
                  model_of((1, 1, 64), L.Flatten(), L.Dense(10)),
                  model_of((64,), L.Flatten(), L.Dense(10))):
        assert not findings(model, "flatten-dense-head")


# --- CNK106 relu-after-projection --------------------------------------------------------

def inverted_residual(x, relu_after_projection, fused=False):
    """A MobileNetV2 block on ``x`` (24 channels), optionally with the mistake."""
    y = L.Conv2D(144, 1, use_bias=False)(x)
    y = L.ReLU(6.0)(L.BatchNormalization()(y))
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False)(y)
    y = L.ReLU(6.0)(L.BatchNormalization()(y))
    y = L.Conv2D(24, 1, use_bias=False, activation="relu" if fused else None,
                 name="project")(y)
    y = L.BatchNormalization()(y)
    if relu_after_projection:
        y = L.ReLU(6.0, name="project_relu")(y)
    return L.Add()([x, y])


def test_relu_after_projection_before_a_residual_add():
    """Seed 002: ReLU6 on the 144→24 projection feeding the add."""
    x = keras.Input((14, 14, 24))
    (f,) = findings(keras.Model(x, inverted_residual(x, True)), "relu-after-projection")
    assert f.layer == "project_relu" and f.params_before == f.params_after == 0
    assert f.flops_before - f.flops_after == 14 * 14 * 24   # the clamp, 1 per element
    x = keras.Input((14, 14, 24))
    (f,) = findings(keras.Model(x, inverted_residual(x, False, fused=True)),
                    "relu-after-projection")
    assert f.layer == "project"
    assert f.replacement.nodes[0].attrs["activation"] is None


def test_relu_after_projection_into_a_narrow_bottleneck():
    """A block's projection (after its depthwise conv) whose ReLU'd output feeds the next
    block's 1×1 expansion, with no residual: an inverted-residual stack's first block."""
    model = model_of((14, 14, 96), L.DepthwiseConv2D(3, padding="same"),
                     L.BatchNormalization(), L.ReLU(6.0), L.Conv2D(16, 1, name="project"),
                     L.BatchNormalization(), L.ReLU(name="project_relu"), L.Conv2D(96, 1))
    (f,) = findings(model, "relu-after-projection")
    assert f.layer == "project_relu"
    # the same with a k×k conv as the block's interior, and with the ReLU fused
    model = model_of((14, 14, 96), L.Conv2D(96, 3, padding="same", activation="relu"),
                     L.Conv2D(16, 1, activation="relu", name="project"), L.Conv2D(96, 1))
    (f,) = findings(model, "relu-after-projection")
    assert f.layer == "project"


def hg_aggregation(residual_through_narrow: bool):
    """PP-HGNet's block aggregation: the input and two 3×3 convs concatenated, a 1×1
    squeeze to C/2 → BN → ReLU, a 1×1 excitation to C → BN → ReLU; with
    ``residual_through_narrow`` the squeezed tensor is also added to a shortcut."""
    x = keras.Input((14, 14, 32))
    a = L.Conv2D(32, 3, padding="same", activation="relu")(x)
    b = L.Conv2D(32, 3, padding="same", activation="relu")(a)
    y = L.Concatenate()([x, a, b])
    y = L.ReLU(name="squeeze_relu")(L.BatchNormalization()(L.Conv2D(32, 1)(y)))
    if residual_through_narrow:
        y = L.Add()([y, L.Conv2D(32, 1)(x)])
    y = L.ReLU()(L.BatchNormalization()(L.Conv2D(64, 1)(y)))
    return keras.Model(x, y)


def test_relu_after_projection_silent_on_a_channel_mlp():
    """A 1×1 squeeze → ReLU → 1×1 excitation over a concatenation is a channel MLP (the
    ReLU keeps the pair from being one low-rank linear map); a residual through the
    squeezed tensor makes it a block's narrow tensor again."""
    assert not findings(hg_aggregation(False), "relu-after-projection")
    (f,) = findings(hg_aggregation(True), "relu-after-projection")
    assert f.layer == "squeeze_relu"


def test_relu_after_projection_silent_where_intended():
    """Linear bottleneck; ResNet's 1×1 reduce → ReLU → 3×3; squeeze-and-excitation."""
    x = keras.Input((14, 14, 24))
    assert not findings(keras.Model(x, inverted_residual(x, False)), "relu-after-projection")
    resnet = model_of((14, 14, 256), L.Conv2D(64, 1), L.BatchNormalization(), L.ReLU(),
                      L.Conv2D(64, 3, padding="same"))
    assert not findings(resnet, "relu-after-projection")
    x = keras.Input((14, 14, 32))
    se = L.GlobalAveragePooling2D(keepdims=True)(x)
    se = L.Conv2D(8, 1, activation="relu")(se)
    se = L.Conv2D(32, 1, activation="sigmoid")(se)
    assert not findings(keras.Model(x, L.Multiply()([x, se])), "relu-after-projection")
    assert not findings(model_of((16, 16, 8), K.InvertedResidual(8)), "relu-after-projection")


# --- CNK107 group-conv-without-shuffle ---------------------------------------------------

def shuffle_stack(*between):
    """1×1 group conv (3 groups) → BN → ReLU → ``between`` → depthwise → group conv."""
    return model_of((8, 8, 24), L.Conv2D(48, 1, groups=3, name="g1"), L.BatchNormalization(),
                    L.ReLU(), *between, L.DepthwiseConv2D(3, padding="same"),
                    L.Conv2D(48, 1, groups=3, name="g2"))


def test_group_convs_without_shuffle():
    """ShuffleNet's unit without its shuffle: a finding at the second group conv."""
    (f,) = findings(shuffle_stack(), "group-conv-without-shuffle")
    assert f.layer == "g2" and f.params_before == f.params_after == 48 // 3 * 48 + 48
    assert [n.op for n in f.replacement.nodes] == [OpKind.CHANNEL_SHUFFLE, OpKind.CONV]
    assert f.replacement.nodes[0].attrs["groups"] == 3


def test_group_convs_with_a_shuffle_or_mixing_between():
    """A ChannelShuffle, a manual reshape/transpose shuffle, or a dense conv: none."""
    assert not findings(shuffle_stack(K.ChannelShuffle(3)), "group-conv-without-shuffle")
    manual = (L.Reshape((8, 8, 3, 16)), L.Permute((1, 2, 4, 3)), L.Reshape((8, 8, 48)))
    assert not findings(shuffle_stack(*manual), "group-conv-without-shuffle")
    assert not findings(shuffle_stack(L.Conv2D(48, 1)), "group-conv-without-shuffle")
    unit = model_of((16, 16, 24), K.ShuffleUnit(48, version=1, groups=3, strides=2),
                    K.ShuffleUnit(48, version=1, groups=3))
    assert not findings(unit, "group-conv-without-shuffle")


# --- CNK108 bias-before-batchnorm ---------------------------------------------------------

def test_bias_before_batchnorm():
    """A biased conv (or dense, as in seed 000's Char-CNN) feeding BN: C_out params saved,
    and the fix keeps the function."""
    (f,) = findings(model_of((8, 8, 3), L.Conv2D(64, 3), L.BatchNormalization()),
                    "bias-before-batchnorm")
    assert f.params_before - f.params_after == 64
    assert f.replacement.preserves_function and not f.needs_retraining
    (f,) = findings(model_of((300,), L.Dense(128), L.BatchNormalization()),
                    "bias-before-batchnorm")
    assert (f.params_before, f.params_after) == (300 * 128 + 128, 300 * 128)


def test_bias_before_batchnorm_near_misses():
    """No bias; a fused or separate activation between; BN over another axis; two
    consumers: none."""
    cases = [
        model_of((8, 8, 3), L.Conv2D(64, 3, use_bias=False), L.BatchNormalization()),
        model_of((8, 8, 3), L.Conv2D(64, 3, activation="relu"), L.BatchNormalization()),
        model_of((8, 8, 3), L.Conv2D(64, 3), L.ReLU(), L.BatchNormalization()),
        model_of((8, 8, 3), L.Conv2D(64, 3), L.BatchNormalization(axis=1)),
    ]
    x = keras.Input((8, 8, 3))
    y = L.Conv2D(3, 3, padding="same")(x)
    cases.append(keras.Model(x, L.Add()([L.BatchNormalization()(y), y])))
    for model in cases:
        assert not findings(model, "bias-before-batchnorm")


# --- CNK109 dropout-before-batchnorm -------------------------------------------------------

def test_dropout_before_batchnorm_seed_000_head():
    """Seed 000's head: Linear → Dropout(0.3) → BatchNorm1d."""
    model = model_of((2400,), L.Dense(128), L.Dropout(0.3, name="drop"),
                     L.BatchNormalization(name="bn"), L.ReLU())
    (f,) = findings(model, "dropout-before-batchnorm")
    assert f.layer == "drop" and f.replacement.removed == ["drop", "bn"]
    assert [n.op for n in f.replacement.nodes] == [OpKind.BATCHNORM, OpKind.DROPOUT]
    assert f.params_before == f.params_after == 4 * 128
    assert f.replacement.preserves_function


def test_dropout_before_batchnorm_near_misses():
    """BN then dropout; rate 0; dropout → dense → BN: none."""
    for model in (model_of((64,), L.Dense(32), L.BatchNormalization(), L.Dropout(0.3)),
                  model_of((64,), L.Dropout(0.0), L.BatchNormalization()),
                  model_of((64,), L.Dropout(0.3), L.Dense(32), L.BatchNormalization())):
        assert not findings(model, "dropout-before-batchnorm")


# --- CNK110 plain-deep-stack -------------------------------------------------------------

def test_plain_deep_stack():
    """24 convs in a row: one finding at the last, counting 24."""
    convs = [L.Conv2D(16, 3, padding="same", activation="relu", name=f"c{i}")
             for i in range(24)]
    (f,) = findings(model_of((16, 16, 16), *convs), "plain-deep-stack")
    assert f.layer == "c23" and f.measurements == {"depth": 24, "first": "c0"}
    assert f.severity == Severity.INFO and f.replacement is None


def test_plain_deep_stack_residual_and_shallow():
    """The same 24 convs as 12 residual blocks, or a 19-layer plain stack: none (unless
    the threshold is lowered)."""
    x = keras.Input((16, 16, 16))
    y = x
    for _ in range(12):
        z = L.Conv2D(16, 3, padding="same", activation="relu")(y)
        z = L.Conv2D(16, 3, padding="same")(z)
        y = L.ReLU()(L.Add()([y, z]))
    assert not findings(keras.Model(x, y), "plain-deep-stack")
    shallow = model_of((16, 16, 16), *[L.Conv2D(16, 3, padding="same") for _ in range(19)])
    assert not findings(shallow, "plain-deep-stack")
    assert len(findings(shallow, "plain-deep-stack", min_depth=10)) == 1


# --- CNK111 tensor-core-alignment and CNK001 opaque-layer ---------------------------------

def test_tensor_core_alignment():
    """30 channels → suggest 32; 32, a depthwise conv, the classifier and RGB input: none."""
    model = model_of((16, 16, 3), L.Conv2D(30, 3, name="odd"), L.DepthwiseConv2D(3),
                     L.Conv2D(32, 3), L.GlobalAveragePooling2D(), L.Dense(10))
    (f,) = findings(model, "tensor-core-alignment")
    assert f.layer == "odd" and f.measurements == {"channels": 30, "suggested": 32}


def test_opaque_layer():
    """A Lambda is reported (info); a model of standard layers has none."""
    model = model_of((8, 8, 3), L.Lambda(lambda t: t * 2.0, name="lam"), L.Conv2D(4, 3))
    (f,) = findings(model, "opaque-layer")
    assert f.layer == "lam" and f.measurements["class_name"] == "Lambda"
    assert not findings(model_of((8, 8, 3), L.Conv2D(4, 3)), "opaque-layer")


def test_findings_inside_blocks_name_the_block_path():
    """Rules see inside keras_cnnkit blocks: a ConvBNAct with a biased conv before BN."""
    model = model_of((8, 8, 3), K.ConvBNAct(16, use_bias=True, name="stem"))
    (f,) = findings(model, "bias-before-batchnorm")
    assert f.layer == "stem/conv" and f.params_before - f.params_after == 16


def test_macs_are_the_layers():
    """Before-figures of a conv finding equal the conv's MACs computed from Keras."""
    conv = L.Conv2D(256, 3, padding="same", use_bias=False)
    model = model_of((14, 14, 256), conv)
    (f,) = findings(model, "missing-bottleneck")
    assert f.macs_before == math.prod(conv.kernel.shape) * 14 * 14


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_rule_runs_on_an_empty_ish_model(code):
    """Every rule copes with a model of one dense layer."""
    assert not findings(model_of((4,), L.Dense(2)), code)
