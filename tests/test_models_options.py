"""What the builders give beyond keras.applications, and their argument checking.

``features_only`` strides and channels, ``output_stride`` by dilation, ``in_channels``
with first-conv adaptation, mixed precision, ImageNet weights fetched exactly as
keras.applications fetches them (and a clear error offline), the registry, and the
``ValueError`` messages for bad input.  Parameter counts of the builders keras lacks are
checked against published figures (sources cited per test).
"""
import math

import keras
import numpy as np
import pytest

from keras_cnnkit import models
from keras_cnnkit.models import WeightsUnavailableError

A = keras.applications

pytestmark = pytest.mark.usefixtures("fresh_keras_session")


def trainable_params(model) -> int:
    """Trainable parameters (what PyTorch's ``parameters()`` counts: no BN statistics)."""
    return sum(math.prod(w.shape) for w in model.trainable_weights)


# (builder, kwargs, input size, channels at strides 4/8/16/32).  The channels are those of
# the keras.applications layers (conv2_block3_out, ...) or the papers' tables.
FEATURE_CASES = [
    (models.build_mobilenet_v2, {}, 64, (24, 32, 96, 1280)),
    (models.build_mobilenet, {}, 64, (128, 256, 512, 1024)),
    (models.build_resnet50, {}, 64, (256, 512, 1024, 2048)),
    (models.build_resnet50_v2, {}, 64, (256, 512, 1024, 2048)),
    (models.build_se_resnet50, {}, 64, (256, 512, 1024, 2048)),
    (models.build_densenet121, {}, 64, (256, 512, 1024, 1024)),
    (models.build_vgg16, {}, 64, (256, 512, 512, 512)),
    (models.build_shufflenet_v2, {}, 64, (24, 116, 232, 1024)),
    (models.build_googlenet, {}, 64, (192, 480, 832, 1024)),
]


@pytest.mark.parametrize("builder,kwargs,size,channels", FEATURE_CASES,
                         ids=lambda v: getattr(v, "__name__", None))
