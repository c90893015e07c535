"""The rules' exemptions for intended designs, each on architectures nobody here wrote.

The models are the committed keras.applications configs (``tests/data/corpus/keras3``,
``tf_keras``), a few keras-hub / kimm Functional configs (``tests/data/corpus/extra``),
all read statically as ``cnnkit-lint`` reads a file, and Keras transcriptions of
published layer lists (MTCNN's ONet, SqueezeNet 1.1's fire module).  Expected layers and
counts come from the architectures (their papers' layer tables, the configs' layer
lists), not from the linter.
"""
import functools
import gzip
import json
import tempfile
from pathlib import Path

import keras
import pytest
from keras import layers as L

from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.lint.api import graph_of, lint

DATA = Path(__file__).parent / "data" / "corpus"


@functools.lru_cache(maxsize=None)
def config_graph(rel: str):
    """The graph IR of a committed config (``keras3/ResNet50``), read from a file."""
    with tempfile.NamedTemporaryFile(suffix=".json") as fh:
        fh.write(gzip.decompress((DATA / f"{rel}.json.gz").read_bytes()))
        fh.flush()
        return graph_of(fh.name)


def config_layers(rel: str) -> list:
    """The config's own layer list (``(class_name, config)``), without the linter."""
    cfg = json.loads(gzip.decompress((DATA / f"{rel}.json.gz").read_bytes()))
    return [(layer["class_name"], layer["config"]) for layer in cfg["config"]["layers"]]


def found(rel_or_model, rule, **options) -> dict:
    """``{layer: finding}`` of one rule."""
    graph = config_graph(rel_or_model) if isinstance(rel_or_model, str) else rel_or_model
    report = lint(graph, select=[rule], options={rule: options} if options else None,
                  min_impact=0)   # the rule's own findings, whatever their impact
    return {f.layer: f for f in report.rule_findings}


def convs(rel: str, predicate) -> set:
    """Names of the config's Conv2D layers whose config satisfies ``predicate``."""
    return {cfg["name"] for cls, cfg in config_layers(rel)
            if cls == "Conv2D" and predicate(cfg)}


# --- depthwise-separable-candidate ----------------------------------------------------------

@pytest.mark.parametrize("rel, stem", [
    ("keras3/ResNet50", {"conv1_conv"}),
    ("keras3/VGG16", {"block1_conv1", "block1_conv2"}),
    ("keras3/InceptionV3", {"conv2d", "conv2d_1", "conv2d_2"}),
    ("keras3/Xception", {"block1_conv1", "block1_conv2"}),
    ("keras3/DenseNet121", {"conv1_conv"}),
    ("tf_keras/ResNet50", {"conv1_conv"}),
])
def test_separable_silent_on_rgb_stems(rel, stem):
    """No depthwise-separable finding on a conv over ≤ 4 channels, or on the full convs
    the stem chains after it (Inception-V3 Table 1's three 3×3s, Xception's two, VGG's
    first pair); the first 3×3 after the stem's pooling is still found."""
    findings = found(rel, "depthwise-separable-candidate")
    rgb = convs(rel, lambda c: c["name"] in stem)
    assert rgb == stem and not stem & set(findings)
    graph = config_graph(rel)
    assert not [n for n in findings if graph[n].attrs["in_channels"] <= 4]
    if rel == "keras3/InceptionV3":
        assert "conv2d_4" in findings   # 3×3 80→192 after the stem's pool and 1×1


def test_separable_silent_on_factorised_convs():
    """InceptionV3 and InceptionResNetV2: none of their 1×n / n×1 convs is flagged."""
    for rel in ("keras3/InceptionV3", "keras3/InceptionResNetV2"):
        asymmetric = convs(rel, lambda c: sorted(c["kernel_size"])[0] == 1
                           and max(c["kernel_size"]) > 1)
        assert len(asymmetric) >= 20
        assert not asymmetric & set(found(rel, "depthwise-separable-candidate"))


