"""Every public block: config round trip, ``.keras`` save/load, one training step.

One table drives all three checks.  Rows marked ``backend_agnostic`` also run on the
JAX and PyTorch backends in the tox matrix.
"""
import keras
import numpy as np
import pytest

from keras_cnnkit import layers as L

AGNOSTIC = pytest.mark.backend_agnostic

BLOCKS = [
    # (id, factory, input shape without batch, marks)
    ("conv_bn_act_2d", lambda: L.ConvBNAct(8, 3, strides=2, activation="relu6"), (9, 9, 4),
     AGNOSTIC),
    ("conv_bn_act_1d", lambda: L.ConvBNAct(6, 5, use_bn=False), (16, 3), AGNOSTIC),
    ("dilated", lambda: L.DilatedConv(6, 3, dilation_rate=2), (10, 10, 4), ()),
    ("factorized_stacked", lambda: L.FactorizedConv(6, 5), (9, 9, 3), ()),
    ("factorized_asym", lambda: L.FactorizedConv(6, 5, mode="asymmetric", strides=2),
     (9, 9, 3), ()),
    ("bottleneck_1d", lambda: L.Bottleneck1x1(12, 4, expand=True), (20, 8), ()),
    ("inception_v1", lambda: L.InceptionModule("v1", filters=(4, 4, 6, 2, 3, 3)),
     (8, 8, 6), ()),
    ("inception_v3_b", lambda: L.InceptionModule("v3_b", filters=(4, 3, 4, 3, 4, 4)),
     (7, 7, 6), ()),
    ("inception_v3_c", lambda: L.InceptionModule("v3_c", filters=(4, 3, 4, 3, 4, 4)),
     (5, 5, 6), AGNOSTIC),
    ("inception_v3_red_b", lambda: L.InceptionModule("v3_reduction_b", filters=(3, 4, 3, 4)),
     (9, 9, 6), ()),
    ("residual_v1_se_droppath", lambda: L.ResidualBlock(4, use_se=True, drop_path_rate=0.2),
     (8, 8, 16), ()),
    ("residual_v2_basic_s2", lambda: L.ResidualBlock(8, "basic", version=2, strides=2),
     (8, 8, 4), AGNOSTIC),
    ("dense", lambda: L.DenseBlock(2, growth_rate=4), (6, 6, 8), ()),
    ("transition", lambda: L.TransitionBlock(0.5), (6, 6, 8), ()),
    ("dws_s2", lambda: L.DepthwiseSeparableConv(8, strides=2, activation="relu6"),
     (8, 8, 4), ()),
    ("inverted_residual_s2", lambda: L.InvertedResidual(8, strides=2), (9, 9, 4), AGNOSTIC),
    ("inverted_residual_se_droppath",
     lambda: L.InvertedResidual(8, expansion=3, use_se=True, drop_path_rate=0.1),
     (6, 6, 8), ()),
    ("squeeze_excite", lambda: L.SqueezeExcite(0.5, divisor=1), (5, 5, 8), AGNOSTIC),
    ("group_conv_split", lambda: L.GroupConv(8, 3, groups=4, implementation="split"),
     (6, 6, 8), AGNOSTIC),
    ("group_conv_native", lambda: L.GroupConv(8, 3, groups=2, implementation="native"),
     (6, 6, 4), ()),
    ("channel_shuffle", lambda: L.ChannelShuffle(3), (4, 4, 6), AGNOSTIC),
    ("channel_slice", lambda: L.ChannelSlice(1, 4), (4, 4, 6), AGNOSTIC),
    ("shuffle_v1_s2", lambda: L.ShuffleUnit(24, strides=2, version=1, groups=2), (8, 8, 8),
     AGNOSTIC),
    ("shuffle_v2_s1", lambda: L.ShuffleUnit(8, version=2), (6, 6, 8), AGNOSTIC),
    ("deformable_v2", lambda: L.DeformableConv2D(4, 3, modulated=True, deformable_groups=2),
     (6, 6, 4), AGNOSTIC),
    ("drop_path", lambda: L.DropPath(0.3, seed=1), (4, 4, 3), AGNOSTIC),
    ("relu6", L.ReLU6, (4, 4, 3), AGNOSTIC),
    ("head_conv1x1", lambda: L.ClassifierHead(5, "conv1x1", hidden_units=[6], kernel_size=3,
                                              dropout=0.2), (3, 3, 4), ()),
    ("head_flatten_dense", lambda: L.ClassifierHead(5, "flatten_dense", hidden_units=[6]),
     (3, 3, 4), ()),
    ("head_gmp_1d", lambda: L.ClassifierHead(3, "gmp"), (10, 4), ()),
]
PARAMS = [pytest.param(make, shape, id=name, marks=marks) for name, make, shape, marks in BLOCKS]


def _sample(shape, seed=0):
    return np.random.default_rng(seed).standard_normal((2, *shape)).astype("float32")


def _model(layer, shape):
    x = keras.Input(shape)
    return keras.Model(x, layer(x))


def _perturb(model):
    """Move every weight (incl. BN statistics) off its initial value, reproducibly."""
    rng = np.random.default_rng(1)
    model.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(w.dtype) ** 2
                       for w in model.get_weights()])


def test_every_public_block_is_in_the_table():
    """The table covers every public layer class."""
    public = {name for name in L.__all__ if isinstance(getattr(L, name), type)} - {"SpecBlock"}
    covered = {type(make()).__name__ for _, make, _, _ in BLOCKS}
    assert public == covered


@pytest.mark.parametrize("make,shape", PARAMS)
def test_config_round_trip(make, shape):
    """``from_config(get_config())`` rebuilds the same block: same config, same outputs."""
    layer = make()
    model = _model(layer, shape)
    _perturb(model)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    clone_model = _model(clone, shape)
    clone_model.set_weights(model.get_weights())
    x = _sample(shape)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(clone_model(x)),
                               keras.ops.convert_to_numpy(model(x)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make,shape", PARAMS)
def test_save_load_identical_outputs(make, shape, tmp_path):
    """Saved to ``.keras`` and loaded back, the model gives identical outputs."""
    model = _model(make(), shape)
    _perturb(model)
    path = tmp_path / "block.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = _sample(shape)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x)),
                                  keras.ops.convert_to_numpy(model(x)))


@pytest.mark.filterwarnings("ignore:The model does not have any trainable weights")
@pytest.mark.parametrize("make,shape", PARAMS)
def test_one_train_step(make, shape):
    """One SGD step on a regression target gives a finite loss."""
    model = _model(make(), shape)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    x = _sample(shape)
    y = _sample(tuple(model.output.shape[1:]), seed=2)
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)


def test_block_signatures_match_spec_arguments():
    """Each composite block's constructor takes exactly its spec's arguments."""
    import inspect

    from keras_cnnkit.blockspec.core import REQUIRED, resolve_config

    blocks = [getattr(L, name) for name in L.__all__]
    blocks = [c for c in blocks if isinstance(c, type) and issubclass(c, L.SpecBlock)
              and c is not L.SpecBlock]
    assert len(blocks) == 13
    for cls in blocks:
        name = cls.__name__
        signature = inspect.signature(cls.__init__).parameters
        args = [a for a in signature if a not in ("self", "kwargs")]
        required = {a: 2 for a in args if signature[a].default is inspect.Parameter.empty}
        resolved = resolve_config(name, {**required, "data_format": "channels_last"})
        assert set(resolved) == set(args), name
        assert REQUIRED not in resolved.values()
