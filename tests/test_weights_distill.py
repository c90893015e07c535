"""``keras_cnnkit.rewrite.distill``: a short knowledge-distillation fine-tune."""
import keras
import numpy as np

from keras_cnnkit.rewrite import distill
from keras_cnnkit.rewrite.distillation import logits_model
from keras_cnnkit.rewrite.fidelity import model_fidelity


def mlp(hidden, seed, activation="softmax"):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6,), name="x")
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(inp)
    out = keras.layers.Dense(4, activation=activation, name="out")(h)
    return keras.Model(inp, out)


class Epochs(keras.callbacks.Callback):
    """Counts the epochs ``fit`` ran (callbacks reach the fit loop)."""

    def __init__(self):
        super().__init__()
        self.ended = 0

    def on_epoch_end(self, epoch, logs=None):
        self.ended += 1


def test_distill_runs_a_tiny_case_and_raises_agreement():
    teacher, student = mlp(32, seed=0), mlp(8, seed=1)
    x = np.random.default_rng(0).standard_normal((512, 6)).astype("float32")
    labels = np.argmax(teacher.predict(x, verbose=0), axis=1)
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    _, agreement_before = model_fidelity(teacher, student, x)
    counter = Epochs()
    result = distill(teacher, student, (x, labels), epochs=4, batch_size=32,
                     learning_rate=1e-2, callbacks=[counter], seed=0)
    losses = result.history.history["loss"]
    assert counter.ended == 4 and len(losses) == 4 and losses[-1] < losses[0]
    assert result.fidelity.top1_agreement > agreement_before
    _, agreement = model_fidelity(teacher, student, x)          # trained in place
    assert agreement == result.fidelity.top1_agreement
    for before, after in zip(teacher_weights, teacher.get_weights()):
        np.testing.assert_array_equal(before, after)            # the teacher is untouched


def test_logits_model_shares_the_softmax_dense():
    model = mlp(8, seed=2)
    logits = logits_model(model)
    x = np.random.default_rng(1).standard_normal((5, 6)).astype("float32")
    z = logits.predict(x, verbose=0)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(1, keepdims=True),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    dense = model.get_layer("out")
    dense.set_weights([w * 2 for w in dense.get_weights()])
    np.testing.assert_allclose(logits.predict(x, verbose=0), 2 * z, rtol=1e-5, atol=1e-5)
    assert logits_model(mlp(8, seed=2, activation=None)) is None


def test_distill_raw_outputs_by_mean_squared_error():
    teacher, student = mlp(16, seed=3, activation=None), mlp(16, seed=4, activation=None)
    x = np.random.default_rng(2).standard_normal((256, 6)).astype("float32")
    error_before, _ = model_fidelity(teacher, student, x)
    result = distill(teacher, student, x, epochs=3, learning_rate=1e-2, outputs="raw")
    assert result.fidelity.output_error < error_before
    assert result.fidelity.top1_agreement is not None       # still (batch, 4) outputs