def test_kernel_rules_silent_on_convnext_patchify_convs():
    """ConvNeXt's 4×4/4 stem and three 2×2/2 downsampling convs (Liu et al. 2022, §2.2;
    kernel = stride): neither a depthwise-separable nor a bottleneck finding, in any of
    the five sizes."""
    for size in ("Tiny", "Small", "Base", "Large", "XLarge"):
        rel = f"keras3/ConvNeXt{size}"
        patchify = {n.layer for n in config_graph(rel) if n.op == OpKind.CONV
                    and n.attrs["kernel"] == n.attrs["strides"] != (1, 1)}
        assert sorted(n.attrs["kernel"] for n in config_graph(rel) if n.layer in patchify) \
            == [(2, 2)] * 3 + [(4, 4)]
        for rule in ("depthwise-separable-candidate", "missing-bottleneck"):
            assert not patchify & set(found(rel, rule)), (rel, rule)


@pytest.mark.parametrize("name", ["B0", "B1", "B2", "B3", "S", "M", "L"])
def test_kernel_rules_silent_on_fused_mbconv(name):
    """EfficientNetV2's Fused-MBConv 3×3s (expansions and ratio-1 blocks, Tan & Le 2021
    Table 4): neither rule fires anywhere in the model."""
    rel = f"keras3/EfficientNetV2{name}"
    fused = convs(rel, lambda c: c["kernel_size"] == [3, 3] and c["groups"] == 1
                  and "stem" not in c["name"])
    assert fused
    for rule in ("depthwise-separable-candidate", "missing-bottleneck"):
        assert not found(rel, rule), (rel, rule)


# --- missing-bottleneck ----------------------------------------------------------------------

def test_bottleneck_never_narrower_than_32():
    """InceptionV3's 32→32 ``conv2d_1`` (would be "reduce to 8") and VGG16's
    ``block1_conv2`` 64→64 (16): silent; VGG16's 128→128 ``block2_conv2`` gets a 32-wide
    one; no proposal anywhere is narrower than 32."""
    assert "conv2d_1" not in found("keras3/InceptionV3", "missing-bottleneck")
    vgg = found("keras3/VGG16", "missing-bottleneck")
    assert "block1_conv2" not in vgg
    assert vgg["block2_conv2"].measurements == {"form": "bottleneck", "width": 32}
    for rel in ("keras3/VGG16", "keras3/VGG19", "keras3/InceptionResNetV2", "keras3/ResNet50"):
        for finding in found(rel, "missing-bottleneck").values():
            assert finding.measurements["width"] >= 32


@pytest.mark.parametrize("rel", ["extra/kimm_ResNet18", "extra/keras_hub_resnet18"])
def test_bottleneck_silent_on_basic_blocks(rel):
    """ResNet-18's basic blocks (He et al. 2016, Table 1: two 3×3s per block, 16 convs in
    all): no missing-bottleneck finding; the depthwise-separable advice (info) remains on
    the 3×3s over ≥ 32 channels."""
    spatial = convs(rel, lambda c: c["kernel_size"] == [3, 3])
    assert len(spatial) == 16
    assert not found(rel, "missing-bottleneck")
    assert set(found(rel, "depthwise-separable-candidate")) <= spatial


def test_bottleneck_look_back_through_add():
    """EfficientNetV2-S's ``block2c`` reads ``block2b``'s Add of two 1×1 projections,
    ``block2b`` the projection itself: both count as reduced (the look-back used to stop
    at the Add, so only the identical ``block2c`` was flagged)."""
    from lint_rules.missing_bottleneck import _reduced_inputs
    reduced = _reduced_inputs(config_graph("keras3/EfficientNetV2S"))
    assert reduced["block2b_expand_conv"] and reduced["block2c_expand_conv"]
    assert reduced["block3d_expand_conv"]


