"""The gate before Keras: what ``--fix`` and ``cnnkit-export`` check before loading a file.

Also :func:`read_statically`, the static read with ``keras_cnnkit.lint``'s promise (a bad
file raises ``ModelFileError`` and nothing else), which the API and the gate share.

Keras' deserializer builds what a config asks for: a ``keras_cnnkit>DenseBlock`` of five
million layers is five million Keras layers before any weight is read, and safe mode
does not bound that.  So a file is first read by the static frontend, under the budgets
(:mod:`keras_cnnkit.budgets`): a file over any budget never reaches Keras.  The gate
also refuses, with what they really are, the layers Keras' safe mode would refuse for
reaching outside the file (a ``TFSMLayer`` loads a TensorFlow SavedModel from a path; a
lookup layer whose ``vocabulary`` is a path reads that file), and models with more
parameters than ``max-params`` (Keras allocates them all).

Imports neither Keras nor TensorFlow.
"""
from __future__ import annotations

import os

from keras_cnnkit.budgets import check
from keras_cnnkit.errors import CnnkitError, ModelFileError
from keras_cnnkit.io_guard import require_regular_file

#: Layer classes that load a model from outside the file.
EXTERNAL_MODEL_CLASSES = frozenset({"TFSMLayer"})
#: Config keys whose string value is a path Keras reads (lookup layers' vocabularies).
FILE_KEYS = ("vocabulary", "idf_weights")


def check_before_keras(path, command: str = "--fix"):
    """Read ``path`` statically, within the budgets, before Keras loads it; returns the
    graph.

    Raises:
        ModelFileError: the file is unreadable, over a budget (``BudgetError``), an ONNX
            model, holds a layer that reaches outside the file, has more parameters
            than ``max-params``, or stores more weights for a layer than its config
            makes (a dataset declaring gigabytes, which Keras and the exporter would
            read before comparing shapes).
    """
    from keras_cnnkit.analysis.cost import summarize
    from keras_cnnkit.analysis.frontends import containers

    path = os.fspath(path)
    require_regular_file(path)
    if containers.detect_format(path) == containers.FORMAT_ONNX:
        raise ModelFileError(path, f"an ONNX model: {command} needs a Keras model file "
                                   "(.keras or .h5)")
    _refuse_external(path, _promised(containers.read_model_file, path).config)
    graph = read_statically(path)
    summary = summarize(graph)
    check(path, "max-params", summary.params, f"{command} would have Keras allocate "
                                              f"{summary.params:,} parameters")
    _check_inputs(path, graph, command)
    for mismatch in summary.param_mismatches:
        formula, observed = mismatch["formula"], mismatch["observed"]
        if formula is not None and observed is not None and observed > formula:
            # a stored weight larger than its layer: read whole before any shape check
            raise ModelFileError(path, f"layer {mismatch['layer']!r} stores {observed:,} "
                                       f"weights, more than the {formula:,} its config "
                                       "makes; the file is not loaded")
    return graph


def _check_inputs(path: str, graph, command: str) -> None:
    """Refuse a model input declaring more values a sample than the ``max-input-values``
    budget (unknown dims count as 1: they are filled later, by the command's default;
    past it Keras, TensorFlow and onnxruntime are never handed the model), and a layer
    name holding a control character."""
    import math

    from keras_cnnkit.analysis.ops import Trait, op_def
    for node in graph:
        name = node.layer or node.name
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            # Keras loads it, then fails when it calls the layer (not a scope name)
            raise ModelFileError(path, f"layer name {name[:80]!r} holds a control "
                                       "character; the file is not loaded")
        if not op_def(node.op).has(Trait.SOURCE):
            continue
        dims = [d for d in (node.output_shape or ()) if isinstance(d, int)]
        check(path, "max-input-values", math.prod(dims),
              f"{command} would run the model on input {node.name!r} of shape "
              f"{tuple(node.output_shape)}: {math.prod(dims):,} values a sample")


def read_statically(path, input_shape=None):
    """:func:`.static_file.load_graph`, keeping the promise of ``keras_cnnkit.lint``:
    whatever is wrong with the file, the error is a ``ModelFileError`` (a
    ``BudgetError`` when it asks for more than a budget allows); a reader's own
    exception, ``MemoryError`` or ``RecursionError`` becomes one."""
    from keras_cnnkit.analysis.frontends import static_file
    return _promised(static_file.load_graph, os.fspath(path), input_shape=input_shape)


def _promised(read, path: str, **kwargs):
    try:
        return read(path, **kwargs)
    except ModelFileError:
        raise
    except CnnkitError as exc:
        raise ModelFileError(path, getattr(exc, "problem", str(exc))) from exc
    except RecursionError:
        raise ModelFileError(path, "nested too deeply to analyse") from None
    except MemoryError:
        raise ModelFileError(path, "out of memory while reading the model") from None
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A reader's bug on a bad file must still keep the promise.
        raise ModelFileError(path, f"cannot be analysed: unexpected {type(exc).__name__}: "
                                   f"{exc} (please report it)") from exc


def _refuse_external(path: str, config: dict) -> None:
    """Refuse a layer that makes Keras read something outside the file."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        class_name = item.get("class_name")
        body = item.get("config")
        name = body.get("name") if isinstance(body, dict) else None
        label = f"layer {str(name or '?')[:60]!r} ({str(class_name)[:60]})"
        if (isinstance(class_name, str) and class_name in EXTERNAL_MODEL_CLASSES) or \
                str(item.get("registered_name")).endswith(">TFSMLayer"):
            target = body.get("filepath") if isinstance(body, dict) else None
            raise ModelFileError(path, f"{label} loads the TensorFlow SavedModel "
                                       f"{str(target)[:120]!r} from outside the file when "
                                       "Keras loads it; Keras' safe mode refuses it and it "
                                       "is not loaded (nothing in it is run)")
        if isinstance(body, dict):
            for key in FILE_KEYS:
                if isinstance(body.get(key), str):
                    raise ModelFileError(path, f"{label} reads its {key} from the file "
                                               f"{body[key][:120]!r}, outside the model "
                                               "file; Keras' safe mode refuses it and it "
                                               "is not loaded")
        stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
