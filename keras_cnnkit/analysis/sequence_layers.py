"""Keras' attention, recurrent and text/categorical layers → IR: their entries in the
layer table of :mod:`keras_cnnkit.analysis.keras_layers` (:data:`HANDLERS`).

Same conventions as that table: a handler reads a layer's config and the shapes of its
inputs and returns parts ``(suffix, op kind, attrs, inputs)``; what a kind means is its
definition in :mod:`keras_cnnkit.analysis.ops` (``attention``, ``rnn``, ``lookup``).
Layers serialized inside a config (an ``RNN``'s cell, a ``Bidirectional``'s layer) are
read with :func:`nested_layer`, which accepts Keras' own classes only.  Pure Python.
"""
from __future__ import annotations

from typing import Callable, Optional

from keras_cnnkit.analysis.keras_ops import CallArguments, TensorArg
from keras_cnnkit.analysis.layer_config import NotAnalysable, positive, value_of
from keras_cnnkit.analysis.ops.attention import ATTENTION
from keras_cnnkit.analysis.ops.lookup import LOOKUP
from keras_cnnkit.analysis.ops.rnn import RNN

# All handlers share one signature, so some ignore an argument.
# pylint: disable=unused-argument

Handler = Callable[[dict, list], list]


def _encoding(mode: str, size) -> tuple:
    mode = {"int": "map"}.get(mode, mode)
    if mode not in ("map", "one_hot", "multi_hot", "count", "tf_idf"):
        raise NotAnalysable(f"output_mode {mode!r}")
    return mode, size


def _lookup(size_of: Callable[[dict], Optional[int]]) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        mode, size = _encoding(str(value_of(config, "output_mode", "int")), size_of(config))
        return [("", LOOKUP, {"mode": mode, "size": size}, (0,))]
    return handler


def _vocabulary_size(config: dict) -> Optional[int]:
    vocabulary = config.get("vocabulary")
    if not isinstance(vocabulary, list):
        return None  # adapted: the vocabulary is in the file's assets, not its config
    extra = int(value_of(config, "num_oov_indices", 1))
    if config.get("mask_token") is not None and config.get("output_mode") == "int":
        extra += 1
    return len(vocabulary) + extra


def _bins(config: dict) -> Optional[int]:
    boundaries = config.get("bin_boundaries")
    if isinstance(boundaries, list):
        return len(boundaries) + 1
    return config.get("num_bins") if isinstance(config.get("num_bins"), int) else None


def _text_vectorization(config: dict, shapes: list) -> list:
    mode = str(value_of(config, "output_mode", "int"))
    if mode == "int":
        length = config.get("output_sequence_length")
        return [("", LOOKUP, {"mode": "sequence",
                              "size": length if isinstance(length, int) else None}, None)]
    tokens = config.get("max_tokens")
    return [("", LOOKUP, {"mode": _encoding(mode, None)[0],
                          "size": tokens if isinstance(tokens, int) else None}, None)]


def _attention(variant: str) -> Handler:
    def handler(config: dict, shapes: list) -> list:
        axes = config.get("attention_axes")
        if axes is not None and list(axes) != list(range(1, len(shapes[0]))):
            raise NotAnalysable(f"an attention over axes {axes}")
        if value_of(config, "use_gate", False):
            raise NotAnalysable("a gated attention")
        attrs: dict = {"variant": variant, "use_bias": bool(value_of(config, "use_bias", True))}
        if variant == "multi_head":
            out = config.get("output_shape")
            if isinstance(out, (list, tuple)):
                if len(out) != 1:
                    raise NotAnalysable(f"an output_shape of {len(out)} axes")
                out = out[0]
            attrs.update(num_heads=positive(config.get("num_heads"), "num_heads"),
                         key_dim=positive(config.get("key_dim"), "key_dim"),
                         value_dim=value_of(config, "value_dim", config.get("key_dim")),
                         output_dim=out)
        elif variant == "grouped_query":
            attrs.update(num_heads=positive(config.get("num_query_heads"), "num_query_heads"),
                         kv_heads=positive(config.get("num_key_value_heads"),
                                           "num_key_value_heads"),
                         key_dim=positive(config.get("head_dim"), "head_dim"))
        else:
            attrs.update(use_bias=False, use_scale=bool(value_of(config, "use_scale",
                                                                 variant == "additive")),
                         concat_score=value_of(config, "score_mode", "dot") == "concat")
        names = config.get(NAMED_INPUTS_KEY) or {}
        refs = tuple(names[k] for k in ("query", "value", "key") if k in names) or None
        return [("", ATTENTION, attrs, refs)]
    return handler


_RNN_CELLS = {"SimpleRNN": "simple", "LSTM": "lstm", "GRU": "gru", "SimpleRNNCell": "simple",
              "LSTMCell": "lstm", "GRUCell": "gru"}