def deep_stem_model(image_channels: int = 3):
    """A deep stem as PP-HGNet and ResNet-D write it (3×3/2 to 48, 3×3 48→64, 3×3
    64→128, then max pooling) and one 3×3 128→128 after the pooling."""
    x = keras.Input((64, 64, image_channels))
    y = x
    for i, (filters, strides) in enumerate(((48, 2), (64, 1), (128, 1))):
        y = L.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                     name=f"stem_{i}")(y)
        y = L.ReLU()(L.BatchNormalization()(y))
    y = L.MaxPooling2D(3, strides=2, padding="same")(y)
    y = L.Conv2D(128, 3, padding="same", name="stage_conv")(y)
    return keras.Model(x, y)


def test_bottleneck_silent_on_the_stem():
    """The stem's 3×3 64→128 (it doubles the width: GoogLeNet's form would reduce to 32)
    is the stem's: silent, as the depthwise-separable rule is there; the 128→128 3×3
    after the stem's pooling is still found (reduce to 32).  The 48→64 one never is (its
    bottleneck would be 16 wide).  The same convs on a 64-channel input (no image, no
    stem): both the 64→128 and the 128→128 are found."""
    assert set(found(deep_stem_model(), "missing-bottleneck")) == {"stage_conv"}
    assert set(found(deep_stem_model(64), "missing-bottleneck")) == {"stem_2", "stage_conv"}


def test_bottleneck_found_on_a_stem_conv_that_keeps_its_width():
    """Before the first pooling, a 5×5 64→64 after the 1→64 first conv keeps its width:
    not one of the convs that build the first features up from the image, so it is
    found where the rule allows a 16-wide bottleneck (``min_width=16``, as
    ``examples/keep_weights.py`` lints its digits CNN: 1×1 to 16, 5×5 16→16, 1×1 back)."""
    x = keras.Input((8, 8, 1))
    y = L.Conv2D(64, 3, padding="same", activation="relu", name="first")(x)
    y = L.Conv2D(64, 5, padding="same", activation="relu", name="conv5x5")(y)
    y = L.MaxPooling2D(2)(y)
    (finding,) = found(keras.Model(x, y), "missing-bottleneck", min_width=16).values()
    assert finding.layer == "conv5x5"
    assert finding.params_before == 25 * 64 * 64 + 64


# --- flatten-dense-head ------------------------------------------------------------------------

def test_vgg16_fc1_found_as_dense_and_as_conv():
    """VGG16's fc1: a Dense over the flattened 7×7×512 map (keras.applications) and a 7×7
    conv over it (kimm, timm's ConvMlp): 102,764,544 → 2,101,248 parameters both ways."""
    (dense,) = found("keras3/VGG16", "flatten-dense-head").values()
    (conv,) = found("extra/kimm_VGG16", "flatten-dense-head").values()
    expected = (7 * 7 * 512 * 4096 + 4096, 512 * 4096 + 4096)
    assert (dense.params_before, dense.params_after) == expected
    assert (conv.params_before, conv.params_after) == expected
    assert conv.layer == "pre_logits_fc1conv2d"
    assert [n.op for n in conv.replacement.nodes] == [OpKind.GLOBAL_POOL, OpKind.CONV]
    for rule in ("depthwise-separable-candidate", "missing-bottleneck", "large-kernel"):
        assert "pre_logits_fc1conv2d" not in found("extra/kimm_VGG16", rule)


