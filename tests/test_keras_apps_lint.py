"""``lint`` on keras.applications models (``weights=None``, built offline).

For every model: lint runs; the total params equal ``count_params()``; the conv and dense
MACs equal those computed here from each layer's kernel shape and output shape (and the
published figures where there are some); the total FLOPs are within 2% of TensorFlow's
profiler, run here on the model's frozen graph.  Plus the issue's model-level rule checks.
"""
import functools
import gc
import math

import keras
import pytest
from keras import layers as L

from keras_cnnkit.lint.api import lint
from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras

#: Conv + dense multiply-accumulates, in G, published for these models (torchvision /
#: the papers; InceptionV3 at 299², the others at 224²).
PUBLISHED_GMACS = {"InceptionV3": 5.713, "DenseNet121": 2.834, "MobileNetV2": 0.301,
                   "ResNet50": 3.858}
#: TensorFlow profiler float-op counts measured when this test was written, in G.
MEASURED_TF_GFLOPS = {"InceptionV3": 11.47, "DenseNet121": 5.70, "MobileNetV2": 0.616,
                      "ResNet50": 7.76}

FAST = ("MobileNetV2", "ResNet50")
PROFILED = ("MobileNetV2", "ResNet50", "InceptionV3", "DenseNet121", "VGG16", "ResNet50V2",
            "MobileNet", "Xception")
OTHERS = ("VGG19", "ResNet101", "ResNet152", "ResNet101V2", "ResNet152V2", "DenseNet169",
          "DenseNet201", "InceptionResNetV2", "NASNetMobile", "NASNetLarge", "MobileNetV3Small",
          "MobileNetV3Large", "EfficientNetB0", "EfficientNetB3", "EfficientNetB7",
          "EfficientNetV2B0", "EfficientNetV2S", "EfficientNetV2L", "ConvNeXtTiny",
          "ConvNeXtBase")
#: Layers of keras.applications the linter does not know (custom classes): opaque.
#: None: ConvNeXt's LayerScale is the ``layer_scale`` op kind, InceptionResNetV2's
#: CustomScaleLayer a scalar rescale and an add.
EXPECTED_OPAQUE: dict = {}


def build(name):
    """A keras.applications model with random weights (MobileNetV3 needs a fixed size)."""
    kwargs = {"weights": None}
    if name.startswith("MobileNetV3"):
        kwargs["input_shape"] = (224, 224, 3)
    return getattr(keras.applications, name)(**kwargs)


@functools.lru_cache(maxsize=2)
def cached(name):
    """The last two models built (several tests look at the same one, and the fast
    tests alternate between MobileNetV2 and ResNet50)."""
    keras.backend.clear_session()
    gc.collect()
    return build(name)


def keras_conv_dense_macs(model) -> int:
    """Conv and dense MACs from each layer's kernel and output shape (channels-last)."""
    total = 0
    for layer in model._flatten_layers(include_self=False):  # pylint: disable=protected-access
        if isinstance(layer, (L.SeparableConv1D, L.SeparableConv2D)):
            kernel = math.prod(layer.depthwise_kernel.shape) + math.prod(
                layer.pointwise_kernel.shape)
            total += kernel * math.prod(layer.output.shape[1:-1])
        elif isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
            total += math.prod(layer.kernel.shape) * math.prod(layer.input.shape[1:-1])
        elif isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv1D,
                                L.DepthwiseConv2D, L.Dense)):
            total += math.prod(layer.kernel.shape) * math.prod(layer.output.shape[1:-1])
    return total


def tf_profiler_flops(model) -> int:
    """TensorFlow's profiler float-op count of one inference on the frozen graph."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TF profiler needs the TensorFlow backend")
    tf = pytest.importorskip("tensorflow")
    from tensorflow.python.framework.convert_to_constants import (  # pylint: disable=no-name-in-module,import-error
        convert_variables_to_constants_v2,
    )
    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(
        tf.TensorSpec((1, *model.input_shape[1:]), tf.float32))
    graph = convert_variables_to_constants_v2(concrete).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


def _params(names, slow_unless=()):
    return [pytest.param(n, marks=() if n in slow_unless else pytest.mark.slow, id=n)
            for n in names]


@pytest.mark.parametrize("name", _params(PROFILED + OTHERS, slow_unless=FAST))
def test_lint_application(name):
    """Lint runs; params and conv+dense MACs equal Keras'; shapes agree with Keras'."""
    model = cached(name)
    report = lint(model)
    summary = report.summary
    assert summary.params == model.count_params()
    assert not summary.param_mismatches
    assert summary.macs == keras_conv_dense_macs(model)
    graph = report.graph
    assert not [n.name for n in graph if "inferred_shape" in n.attrs]
    opaque = {graph[n].attrs["class_name"] for n in summary.unknown}
    assert opaque == ({EXPECTED_OPAQUE[name]} if name in EXPECTED_OPAQUE else set())
    if name in PUBLISHED_GMACS:
        assert round(summary.macs / 1e9, 3) == PUBLISHED_GMACS[name]


@pytest.mark.parametrize("name", _params(PROFILED, slow_unless=FAST))
def test_flops_match_tf_profiler(name):
    """Total FLOPs (element-wise work included) within 2% of TF's profiler."""
    model = cached(name)
    profiled = tf_profiler_flops(model)
    if name in MEASURED_TF_GFLOPS:
        assert profiled / 1e9 == pytest.approx(MEASURED_TF_GFLOPS[name], abs=0.006)
    flops = lint(model).summary.flops
    assert abs(flops - profiled) <= 0.02 * profiled


