"""``propose_layout_map`` and ``synchronize_batch_norm``: what they propose and change.

Plans are made on a ``DeviceMesh`` of named devices, so these tests need no devices and
run on any backend; the training under the plans is in ``test_distribution_jax.py``.
The expected kernels come from the architectures' tables, not from the planner.
"""
import keras
import pytest

from keras_cnnkit import layers as cl
from keras_cnnkit import models

pytestmark = pytest.mark.distribution

DEVICES = [f"cpu:{i}" for i in range(8)]


def mesh(batch: int, model: int):
    """A ``batch × model`` mesh of named devices."""
    return keras.distribution.DeviceMesh((batch, model), ("batch", "model"),
                                         devices=DEVICES[:batch * model])


def axes(plan, path):
    """The axes the plan's LayoutMap gives ``path`` (``None``: replicated)."""
    layout = plan.layout_map[path]
    return None if layout is None else tuple(layout.axes)


def test_resnet50_plan():
    """ResNet50 at 1000 classes: the 1x1 convs of at least 2**20 parameters are conv5's
    (1024->2048 shortcut, 512->2048 expansions, 2048->512 reductions after the first
    block; the first block's 1024->512 has 524,288) and the 2048x1000 head, all split
    by output channels over 4 devices, biases alike."""
    plan = models.propose_layout_map(models.build_resnet50(), mesh(2, 4))
    conv5 = ["conv5_block1_0_conv", "conv5_block1_3_conv", "conv5_block2_1_conv",
             "conv5_block2_3_conv", "conv5_block3_1_conv", "conv5_block3_3_conv"]
    expected = {}
    for name in conv5:
        expected[f"{name}/kernel"] = (None, None, None, "model")
        expected[f"{name}/bias"] = ("model",)
    expected.update({"predictions/kernel": (None, "model"), "predictions/bias": ("model",)})
    assert {v.path: v.axes for v in plan.sharded} == expected
    assert plan.skipped == ()
    assert axes(plan, "conv5_block1_1_conv/kernel") is None
    assert axes(plan, "conv5_block1_2_conv/kernel") is None  # 3x3


def test_vgg16_plan_on_eight_devices():
    """VGG16 at 64x64 (fc1 reads 2x2x512 = 2048 features) on a 1x8 mesh: fc1, fc2 and
    the 1000-class head, all divisible by 8, are split by output columns."""
    plan = models.propose_layout_map(models.build_vgg16(input_shape=(64, 64, 3)), mesh(1, 8))
    assert [(v.path, v.shape) for v in plan.sharded if v.path.endswith("kernel")] == [
        ("fc1/kernel", (2048, 4096)), ("fc2/kernel", (4096, 4096)),
        ("predictions/kernel", (4096, 1000))]
    assert (plan.model_axis, plan.axis_size) == ("model", 8)


def small_model():
    """A 1x1 and a 3x3 convolution (2x2x12 = 48 features out), then Dense
    48->30->16->10->7."""
    image = keras.Input((4, 4, 8))
    x = keras.layers.Conv2D(12, 1, name="pw")(image)
    x = keras.layers.Conv2D(12, 3, name="full")(x)
    x = keras.layers.Flatten(name="flat")(x)
    x = keras.layers.Dense(16, name="cols")(keras.layers.Dense(30, name="wide")(x))
    x = keras.layers.Dense(7, name="odd")(keras.layers.Dense(10, name="rows")(x))
    return keras.Model(image, x)