def mtcnn_onet():
    """MTCNN's output network as the ``mtcnn`` package (1.0) defines it (Zhang et al.
    2016, Fig. 2): four convs, a flattened 3×3×128 map, fc5 256, then three heads —
    box regression (4, linear), landmarks (10, linear), face score (2, softmax)."""
    x = keras.Input((48, 48, 3))
    y = L.PReLU(shared_axes=[1, 2])(L.Conv2D(32, 3, name="conv1")(x))
    y = L.MaxPooling2D(3, 2, padding="same")(y)
    y = L.PReLU(shared_axes=[1, 2])(L.Conv2D(64, 3, name="conv2")(y))
    y = L.MaxPooling2D(3, 2)(y)
    y = L.PReLU(shared_axes=[1, 2])(L.Conv2D(64, 3, name="conv3")(y))
    y = L.MaxPooling2D(2, 2, padding="same")(y)
    y = L.PReLU(shared_axes=[1, 2])(L.Conv2D(128, 2, name="conv4")(y))
    y = L.Flatten()(L.Permute((2, 1, 3))(y))
    y = L.PReLU()(L.Dense(256, name="fc5")(y))
    return keras.Model(x, [L.Dense(4, name="fc6-1")(y), L.Dense(10, name="fc6-2")(y),
                           L.Dense(2, activation="softmax", name="fc6-3")(y)])


def test_flatten_dense_head_silent_on_mtcnn_regression_heads():
    """MTCNN's fc5 feeds box and landmark regressions: pooling would lose the positions
    they regress.  The same trunk with one softmax head is a classifier: found."""
    model = mtcnn_onet()
    assert model.get_layer("fc5").input.shape[-1] == 3 * 3 * 128
    assert not lint(model, select=["flatten-dense-head"], min_impact=0).rule_findings
    classifier = keras.Model(model.input, model.get_layer("fc6-3").output)
    (finding,) = lint(classifier, select=["flatten-dense-head"], min_impact=0).rule_findings
    assert finding.layer == "fc5"


# --- relu-after-projection -------------------------------------------------------------------

def squeezenet_fire(squeeze=16, expand=64):
    """SqueezeNet 1.1's second fire module (torchvision ``Fire(64, 16, 64, 64)``): a 1×1
    squeeze + ReLU feeding a 1×1 and a 3×3 expand, concatenated."""
    x = keras.Input((55, 55, 64))
    s = L.ReLU(name="squeeze_activation")(L.Conv2D(squeeze, 1, name="squeeze")(x))
    e1 = L.ReLU()(L.Conv2D(expand, 1, name="expand1x1")(s))
    e3 = L.ReLU()(L.Conv2D(expand, 3, padding="same", name="expand3x3")(s))
    return keras.Model(x, L.Concatenate()([e1, e3]))


def test_relu_after_projection_silent_on_squeeze_and_inner_reductions():
    """SqueezeNet's squeeze also feeds a 3×3 (the inner reduction of a bottleneck, where
    the ReLU belongs), as ResNet50's ``_1_conv`` 1×1s do: no finding; MobileNetV2 and
    EfficientNet keep their projections linear: none there either."""
    assert not lint(squeezenet_fire(), select=["relu-after-projection"], min_impact=0).rule_findings
    for rel in ("keras3/ResNet50", "keras3/MobileNetV2", "keras3/EfficientNetB0"):
        assert not found(rel, "relu-after-projection"), rel


# --- plain-deep-stack --------------------------------------------------------------------------

@pytest.mark.parametrize("rel", ["keras3/MobileNet", "tf_keras/MobileNet",
                                 "extra/kimm_LCNet100"])
def test_plain_stack_silent_on_depthwise_separable_nets(rel):
    """MobileNetV1 (Howard et al., Table 1: a full conv, 13 depthwise-separable layers,
    the classifier) and PP-LCNet (13 separable layers): plain by design and shallower
    than 20 once each depthwise + pointwise pair counts as one layer."""
    depthwise = [cfg["name"] for cls, cfg in config_layers(rel) if cls == "DepthwiseConv2D"]
    assert len(depthwise) == 13
    assert not found(rel, "plain-deep-stack")


# --- tensor-core-alignment ---------------------------------------------------------------------

