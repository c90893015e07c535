"""Every ``keras.layers`` class is costed and shaped, or says why not.

* Each class is in the layer table, or in ``NOT_ANALYSED`` with its reason (foreign code,
  RNN cells costed in their RNN, the not-yet-modelled ConvLSTM and audio front ends).
* The layers mapped to the identity return their input unchanged at inference (run here).
* Each layer family added for this walks end to end, live and from a ``.keras`` file:
  Keras' ``count_params()`` and output shape, and hand-counted MACs where they are not 0.
"""
import inspect

import keras
import numpy as np
import pytest
import static_model_files as smf
from keras import layers as L

from keras_cnnkit.analysis.cost import summarize
from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
from keras_cnnkit.analysis.frontends.static_file import load_graph
from keras_cnnkit.analysis.image_layers import INFERENCE_IDENTITY
from keras_cnnkit.analysis.keras_layers import NOT_ANALYSED, is_known


def test_every_keras_layer_is_mapped_or_says_why_not():
    names = {n for n in dir(keras.layers) if inspect.isclass(getattr(keras.layers, n))}
    unmapped = sorted(n for n in names if not is_known(n) and n not in NOT_ANALYSED)
    assert unmapped == []
    assert not set(NOT_ANALYSED) & {n for n in names if is_known(n)}
    assert all(reason.strip() for reason in NOT_ANALYSED.values())


#: Constructor arguments the identity-at-inference layers need.
_ARGS = {
    "RandomBrightness": (0.2,), "RandomContrast": (0.2,), "RandomRotation": (0.2,),
    "RandomTranslation": (0.2, 0.2), "RandomZoom": (0.2,), "RandomShear": (0.2, 0.2),
    "RandomColorDegeneration": (0.5,), "RandomSaturation": (0.5,),
    "RandomSharpness": (0.5,), "RandomHue": (0.5,), "RandomPosterization": (4,),
    "MaxNumBoundingBoxes": (3,),
}


@pytest.mark.parametrize("name", INFERENCE_IDENTITY)
def test_identity_layers_return_their_input_at_inference(name):
    layer = getattr(keras.layers, name)(*_ARGS.get(name, ()))
    x = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    out = layer(x, training=False)
    if isinstance(out, dict):
        out = out["images"]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), x, rtol=0, atol=1e-6)


def _seq(name="seq", shape=(6, 5), dtype="float32"):
    return keras.Input(shape, name=name, dtype=dtype)


def _apply(layer, *shapes, call=None):
    """A model of ``layer`` on inputs of ``shapes`` (``call(layer, inputs)``: how)."""
    inputs = [_seq(f"in{i}", shape) for i, shape in enumerate(shapes)]
    out = call(layer, inputs) if call else layer(inputs[0] if len(inputs) == 1 else inputs)
    return keras.Model(inputs, out)


def _ints(shape):
    inp = keras.Input(shape, dtype="int32")
    return inp


