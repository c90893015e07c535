"""``DropPath``: stochastic depth on a residual branch.

Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016,
https://arxiv.org/abs/1603.09382.
"""
# Keras layers: a deep class hierarchy, Layer.add_metric is an abstract stub, and
# Layer.call/compute_output_shape take *args.
# pylint: disable=too-many-ancestors,abstract-method,arguments-differ
import keras

from keras_cnnkit.layers.base import register


@register
class DropPath(keras.layers.Layer):
    """Zero a whole sample's residual branch with probability ``rate`` while training.

    Kept samples are scaled by ``1 / (1 - rate)`` so the expectation is unchanged; at
    inference the layer is the identity.

    Args:
        rate: drop probability, in ``[0, 1)``.
        seed: optional seed of the random draws.
    """

    def __init__(self, rate: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
            raise ValueError(f"`rate` must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        keep = 1.0 - self.rate
        batch = keras.ops.shape(inputs)[0]
        noise_shape = (batch,) + (1,) * (len(inputs.shape) - 1)
        draws = keras.random.uniform(noise_shape, seed=self.seed_generator, dtype=inputs.dtype)
        mask = keras.ops.cast(draws < keep, inputs.dtype)
        return inputs * mask / keep

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