def test_alignment_silent_on_se_convs_heads_and_negligible_layers():
    """EfficientNetB0's SE convs (``block2a_se_reduce``: 4 channels on a 1×1 map) and
    MobileNetV3's 1000-class conv head: none; NASNetMobile's 44-channel first stage
    (penultimate filters 1056 / 24 = 44; 11 and 22 in its reduction stems), each layer
    ≥ 0.5% of its MACs, holds the real misalignments."""
    for rel in ("keras3/EfficientNetB0", "keras3/EfficientNetB7", "keras3/MobileNetV3Large"):
        assert not found(rel, "tensor-core-alignment"), rel
    nasnet = found("keras3/NASNetMobile", "tensor-core-alignment")
    assert nasnet and {f.measurements["channels"] for f in nasnet.values()} == {11, 22, 44}


def test_alignment_silent_on_heads_through_concat_and_sigmoid():
    """A 1-channel objectness map and a class map concatenated into the output through
    a sigmoid (a detection head) are the task's widths."""
    x = keras.Input((16, 16, 64))
    y = L.Conv2D(64, 3, padding="same", activation="relu")(x)
    score = L.Activation("sigmoid")(L.Conv2D(1, 1, name="objectness")(y))
    classes = L.Activation("sigmoid")(L.Conv2D(3, 1, name="classes")(y))
    model = keras.Model(x, L.Concatenate()([score, classes]))
    assert not lint(model, select=["tensor-core-alignment"], min_impact=0, options={
        "tensor-core-alignment": {"min_share": 0.0}}).rule_findings


# --- opaque-layer ------------------------------------------------------------------------------

def test_opaque_layer_one_finding_per_root(tmp_path):
    """Two unknown custom layers (the roots) each leave known layers after them without
    an input shape: one finding per root, the layers it hides counted in its finding,
    and every unknown-cost node is a root or hidden by exactly one."""
    import static_model_files as smf   # pylint: disable=import-outside-toplevel
    layers = [smf.k3_input("x", [16, 16, 3]),
              smf.k3_layer("MyScale", "scale_a", ["x"], module="my_package.layers"),
              smf.k3_layer("Conv2D", "c1", ["scale_a"], filters=8, kernel_size=[3, 3]),
              smf.k3_layer("ReLU", "r1", ["c1"]),
              smf.k3_layer("Conv2D", "c2", ["x"], filters=8, kernel_size=[3, 3]),
              smf.k3_layer("MyScale", "scale_b", ["c2"], module="my_package.layers"),
              smf.k3_layer("ReLU", "r2", ["scale_b"])]
    path = smf.write_json(tmp_path / "custom.json",
                          smf.k3_functional("custom", layers, ["x"], ["r1", "r2"]))
    graph = graph_of(path)
    findings = found(graph, "opaque-layer")
    assert sorted(findings) == ["scale_a", "scale_b"]
    assert findings["scale_a"].measurements["hidden"] == 2      # c1, r1
    assert findings["scale_b"].measurements["hidden"] == 1      # r2
    unknown = lint(graph, select=[]).summary.unknown
    assert sum(1 + f.measurements["hidden"] for f in findings.values()) == len(unknown)


# --- real but small: still yielded (the impact threshold, not the rules, hides them) ------------

def test_real_small_findings_are_still_yielded():
    """InceptionV3's three 5×5 branches (48→64, Table 1's 35×35 modules) and every biased
    conv before a batch norm of keras.applications' ResNet50 (53 convs) are found."""
    five = convs("keras3/InceptionV3", lambda c: c["kernel_size"] == [5, 5])
    assert len(five) == 3 and set(found("keras3/InceptionV3", "large-kernel")) == five
    biased = convs("keras3/ResNet50", lambda c: c["use_bias"])
    assert len(biased) == 53 and set(found("keras3/ResNet50", "bias-before-batchnorm")) == biased
    report = lint(config_graph("keras3/VGG16"))   # the default selection and options
    assert [f.layer for f in report.findings if f.symbol == "flatten-dense-head"] == ["fc1"]
