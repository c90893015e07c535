"""Block defaults are stated once, in the block's spec (``*_DEFAULTS``); each layer's
signature reads them.  Here the signature's defaults are compared with the spec's,
value by value, and the spec's values with the documented keras.applications-style ones.
"""
import inspect

import pytest

keras = pytest.importorskip("keras")

import keras_cnnkit.layers as L  # noqa: E402  pylint: disable=wrong-import-position
from keras_cnnkit.blockspec.core import (  # noqa: E402  pylint: disable=wrong-import-position
    REQUIRED,
    spec_defaults,
)

BLOCKS = [c for c in (getattr(L, n) for n in L.__all__)
          if isinstance(c, type) and issubclass(c, L.SpecBlock) and c is not L.SpecBlock]


def test_every_block_is_covered():
    assert len(BLOCKS) == 13


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
def test_signature_defaults_equal_spec_defaults(cls):
    params = inspect.signature(cls.__init__).parameters
    signature = {name: REQUIRED if p.default is inspect.Parameter.empty else p.default
                 for name, p in params.items() if name not in ("self", "kwargs")}
    spec = spec_defaults(cls.__name__)
    assert signature == spec


def test_conv_bn_act_defaults_are_the_documented_ones():
    """ConvBNAct's docstring: 3×3, stride 1, same padding, ReLU, batch norm with
    Keras' BatchNormalization epsilon 1e-3 and momentum 0.99; no bias before BN."""
    params = inspect.signature(L.ConvBNAct.__init__).parameters
    assert {k: params[k].default for k in ("kernel_size", "strides", "padding",
                                           "activation", "use_bn", "use_bias",
                                           "data_format", "bn_epsilon", "bn_momentum")} == {
        "kernel_size": 3, "strides": 1, "padding": "same", "activation": "relu",
        "use_bn": True, "use_bias": None, "data_format": None, "bn_epsilon": 1e-3,
        "bn_momentum": 0.99}
    assert inspect.signature(L.DilatedConv.__init__).parameters["dilation_rate"].default == 2