def test_features_only_strides_and_channels(builder, kwargs, size, channels):
    """Stage outputs at strides 4/8/16/32 with the architecture's channel counts."""
    model = builder(include_top=False, features_only=True, input_shape=(size, size, 3),
                    **kwargs)
    assert [tuple(o.shape) for o in model.outputs] == [
        (None, size // s, size // s, c) for s, c in zip((4, 8, 16, 32), channels)]
    assert [(f.stride, f.reduction, f.channels) for f in model.feature_info] == [
        (s, s, c) for s, c in zip((4, 8, 16, 32), channels)]
    picked = builder(include_top=False, features_only=True, out_indices=(1, 3),
                     input_shape=(size, size, 3), **kwargs)
    assert [o.shape[-1] for o in picked.outputs] == [channels[1], channels[3]]


@pytest.mark.parametrize("builder,size,maps", [
    # Inception-V3 paper, Table 1: 35x35x288, 17x17x768, 8x8x2048 at 299x299.
    (models.build_inception_v3, 299, ((71, 192), (35, 288), (17, 768), (8, 2048))),
    # Xception paper, Fig. 5: 19x19x728 after the entry flow, 10x10x2048 at the end.
    (models.build_xception, 299, ((74, 128), (37, 256), (19, 728), (10, 2048))),
    # AlexNet (torchvision): 55x55x64 conv1, 27x27x192 conv2, 13x13x256, 6x6x256 pooled.
    (models.build_alexnet, 224, ((55, 64), (27, 192), (13, 256), (6, 256))),
], ids=["inception_v3", "xception", "alexnet"])
def test_features_only_valid_padded_families(builder, size, maps):
    """Families with valid padding: the maps of the published tables."""
    model = builder(include_top=False, features_only=True, input_shape=(size, size, 3))
    assert [tuple(o.shape) for o in model.outputs] == [(None, s, s, c) for s, c in maps]


@pytest.mark.parametrize("builder", [
    models.build_mobilenet_v2, models.build_mobilenet, models.build_resnet50,
    models.build_resnet50_v2, models.build_densenet121,
    pytest.param(models.build_xception, marks=pytest.mark.slow),
    pytest.param(models.build_se_resnet50, marks=pytest.mark.slow),
], ids=lambda b: b.__name__)
def test_output_stride_dilates_without_new_params(builder):
    """output_stride 16 and 8: final map at that stride, parameter count unchanged."""
    size = 128
    base = builder(include_top=False, input_shape=(size, size, 3))
    assert base.output_shape[1:3] == (size // 32, size // 32)
    for output_stride in (16, 8):
        model = builder(include_top=False, input_shape=(size, size, 3),
                        output_stride=output_stride)
        assert model.output_shape[1:3] == (size // output_stride, size // output_stride)
        assert model.count_params() == base.count_params()
    x = np.random.default_rng(0).uniform(-1, 1, (1, size, size, 3)).astype("float32")
    assert np.all(np.isfinite(np.asarray(model(x))))


@pytest.mark.parametrize("builder", [models.build_inception_v3, models.build_vgg16,
                                     models.build_googlenet, models.build_shufflenet_v2,
                                     models.build_alexnet], ids=lambda b: b.__name__)
def test_output_stride_refused_where_downsampling_cannot_dilate(builder):
    """Families whose downsampling is strided pooling/reductions refuse output_stride<32."""
    with pytest.raises(ValueError, match="supports only output_stride=32"):
        builder(include_top=False, output_stride=16)


def _keras_file(tmp_path, model) -> str:
    rng = np.random.default_rng(0)
    for w in model.weights:
        if w.path.endswith(("beta", "moving_mean", "bias")):
            w.assign(rng.normal(0, 0.1, tuple(w.shape)).astype("float32"))
    path = str(tmp_path / "w.h5")
    model.save(path)
    return path


def test_in_channels_adapts_first_conv(tmp_path):
    """timm's adapt_input_conv: 1 channel sums RGB kernels, N channels tile and rescale.

    So a gray image through the 1-channel model equals it replicated to RGB through the
    3-channel one, and [x, x] through a 6-channel model equals x through the original.
    """
    args = {"alpha": 0.35, "input_shape": None, "classes": 10}
    theirs = A.MobileNetV2(weights=None, **{**args, "input_shape": (96, 96, 3)})
    path = _keras_file(tmp_path, theirs)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 96, 96, 3)).astype("float32")
    gray = models.build_mobilenet_v2(weights=path, in_channels=1,
                                     **{**args, "input_shape": (96, 96, 1)})
    assert gray.input_shape == (None, 96, 96, 1)
    np.testing.assert_allclose(np.asarray(gray(x[..., :1])),
                               np.asarray(theirs(np.repeat(x[..., :1], 3, axis=-1))),
                               rtol=1e-5, atol=1e-5)
    six = models.build_mobilenet_v2(weights=path, in_channels=6,
                                    **{**args, "input_shape": (96, 96, 6)})
    np.testing.assert_allclose(np.asarray(six(np.concatenate([x, x], axis=-1))),
                               np.asarray(theirs(x)), rtol=1e-5, atol=1e-5)
    kernel = theirs.get_layer("Conv1").kernel.numpy()
    np.testing.assert_allclose(six.get_layer("Conv1").kernel.numpy(),
                               np.concatenate([kernel, kernel], axis=2) * 0.5, rtol=1e-6)
    untrained = models.build_mobilenet_v2(in_channels=4, include_top=False, alpha=0.35)
    assert untrained.input_shape == (None, None, None, 4)


def test_features_only_loads_weights(tmp_path):
    """A features-only model takes the weights of the full model (with or without top)."""
    theirs = A.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)
    path = _keras_file(tmp_path, theirs)
    feats = models.build_mobilenet_v2(weights=path, include_top=False, features_only=True,
                                      alpha=0.35, input_shape=(96, 96, 3), classes=10)
    probe = keras.Model(theirs.input, theirs.get_layer("block_12_add").output)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 96, 96, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(feats(x)[2]), np.asarray(probe(x)), rtol=1e-5,
                               atol=1e-5)