def _rnn_attrs(cell: str, config: dict, cell_config: dict) -> dict:
    if value_of(config, "return_state", False):
        raise NotAnalysable("a recurrent layer returning its states")
    return {"cell": cell, "units": positive(cell_config.get("units"), "units"),
            "return_sequences": bool(value_of(config, "return_sequences", False)),
            "use_bias": bool(value_of(cell_config, "use_bias", True)),
            "reset_after": bool(value_of(cell_config, "reset_after", True))}


def _recurrent(class_name: str) -> Handler:
    """``SimpleRNN``/``LSTM``/``GRU``, and ``RNN`` of such cells (stacked or not)."""
    def handler(config: dict, shapes: list) -> list:
        if class_name != "RNN":
            return [("", RNN, _rnn_attrs(_RNN_CELLS[class_name], config, config), None)]
        cell = nested_layer(config.get("cell"))
        cells = [cell]
        if cell[0] == "StackedRNNCells":
            cells = [nested_layer(c) for c in cell[1].get("cells") or []]
        if not cells or any(c[0] not in _RNN_CELLS for c in cells):
            raise NotAnalysable("an RNN of cells other than Keras' own")
        parts, ref = [], None
        for i, (name, cell_config) in enumerate(cells):
            last = i == len(cells) - 1
            attrs = _rnn_attrs(_RNN_CELLS[name], config if last else
                               {"return_sequences": True}, cell_config)
            parts.append(("" if last else f"cell_{i}", RNN, attrs,
                          None if ref is None else (ref,)))
            ref = f"cell_{i}"
        return parts
    return handler


def _bidirectional(config: dict, shapes: list) -> list:
    name, inner = nested_layer(config.get("layer"))
    if name not in ("SimpleRNN", "LSTM", "GRU"):
        raise NotAnalysable(f"a Bidirectional {name}")
    attrs = _rnn_attrs(_RNN_CELLS[name], inner, inner)
    merge = config.get("merge_mode", "concat")
    if merge not in ("concat", "sum", "mul", "ave"):
        raise NotAnalysable(f"merge_mode {merge!r}")
    return [("", RNN, dict(attrs, directions=2, merge_mode=merge), None)]


def nested_layer(value) -> tuple:
    """``(class name, config)`` of a layer serialized inside a layer's config (a wrapped
    or stacked layer); only Keras' own classes (``NotAnalysable`` otherwise)."""
    if not isinstance(value, dict) or not isinstance(value.get("class_name"), str):
        raise NotAnalysable("a wrapped layer without a class")
    module, registered = value.get("module"), value.get("registered_name")
    if (module is not None and module.split(".")[0] not in ("keras", "tf_keras")) or (
            registered not in (None, value["class_name"])
            and not str(registered).startswith("keras>")):
        raise NotAnalysable(f"a wrapped class from outside Keras ({module or registered})")
    config = value.get("config")
    return value["class_name"], config if isinstance(config, dict) else {}


#: Layers whose tensors are told apart by argument name (the call's arguments give them):
#: each name in order, read from the positional arguments, a list first argument or the
#: keyword arguments.
NAMED_INPUTS = {
    "MultiHeadAttention": ("query", "value", "key"),
    "GroupQueryAttention": ("query", "value", "key"),
    "GroupedQueryAttention": ("query", "value", "key"),
    "Attention": ("query", "value", "key"),
    "AdditiveAttention": ("query", "value", "key"),
}
#: The config key under which :func:`convert_layer` hands a handler those inputs.
NAMED_INPUTS_KEY = "__named_inputs__"


def named_inputs(names: tuple, arguments: Optional[CallArguments]) -> dict:
    """Argument name → input number, for the tensors of a call (see :data:`NAMED_INPUTS`)."""
    if arguments is None:
        return {}
    positional = list(arguments.args)
    if len(positional) == 1 and isinstance(positional[0], (list, tuple)):
        positional = list(positional[0])
    found = dict(zip(names, positional))
    found.update({k: v for k, v in arguments.kwargs.items() if k in names})
    return {k: v.index for k, v in found.items() if isinstance(v, TensorArg)}


HANDLERS = {
    "IntegerLookup": _lookup(_vocabulary_size),
    "StringLookup": _lookup(_vocabulary_size),
    "Hashing": _lookup(lambda c: c.get("num_bins")),
    "HashedCrossing": _lookup(lambda c: c.get("num_bins")),
    "Discretization": _lookup(_bins),
    "CategoryEncoding": _lookup(lambda c: c.get("num_tokens")),
    "TextVectorization": _text_vectorization,
    "MultiHeadAttention": _attention("multi_head"),
    "GroupQueryAttention": _attention("grouped_query"),
    "GroupedQueryAttention": _attention("grouped_query"),  # the class behind that name
    "Attention": _attention("dot"),
    "AdditiveAttention": _attention("additive"),
    "SimpleRNN": _recurrent("SimpleRNN"),
    "LSTM": _recurrent("LSTM"),
    "GRU": _recurrent("GRU"),
    "RNN": _recurrent("RNN"),
    "Bidirectional": _bidirectional,
}