#: name → (model builder, MACs by hand).
MODELS = {
    "mha": (lambda: _apply(L.MultiHeadAttention(2, 3), (6, 5), (4, 7),
                           call=lambda l, i: l(i[0], i[1])),
            6 * 5 * 2 * 3 + 4 * 7 * 2 * 3 * 2 + 6 * 2 * 3 * 5 + 2 * 6 * 4 * 6),
    "mha_key": (lambda: _apply(L.MultiHeadAttention(2, 3, value_dim=4, output_shape=9),
                               (6, 5), (4, 7), (4, 8), call=lambda l, i: l(i[0], i[1],
                                                                           key=i[2])),
                6 * 5 * 6 + 4 * 8 * 6 + 4 * 7 * 8 + 6 * 8 * 9 + 2 * 6 * 4 * 7),
    "mha_mask": (lambda: _apply(L.MultiHeadAttention(2, 3), (6, 5), (4, 7), (4, 8), (6, 4),
                                call=lambda l, i: l(i[0], i[1], key=i[2],
                                                    attention_mask=i[3])),
                 6 * 5 * 6 + 4 * 8 * 6 + 4 * 7 * 6 + 6 * 6 * 5 + 2 * 6 * 4 * 6),
    "gqa": (lambda: _apply(L.GroupQueryAttention(3, 4, 2), (6, 7), (4, 7),
                           call=lambda l, i: l(i[0], i[1])),
            6 * 7 * 12 + 4 * 7 * 6 * 2 + 6 * 12 * 7 + 4 * 6 * 4 * 6),
    "dot_attention": (lambda: _apply(L.Attention(), (6, 7), (4, 7)), 6 * 4 * 7 * 2),
    "additive": (lambda: _apply(L.AdditiveAttention(), (6, 7), (4, 7)), 6 * 4 * 7),
    "lstm": (lambda: _apply(L.LSTM(4), (6, 5)), 6 * 4 * (5 + 4) * 4),
    "gru_seq": (lambda: _apply(L.GRU(3, return_sequences=True), (6, 5)), 6 * 3 * (5 + 3) * 3),
    "simple_rnn": (lambda: _apply(L.SimpleRNN(3), (6, 5)), 6 * (5 + 3) * 3),
    "bidirectional": (lambda: _apply(L.Bidirectional(L.LSTM(2)), (6, 5)),
                      2 * 6 * 4 * (5 + 2) * 2),
    "rnn_cells": (lambda: _apply(L.RNN([L.LSTMCell(3), L.GRUCell(2)]), (6, 5)),
                  6 * 4 * (5 + 3) * 3 + 6 * 3 * (3 + 2) * 2),
    "adaptive": (lambda: _apply(L.AdaptiveAveragePooling2D((5, 4)), (12, 12, 3)), 0),
    "rms": (lambda: _apply(L.RMSNormalization(), (6, 5)), 0),
    "repeat": (lambda: _apply(L.RepeatVector(3), (5,)), 0),
    "dot": (lambda: _apply(L.Dot(axes=2), (6, 5), (4, 5)), 6 * 4 * 5),
    "dot_normalized": (lambda: _apply(L.Dot(axes=1, normalize=True), (5,), (5,)), 5),
    "time_conv": (lambda: _apply(L.TimeDistributed(L.Conv2D(4, 3)), (3, 10, 10, 2)),
                  3 * 8 * 8 * 4 * 9 * 2),
    "time_dense": (lambda: _apply(L.TimeDistributed(L.Dense(4)), (6, 5)), 6 * 5 * 4),
    "spectral": (lambda: _apply(L.SpectralNormalization(L.Conv2D(4, 3)), (12, 12, 3)),
                 10 * 10 * 4 * 9 * 3),
    "reversible": (lambda: keras.Model(i := _ints((7,)), L.ReversibleEmbedding(
        11, 4, tie_weights=False)(i)), 0),
    "resizing": (lambda: _apply(L.Resizing(5, 7), (12, 12, 3)), 0),
    "pipeline": (lambda: _apply(L.Pipeline([L.RandomFlip(), L.Resizing(6, 6)]), (12, 12, 3)),
                 0),
    "center_crop": (lambda: _apply(L.CenterCrop(8, 6), (12, 12, 3)), 0),
    "random_crop": (lambda: _apply(L.RandomCrop(8, 6), (12, 12, 3)), 0),
    "einsum_dense": (lambda: _apply(L.EinsumDense("abc,cd->abd", (6, 4), bias_axes="d"),
                                    (6, 5)), 6 * 5 * 4),
    "category": (lambda: keras.Model(i := _ints((3,)), L.CategoryEncoding(9)(i)), 0),
    "hashing": (lambda: keras.Model(i := _ints((1,)), L.Hashing(7, output_mode="one_hot")(i)),
                0),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_layer_family_walks_live_and_from_a_file(name, tmp_path):
    """Live and from ``.keras``: Keras' params and output shapes; MACs by hand."""
    build, macs = MODELS[name]
    model = build()
    live = graph_from_keras(model)
    path = smf.save_quietly(model, tmp_path / f"{name}.keras")
    static = load_graph(path)
    for graph in (live, static):
        assert [n.name for n in graph if n.op == "opaque"] == []
        assert not [n.name for n in graph if "inferred_shape" in n.attrs]
        summary = summarize(graph)
        assert summary.params == model.count_params()
        # SpectralNormalization stores the wrapped kernel twice (it keeps a reference):
        # the file's count differs, the formula's total is Keras'.
        assert not summary.param_mismatches or name == "spectral"
        assert summary.macs == macs
        outputs = model.outputs
        assert [graph[o].output_shape for o in graph.outputs] == \
            [tuple(t.shape[1:]) for t in outputs]
