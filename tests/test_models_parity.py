"""Builders versus keras.applications: parameter counts, weight order, weight files, outputs.

For every builder keras.applications also has: the same ``count_params()`` with and
without the top, at ``classes=10``, at two input sizes (MobileNets at every ImageNet
alpha); the same list of weight shapes in layer order; a weights file saved from the
keras.applications model (legacy ``.h5``, ``model.save``) loads into ours, after which
the outputs on random input agree to 1e-5.
"""
import functools

import keras
import numpy as np
import pytest

from keras_cnnkit import models

A = keras.applications

pytestmark = pytest.mark.usefixtures("fresh_keras_session")


MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
MOBILENET_ALPHAS = (0.25, 0.5, 0.75, 1.0)

# (id, our builder, keras.applications twin, extra kwargs, two input sizes, slow)
CASES = [
    *[(f"mobilenet_v2-{a}", models.build_mobilenet_v2, A.MobileNetV2, {"alpha": a},
       (96, 128), False) for a in MOBILENET_V2_ALPHAS],
    *[(f"mobilenet-{a}", models.build_mobilenet, A.MobileNet, {"alpha": a}, (96, 128),
       a != 1.0) for a in MOBILENET_ALPHAS],
    ("mobilenet-1.0-dm2", models.build_mobilenet, A.MobileNet,
     {"alpha": 1.0, "depth_multiplier": 2}, (96, 128), True),
    ("densenet121", models.build_densenet121, A.DenseNet121, {}, (32, 64), False),
    ("densenet169", models.build_densenet169, A.DenseNet169, {}, (32, 64), True),
    ("densenet201", models.build_densenet201, A.DenseNet201, {}, (32, 64), True),
    ("resnet50", models.build_resnet50, A.ResNet50, {}, (32, 64), True),
    ("resnet50_v2", models.build_resnet50_v2, A.ResNet50V2, {}, (32, 64), True),
    ("resnet50-version2", functools.partial(models.build_resnet50, version=2), A.ResNet50V2,
     {}, (32, 48), True),
    ("vgg16", models.build_vgg16, A.VGG16, {}, (32, 48), False),
    ("inception_v3", models.build_inception_v3, A.InceptionV3, {}, (75, 107), True),
    ("xception", models.build_xception, A.Xception, {}, (71, 96), True),
]


#: Slow for the weights-file test only: a file saved by keras.applications loads the same
#: way at every MobileNetV2 alpha (the alpha changes widths, not names or order), and
#: those widths, in layer order, are checked at every alpha by
#: test_param_count_and_weight_order in the fast suite; 0.35 and 1.0 load a file there.
WEIGHTS_FILE_SLOW = {f"mobilenet_v2-{a}" for a in (0.5, 0.75, 1.3, 1.4)}


def _params(case, also_slow=frozenset()):
    case_id, ours, ref, kwargs, sizes, slow = case
    marks = [pytest.mark.slow] if slow or case_id in also_slow else []
    return pytest.param(ours, ref, kwargs, sizes, id=case_id, marks=marks)


def weight_shapes(model) -> list:
    """Every weight's shape, layer by layer in the model's layer order."""
    return [tuple(w.shape) for layer in model.layers for w in layer.weights]


def layer_signature(model) -> list:
    """Each layer's class and configuration without its name, negative axes made
    positive: two models with equal signatures run the same ops in the same order."""
    signature = []
    for layer in model.layers:
        config = layer.get_config()
        config.pop("name", None)
        axis = config.get("axis")
        if isinstance(axis, int) and axis < 0:
            config["axis"] = axis + len(keras.tree.flatten(layer.input)[0].shape)
        signature.append((type(layer).__name__, repr(sorted(config.items()))))
    return signature


def randomise(model, seed: int = 0) -> None:
    """Give batch norms and biases non-trivial values so that a mis-ordered load shows."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if w.path.endswith(("gamma", "moving_variance")):
            w.assign(rng.uniform(0.5, 1.5, shape).astype("float32"))
        elif w.path.endswith(("beta", "moving_mean", "bias")):
            w.assign(rng.normal(0.0, 0.1, shape).astype("float32"))


@pytest.mark.parametrize("ours,ref,kwargs,sizes", [_params(c) for c in CASES])
def test_param_count_and_weight_order(ours, ref, kwargs, sizes):
    """Same count_params() and weight shapes in layer order, with and without the top;
    the same layer classes and configurations, so the same computation."""
    for size in sizes:
        for include_top in (True, False):
            args = {"input_shape": (size, size, 3), "classes": 10, "include_top": include_top,
                    **kwargs}
            mine, theirs = ours(weights=None, **args), ref(weights=None, **args)
            assert mine.count_params() == theirs.count_params(), (size, include_top)
            assert weight_shapes(mine) == weight_shapes(theirs), (size, include_top)
            assert mine.output_shape == theirs.output_shape
            if ours is not models.build_vgg16:  # VGG's ReLU is a layer of its own here
                assert layer_signature(mine) == layer_signature(theirs), (size, include_top)


@pytest.mark.parametrize("ours,ref,kwargs,sizes",
                         [_params(c, also_slow=WEIGHTS_FILE_SLOW) for c in CASES])
def test_keras_weights_file_loads_and_outputs_match(ours, ref, kwargs, sizes, tmp_path):
    """A legacy .h5 saved from keras.applications loads; outputs agree to 1e-5."""
    size = sizes[0]
    args = {"input_shape": (size, size, 3), "classes": 10, **kwargs}
    theirs = ref(weights=None, **args)
    randomise(theirs)
    path = str(tmp_path / "x.h5")
    theirs.save(path)
    mine = ours(weights=path, **args)
    x = np.random.default_rng(1).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(mine(x)), np.asarray(theirs(x)), rtol=1e-5,
                               atol=1e-5)
    fresh = ours(weights=None, **args)
    fresh.load_weights(path)
    np.testing.assert_allclose(np.asarray(fresh(x)), np.asarray(theirs(x)), rtol=1e-5,
                               atol=1e-5)


def test_default_names_and_pooling_match_keras():
    """Model names and the pooled (include_top=False) outputs follow keras.applications."""
    for pooling in ("avg", "max"):
        mine = models.build_mobilenet_v2(include_top=False, pooling=pooling, alpha=0.35,
                                         input_shape=(96, 96, 3))
        theirs = A.MobileNetV2(include_top=False, pooling=pooling, alpha=0.35, weights=None,
                               input_shape=(96, 96, 3))
        assert mine.name == theirs.name == "mobilenetv2_0.35_96"
        assert mine.output_shape == theirs.output_shape == (None, 1280)
    assert models.build_densenet121(input_shape=(32, 32, 3), include_top=False).name == \
        A.DenseNet121(weights=None, input_shape=(32, 32, 3), include_top=False).name


def test_channels_first_param_counts_match_keras():
    """Under channels_first the builders still match keras.applications' counts."""
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        for ours, ref, kwargs in ((models.build_mobilenet_v2, A.MobileNetV2, {"alpha": 0.5}),
                                  (models.build_resnet50, A.ResNet50, {})):
            args = {"input_shape": (3, 64, 64), "classes": 10, **kwargs}
            mine, theirs = ours(**args), ref(weights=None, **args)
            assert mine.count_params() == theirs.count_params()
            assert mine.output_shape == theirs.output_shape
            assert layer_signature(mine) == layer_signature(theirs)
            assert weight_shapes(mine) == weight_shapes(theirs)
    finally:
        keras.config.set_image_data_format(previous)
