"""Embedding layers are costed (not opaque) and a Concatenate of flattened maps into a
Dense is a ``flatten-dense-head`` (seed 000's Char-CNN head)."""
import keras

from keras_cnnkit import lint


def _char_cnn_head():
    """Embedding(32, 16) → conv 24 → pool → conv 48 → pool; both maps flattened, concatenated
    and fed to Dense(128), as seed 000's Char_CNN does."""
    inp = keras.Input((64,), dtype="int32")
    x = keras.layers.Embedding(32, 16, name="embedding")(inp)
    x1 = keras.layers.MaxPooling1D(2)(keras.layers.Conv1D(24, 3, padding="same")(x))
    x2 = keras.layers.MaxPooling1D(2)(keras.layers.Conv1D(48, 3, padding="same")(x1))
    h = keras.layers.Concatenate()([keras.layers.Flatten()(x1), keras.layers.Flatten()(x2)])
    h = keras.layers.Dropout(0.3)(h)
    out = keras.layers.Dense(128, name="linear1")(h)
    return keras.Model(inp, out)


def test_embedding_is_costed_not_opaque():
    """An Embedding contributes input_dim·output_dim parameters and no opaque finding."""
    model = _char_cnn_head()
    report = lint(model)
    assert report.summary.params == model.count_params()
    assert not report.summary.unknown
    assert "opaque-layer" not in {f.symbol for f in report.findings}


def test_concatenated_flattens_into_dense_is_a_flatten_dense_head():
    """Flattened (32, 24) and (16, 48) maps: 1,536 inputs → 128 units has 1536·128 + 128 =
    196,736 parameters; pooled, 24 + 48 = 72 inputs: 72·128 + 128 = 9,344."""
    report = lint(_char_cnn_head(), select=["flatten-dense-head"])
    (finding,) = report.findings
    assert finding.layer == "linear1"
    assert (finding.params_before, finding.params_after) == (196_736, 9_344)
    assert (finding.macs_before, finding.macs_after) == (1536 * 128, 72 * 128)


def test_concat_of_vectors_is_not_flagged():
    """Near miss: concatenating already pooled vectors is what the fix produces."""
    inp = keras.Input((8, 8, 16))
    a = keras.layers.GlobalAveragePooling2D()(inp)
    b = keras.layers.Flatten()(keras.layers.GlobalMaxPooling2D(keepdims=True)(inp))
    out = keras.layers.Dense(10)(keras.layers.Concatenate()([a, b]))
    report = lint(keras.Model(inp, out), select=["flatten-dense-head"])
    assert not report.findings