def test_mobilenetv2_keeps_its_projections_linear():
    """keras.applications' MobileNetV2 has linear bottlenecks: no relu-after-projection."""
    report = lint(cached("MobileNetV2"))
    assert not report.by_rule("relu-after-projection")
    assert not report.by_rule("CNK107") and report.by_rule("CNK103") == []


def test_resnet50_has_bottlenecks_and_a_cheap_stem():
    """ResNet50: zero missing-bottleneck, zero large-kernel (its 7×7 stem has 3 inputs)."""
    model = cached("ResNet50")
    report = lint(model, select=["missing-bottleneck", "large-kernel",
                                              "bias-before-batchnorm"], min_impact=0)
    assert not report.by_rule("CNK103") and report.by_rule("CNK101") == []
    # Keras' ResNet50 convs keep a bias before each BatchNorm: one finding per conv.
    convs = [layer for layer in model.layers if isinstance(layer, L.Conv2D)]
    biased = report.by_rule("bias-before-batchnorm")
    assert len(biased) == len(convs) == 53
    stem = next(f for f in biased if f.layer == "conv1_conv")
    assert stem.params_before - stem.params_after == 64


def test_vgg16_head_and_missing_bottlenecks():
    """VGG16: flatten-dense-head on fc1 (102,764,544 → 2,101,248); block5_conv1
    missing-bottleneck 2,359,808 → 279,296 (issue 5's example)."""
    model = cached("VGG16")
    report = lint(model)
    (head,) = report.by_rule("flatten-dense-head")
    fc1 = model.get_layer("fc1")
    assert head.layer == "fc1" and head.params_before == fc1.count_params() == 102_764_544
    assert head.params_after == 512 * 4096 + 4096 == 2_101_248
    (block5,) = [f for f in report.by_rule("missing-bottleneck") if f.layer == "block5_conv1"]
    assert block5.params_before == model.get_layer("block5_conv1").count_params()
    assert (block5.params_before, block5.params_after) == (2_359_808, 279_296)
    # seed 003: the head holds most of VGG16's parameters, the first two convs the
    # largest activations (224·224·64 floats each)
    head_params = sum(model.get_layer(n).count_params() for n in ("fc1", "fc2", "predictions"))
    assert head_params > 0.85 * report.summary.params
    rows = sorted(report.summary.nodes, key=lambda r: -r.cost.activation_bytes)
    assert {r.name for r in rows[:2]} == {"block1_conv1", "block1_conv2"}
    assert rows[0].cost.activation_bytes == 4 * 224 * 224 * 64


def test_inceptionv3_large_kernel_on_its_5x5_branches():
    """InceptionV3's 48→64 5×5 convs: 76,800 → 64,512 weights, and nowhere else."""
    model = cached("InceptionV3")
    report = lint(model, select=["large-kernel"], min_impact=0)
    five = sorted(layer.name for layer in model.layers if isinstance(layer, L.Conv2D)
                  and tuple(layer.kernel.shape) == (5, 5, 48, 64))
    assert len(five) == 3
    assert sorted(f.layer for f in report.findings) == five
    for finding in report.findings:
        assert (finding.params_before, finding.params_after) == (5 * 5 * 48 * 64, 64_512)


def test_lint_on_model_without_spatial_size():
    """A model built for any input size is analysed at 224×224 by default, with a note
    saying so, and at the size ``input_shape`` gives."""
    model = keras.applications.MobileNetV2(weights=None, include_top=False,
                                           input_shape=(None, None, 3))
    unsized = lint(model)
    assert not unsized.summary.unknown
    assert any("analysed at (224, 224, 3)" in note for note in unsized.summary.notes)
    big = lint(model, input_shape=(448, 448))
    # at twice the side every map (224/32 = 7 at the end) has 4× the positions: 4× MACs
    assert big.summary.macs == 4 * unsized.summary.macs
    sized = lint(model, input_shape=(224, 224, 3))
    assert sized.summary.macs == unsized.summary.macs
    assert not sized.summary.unknown
    assert sized.summary.macs == keras_conv_dense_macs(cached("MobileNetV2")) - 1280 * 1000
    assert graph_from_keras(model, input_shape=(224, 224, 3)).name == model.name