def test_indivisible_kernels_fall_back_or_are_skipped():
    """Over 4 devices: 30->16 splits by columns; 48->30 and 16->10 by rows (30 and 10
    do not divide, 48 and 16 do), their biases whole; 10->7 by neither: replicated and
    listed with the reason.  The 1x1 conv (8->12) splits; the 3x3 does not qualify."""
    plan = models.propose_layout_map(small_model(), mesh(2, 4), min_params=1)
    assert axes(plan, "cols/kernel") == (None, "model")
    assert axes(plan, "cols/bias") == ("model",)
    assert axes(plan, "rows/kernel") == ("model", None)
    assert axes(plan, "rows/bias") is None
    assert axes(plan, "odd/kernel") is None
    assert axes(plan, "pw/kernel") == (None, None, None, "model")
    assert axes(plan, "full/kernel") is None
    assert axes(plan, "wide/kernel") == ("model", None)
    assert axes(plan, "wide/bias") is None
    assert [(s.path, s.shape) for s in plan.skipped] == [("odd/kernel", (10, 7))]
    assert "neither its input (10) nor its output (7) dimension is divisible by the 4 " \
           "devices of axis 'model'" in plan.skipped[0].reason
    text = plan.describe()
    assert "left replicated: 1 large kernel(s)" in text and "odd/kernel" in text


def test_keys_are_exact_paths():
    """Layer names with regex metacharacters resolve to their own layout only.  The
    same layer name in a nested model and the outer one gives two variables one path
    ("d/kernel": the inner model was built before): no key could tell them apart, so
    both stay replicated and the plan says why.  No path matches two keys (which
    LayoutMap would refuse)."""
    inner_input = keras.Input((8,))
    inner = keras.Model(inner_input, keras.layers.Dense(8, name="d")(inner_input), name="inner")
    image = keras.Input((8,))
    x = keras.layers.Dense(8, name="fc.1+(a)")(image)
    x = keras.layers.Dense(8, name="d")(inner(x))
    x = keras.layers.Dense(6, name="fcX1+(a)")(x)
    model = keras.Model(image, x)
    plan = models.propose_layout_map(model, mesh(2, 4), min_params=1)
    assert axes(plan, "fc.1+(a)/kernel") == (None, "model")
    assert axes(plan, "fcX1+(a)/kernel") == ("model", None)  # 8->6: by rows
    assert [v.path for v in model.variables].count("d/kernel") == 2
    assert axes(plan, "d/kernel") is None
    assert [s.path for s in plan.skipped] == ["d/kernel", "d/kernel"]
    assert "2 variables have the path 'd/kernel'" in plan.skipped[0].reason
    for variable in model.variables:
        expected = next((v.axes for v in plan.sharded if v.path == variable.path), None)
        assert axes(plan, variable.path) == expected, variable.path
    assert [v.path for v in plan.sharded] == ["fc.1+(a)/kernel", "fc.1+(a)/bias",
                                              "fcX1+(a)/kernel"]


def test_plan_errors():
    """An axis the mesh lacks, or a model not built, is a ValueError that says so."""
    with pytest.raises(ValueError, match=r"no axis 'tensor' \(its axes: \('batch', 'model'\)\)"):
        models.propose_layout_map(small_model(), mesh(2, 4), model_axis="tensor")
    unbuilt = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="is not built"):
        models.propose_layout_map(unbuilt, mesh(2, 4))


def test_synchronize_batch_norm():
    """On TensorFlow every batch norm becomes synchronized, nested ones included:
    MobileNetV2 has keras.applications' 52; a block's own batch norms count too.  On
    the other backends nothing changes (JAX's global-batch semantics need no flag)."""
    model = models.build_mobilenet_v2(alpha=0.35, input_shape=(32, 32, 3), classes=10)
    block = keras.Sequential([keras.Input((8, 8, 4)), cl.ConvBNAct(4, 3)])
    if keras.backend.backend() != "tensorflow":
        assert models.synchronize_batch_norm(model) == 0
        return
    twin = keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(32, 32, 3),
                                          classes=10)
    twin_bns = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in twin.layers)
    assert models.synchronize_batch_norm(model) == twin_bns == 52
    assert all(layer.synchronized for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization))
    assert models.synchronize_batch_norm(model) == 0
    assert models.synchronize_batch_norm(block) == 1