def test_mixed_float16_classifier_is_float32():
    """Under mixed_float16 the body computes in float16 and the classifier in float32."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        for model in (models.build_mobilenet_v2(alpha=0.35, input_shape=(96, 96, 3),
                                                classes=10),
                      models.build_mobilenet(alpha=0.25, input_shape=(96, 96, 3),
                                             classes=10)):
            assert model.layers[1].compute_dtype == "float16"
            out = model(np.zeros((1, 96, 96, 3), "float32"))
            assert keras.backend.standardize_dtype(out.dtype) == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


def test_width_multiplier_and_drop_path():
    """width_multiplier scales the widths; drop path is inert at inference, random in
    training, and absent at rate 0 (keras' layer list)."""
    half = models.build_resnet50(include_top=False, width_multiplier=0.5,
                                 input_shape=(64, 64, 3))
    assert half.output_shape[-1] == 1024
    plain = models.build_resnet50(include_top=False, input_shape=(64, 64, 3))
    assert not any("drop_path" in layer.name for layer in plain.layers)
    model = models.build_resnet50(include_top=False, input_shape=(64, 64, 3),
                                  drop_path_rate=0.5)
    rates = [layer.rate for layer in model.layers if layer.name.endswith("drop_path")]
    # 16 blocks, the rate rising linearly from 0 to 0.5 (the first block gets none).
    assert rates == pytest.approx([0.5 * i / 15 for i in range(1, 16)])
    x = np.random.default_rng(0).uniform(-1, 1, (4, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x, training=False)),
                               np.asarray(model(x, training=False)))
    assert not np.allclose(np.asarray(model(x, training=True)),
                           np.asarray(model(x, training=True)))
    alias = models.build_mobilenet_v2(width_multiplier=0.5, include_top=False,
                                      input_shape=(96, 96, 3))
    assert alias.count_params() == A.MobileNetV2(alpha=0.5, include_top=False, weights=None,
                                                 input_shape=(96, 96, 3)).count_params()


def _capture_get_file(monkeypatch):
    calls = []

    def fake_get_file(fname=None, origin=None, **kwargs):
        calls.append((fname, origin, kwargs.get("file_hash")))
        raise RuntimeError("stop here")

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", fake_get_file)
    return calls


IMAGENET_CASES = [
    (models.build_mobilenet_v2, A.MobileNetV2, {"alpha": 0.35, "input_shape": (96, 96, 3)}),
    (models.build_densenet121, A.DenseNet121, {}),
    pytest.param(models.build_mobilenet, A.MobileNet, {"alpha": 0.25,
                                                       "input_shape": (128, 128, 3)},
                 marks=pytest.mark.slow),
    pytest.param(models.build_resnet50, A.ResNet50, {}, marks=pytest.mark.slow),
    pytest.param(models.build_resnet50_v2, A.ResNet50V2, {}, marks=pytest.mark.slow),
    pytest.param(models.build_vgg16, A.VGG16, {}, marks=pytest.mark.slow),
    pytest.param(models.build_inception_v3, A.InceptionV3, {}, marks=pytest.mark.slow),
    pytest.param(models.build_xception, A.Xception, {}, marks=pytest.mark.slow),
    pytest.param(models.build_densenet169, A.DenseNet169, {}, marks=pytest.mark.slow),
    pytest.param(models.build_densenet201, A.DenseNet201, {}, marks=pytest.mark.slow),
]


@pytest.mark.parametrize("ours,ref,kwargs", IMAGENET_CASES,
                         ids=lambda v: getattr(v, "__name__", None))
