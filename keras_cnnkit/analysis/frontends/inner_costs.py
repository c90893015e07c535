"""The MACs inside a live layer the linter cannot analyse, from the known layers it calls.

A custom layer (kimm's ``ReparameterizableConv2D``, keras-hub's ``ViTEncoder``) is opaque:
its ``call`` is Python.  In a live model (or one a library built), though, the layer can
be run symbolically: :func:`inner_macs` runs its ``call`` once on inputs of the analysed
shape, with the ``call`` of every sub-layer of a known Keras class wrapped so that each
call's input shapes are recorded (a known layer's own sub-layers are not recorded again:
its formula covers them).  Each recorded call is costed by the layer table and the cost
model.  What the layer computes outside such sub-layers (``keras.ops`` arithmetic in its
``call``) is not seen, so the opaque node's MACs and FLOPs are those of its known
sub-layers: lower bounds (its cost stays unknown).  Only the live frontend does this:
code from a model file never runs.
"""
from __future__ import annotations

from typing import Optional

from keras_cnnkit.analysis.cost import node_cost
from keras_cnnkit.analysis.keras_layers import LayerConfigError, convert_layer, is_known
from keras_cnnkit.analysis.keras_ops import CallArguments, TensorArg
from keras_cnnkit.analysis.shapes import ShapeError

#: Top-level packages whose layer classes are taken at their word.
_TRUSTED = ("keras", "keras_cnnkit", "tf_keras")


def _is_tensor(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(
        value, (int, float, bool))


def _shape(tensor) -> Optional[tuple]:
    try:
        dims = tuple(None if d is None else int(d) for d in tuple(tensor.shape)[1:])
    except (TypeError, ValueError):
        return None
    return dims


def _arguments(args: tuple, kwargs: dict) -> tuple:
    """``(CallArguments, shapes)`` of a recorded call (tensors as :class:`TensorArg`)."""
    shapes: list = []

    def convert(value, depth=0):
        if _is_tensor(value):
            shapes.append(_shape(value))
            return TensorArg(len(shapes) - 1)
        if depth < 8 and isinstance(value, (list, tuple)):
            return [convert(v, depth + 1) for v in value]
        if depth < 8 and isinstance(value, dict):
            return {k: convert(v, depth + 1) for k, v in value.items()}
        return value

    return CallArguments(convert(list(args)), convert(dict(kwargs))), shapes


class _Recorder:
    """Wraps the ``call`` of known sub-layers; records ``(layer, args, kwargs)``."""

    def __init__(self):
        self.calls: list = []
        self.inside = False
        self.wrapped: list = []

    def wrap(self, layer) -> None:
        """Record the outermost calls of ``layer`` (an instance attribute, removed by
        :meth:`restore`)."""
        original = layer.call

        def call(*args, **kwargs):
            if self.inside:
                return original(*args, **kwargs)
            self.inside = True
            try:
                return original(*args, **kwargs)
            finally:
                self.inside = False
                self.calls.append((layer, args, kwargs))

        object.__setattr__(layer, "call", call)
        self.wrapped.append(layer)

    def restore(self) -> None:
        """Remove every wrapper."""
        for layer in self.wrapped:
            object.__delattr__(layer, "call")
        self.wrapped = []


def _known(layer) -> Optional[str]:
    cls = type(layer)
    if cls.__module__.split(".")[0] not in _TRUSTED or not is_known(cls.__name__):
        return None
    return cls.__name__


def inner_costs(layer, args: tuple, kwargs: dict) -> Optional[tuple]:
    """``(macs, flops)`` of the known layers ``layer``'s ``call`` runs on
    ``args``/``kwargs`` (KerasTensors of the analysed shapes); ``None`` when it cannot be
    run."""
    from keras.src import backend

    recorder = _Recorder()
    try:
        for sub in layer._flatten_layers(include_self=False, recursive=True):  # pylint: disable=protected-access
            if _known(sub) is not None:
                recorder.wrap(sub)
        if not recorder.wrapped:
            return None
        backend.compute_output_spec(layer.call, *args, **kwargs)
    except Exception:  # pylint: disable=broad-exception-caught
        # The layer's own code may fail in any way when run on its own.
        return None
    finally:
        recorder.restore()
    macs = flops = 0
    for sub, sub_args, sub_kwargs in recorder.calls:
        arguments, shapes = _arguments(sub_args, sub_kwargs)
        if not shapes or any(s is None for s in shapes):
            continue
        try:
            config = sub.get_config()
            expansion = convert_layer("inner", _known(sub), config,
                                      [f"in{i}" for i in range(len(shapes))], shapes,
                                      arguments=arguments)
        except (LayerConfigError, ShapeError, NotImplementedError, TypeError, ValueError):
            continue
        for node in expansion.nodes:
            cost = node_cost(node)
            macs += cost.macs or 0
            flops += cost.flops or 0
    return macs, flops