def test_imagenet_requests_keras_files_and_fails_clearly_offline(ours, ref, kwargs,
                                                                 monkeypatch):
    """weights='imagenet' asks get_file for keras.applications' exact file, URL and hash;
    a failed download says how to pass a local file."""
    calls = _capture_get_file(monkeypatch)
    for include_top in (True, False):
        with pytest.raises(RuntimeError, match="stop here"):
            ref(weights="imagenet", include_top=include_top, **kwargs)
        with pytest.raises(WeightsUnavailableError, match="weights='/path/to/") as err:
            ours(weights="imagenet", include_top=include_top, **kwargs)
        assert calls[-1] == calls[-2]
        assert calls[-1][0] in str(err.value)


# Published parameter counts (trainable parameters, as PyTorch counts them).
# torchvision model docs, "num_params" of the ImageNet weights:
#   https://pytorch.org/vision/stable/models.html
TORCHVISION_SHUFFLENET_V2 = {0.5: 1_366_792, 1.0: 2_278_604, 1.5: 3_503_624, 2.0: 7_393_996}
TORCHVISION_ALEXNET = 61_100_840
TORCHVISION_GOOGLENET = 6_624_904  # aux_logits=False; its "5x5" branches are 3x3 (#906)
# torchvision resnet50 (25,557,032) plus the SE layers of Hu et al. (reduction 16): per
# block 2*C*C/16 + C/16 + C; timm's seresnet50 lists the same 28.09M.
TIMM_SE_RESNET50 = 28_088_024


def _within(value: int, published: int, tolerance: float = 0.005) -> bool:
    return abs(value - published) <= tolerance * published


@pytest.mark.parametrize("width", sorted(TORCHVISION_SHUFFLENET_V2))
def test_shufflenet_v2_matches_torchvision(width):
    """ShuffleNetV2 x0.5-x2.0 vs torchvision's published counts (within 0.5%)."""
    model = models.create_model(f"shufflenet_v2_x{str(width).replace('.', '_')}")
    assert _within(trainable_params(model), TORCHVISION_SHUFFLENET_V2[width])


def test_alexnet_matches_torchvision():
    """AlexNet vs torchvision's 61,100,840 (within 0.5%)."""
    assert _within(trainable_params(models.build_alexnet()), TORCHVISION_ALEXNET)


def test_googlenet_matches_torchvision_and_paper_table():
    """GoogLeNet with torchvision's 3x3 "5x5" branches is within 0.5% of its 6,624,904;
    the paper's 5x5 layout has exactly the weights Table 1's widths give."""
    assert _within(trainable_params(models.build_googlenet(kernel_5x5=3)),
                   TORCHVISION_GOOGLENET)
    table1 = ((192, 64, 96, 128, 16, 32, 32), (256, 128, 128, 192, 32, 96, 64),
              (480, 192, 96, 208, 16, 48, 64), (512, 160, 112, 224, 24, 64, 64),
              (512, 128, 128, 256, 24, 64, 64), (512, 112, 144, 288, 32, 64, 64),
              (528, 256, 160, 320, 32, 128, 128), (832, 256, 160, 320, 32, 128, 128),
              (832, 384, 192, 384, 48, 128, 128))
    # Stem convs: weights + BN gamma/beta; module convs: weights + BN beta (unscaled BN).
    expected = (7 * 7 * 3 * 64 + 2 * 64) + (64 * 64 + 2 * 64) + (9 * 64 * 192 + 2 * 192)
    for c_in, n1, r3, n3, r5, n5, pool in table1:
        expected += (c_in * (n1 + r3 + r5 + pool) + 9 * r3 * n3 + 25 * r5 * n5
                     + n1 + r3 + n3 + r5 + n5 + pool)
    expected += 1024 * 1000 + 1000
    assert trainable_params(models.build_googlenet()) == expected
    aux = models.build_googlenet(aux_logits=True)
    assert len(aux.outputs) == 3


def test_se_resnet50_matches_published():
    """SE-ResNet50 vs 28,088,024 (torchvision ResNet50 + SE layers; timm seresnet50)."""
    assert _within(trainable_params(models.build_se_resnet50()), TIMM_SE_RESNET50)


def test_registry():
    """Every builder is registered; create_model passes arguments through."""
    names = models.list_models()
    for expected in ("inception_v3", "densenet121", "densenet169", "densenet201",
                     "mobilenet_v2", "resnet50", "resnet50_v2", "vgg16", "mobilenet",
                     "xception", "googlenet", "shufflenet_v2_x0_5", "se_resnet50",
                     "alexnet"):
        assert expected in names
    assert models.list_models("densenet*") == ["densenet121", "densenet169", "densenet201"]
    model = models.create_model("mobilenet_v2", alpha=0.35, input_shape=(96, 96, 3),
                                classes=10)
    assert model.output_shape == (None, 10)
    import keras_cnnkit

    assert keras_cnnkit.build_mobilenet_v2 is models.build_mobilenet_v2
    assert keras_cnnkit.create_model is models.create_model
    with pytest.raises(ValueError, match="registered models"):
        models.create_model("resnet9000")


@pytest.mark.parametrize("call,message", [
    (lambda: models.build_inception_v3(include_top=False, input_shape=(74, 74, 3)),
     "at least 75x75"),
    (lambda: models.build_xception(include_top=False, input_shape=(70, 128, 3)),
     "at least 71x71"),
    (lambda: models.build_densenet121(include_top=False, input_shape=(31, 31, 3)),
     "at least 32x32"),
    (lambda: models.build_densenet121(weights="imagenet", classes=10),
     "`classes` must be 1000"),
    (lambda: models.build_mobilenet_v2(weights="imagenet", alpha=0.6),
     r"alpha in \(0.35, 0.5, 0.75, 1.0, 1.3, 1.4\)"),
    (lambda: models.build_mobilenet(weights="imagenet", alpha=0.6),
     r"alpha in \(0.25, 0.5, 0.75, 1.0\)"),
    (lambda: models.build_mobilenet_v2(include_top=True, features_only=True),
     "pass include_top=False"),
    (lambda: models.build_resnet50(include_top=False, output_stride=4),
     "must be 8, 16 or 32"),
    (lambda: models.build_vgg16(drop_path_rate=0.1), "no residual branches"),
    (lambda: models.build_resnet50(include_top=False, features_only=True,
                                   out_indices=(0, 4)), "indices in 0-3"),
    (lambda: models.build_shufflenet_v2(width_multiplier=0.75), r"one of \[0.5, 1.0"),
    (lambda: models.build_googlenet(weights="imagenet"), "no published Keras ImageNet"),
    (lambda: models.build_resnet50(weights="/no/such/file.h5"), "path to an existing"),
    (lambda: models.build_resnet50(weights="imagenet", width_multiplier=0.5),
     "width_multiplier=1.0"),
    (lambda: models.build_vgg16(weights="imagenet", input_shape=(64, 64, 3)),
     "takes 224x224 inputs"),
    (lambda: models.build_resnet50(pooling="mean", include_top=False), "'avg' or 'max'"),
    (lambda: models.build_resnet50(weights="imagenet", classifier_activation="sigmoid"),
     "None or 'softmax'"),
    (lambda: models.build_mobilenet_v2(include_top=False, in_channels=2,
                                       input_shape=(96, 96, 3)), "disagrees"),
])
def test_bad_arguments_raise_value_error_saying_what_is_allowed(call, message):
    """Bad input is refused before anything is built, saying what is allowed."""
    with pytest.raises(ValueError, match=message):
        call()


def test_input_tensor_and_keras_file_round_trip(tmp_path):
    """An input tensor is used as keras.applications uses it, and a built model (with
    this package's layers) saves to .keras and loads back with the same outputs."""
    inputs = keras.Input((64, 64, 3))
    model = models.build_shufflenet_v2(input_tensor=inputs, width_multiplier=0.5,
                                       classes=10)
    assert model.inputs[0] is inputs
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-6)
