"""Constant folding for the ONNX frontend: numpy evaluation of the small ops that shape
computations use (``Shape → Gather → Concat → Reshape`` chains).

An op that would create more elements than the ``max-const-elements`` budget is refused
before numpy allocates them (:func:`.budget_checks.check_evaluation`).
"""
from __future__ import annotations

from typing import Optional

from keras_cnnkit.analysis.frontends.budget_checks import check_evaluation
from keras_cnnkit.analysis.frontends.onnx_base import attr, reshape_target, tensor_value


def evaluate(node, values: list, source: str = "<onnx model>") -> Optional[list]:
    """numpy evaluation of the constant ops shape computations use; ``None`` if the op
    is not one of them or an input is unknown.

    Raises:
        BudgetError: the op would create more than ``max-const-elements`` elements
            (``source`` names the model in the message).
    """
    import numpy as np
    op = node.op_type
    if op == "Constant":
        for attribute in node.attribute:
            if attribute.name == "value":
                return [tensor_value(attribute.t)]   # None for external data
            if attribute.name in ("value_int", "value_float"):
                return [np.array(attr(node, attribute.name))]
            if attribute.name in ("value_ints", "value_floats"):
                return [np.array(attr(node, attribute.name))]
        return None
    if any(v is None for v in values[:1]) or op not in _EVALUATORS:
        return None
    check_evaluation(source, node, values)
    return [_EVALUATORS[op](node, values)]


def _slice_value(node, values: list):
    import numpy as np
    data = values[0]
    if len(values) > 1:
        starts, ends = values[1], values[2]
        axes = values[3] if len(values) > 3 and values[3] is not None else range(len(starts))
        steps = values[4] if len(values) > 4 and values[4] is not None else [1] * len(starts)
    else:
        starts, ends = attr(node, "starts"), attr(node, "ends")
        axes = attr(node, "axes", list(range(len(starts))))
        steps = [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[int(axis)] = slice(int(start), int(end), int(step))
    return np.asarray(data[tuple(index)])


def _squeeze_value(node, values: list):
    import numpy as np
    axes = attr(node, "axes")
    if axes is None and len(values) > 1 and values[1] is not None:
        axes = [int(a) for a in values[1].reshape(-1)]
    return np.squeeze(values[0], axis=None if axes is None else tuple(axes))


def _unsqueeze_value(node, values: list):
    import numpy as np
    axes = attr(node, "axes")
    if axes is None:
        axes = [int(a) for a in values[1].reshape(-1)]
    out = values[0]
    rank = out.ndim + len(axes)
    for axis in sorted(a % rank for a in axes):
        out = np.expand_dims(out, axis)
    return out


def _binary(fn):
    def run(_node, values):
        import numpy as np
        a, b = values[0], values[1]
        if b is None:
            raise ValueError("unknown operand")
        out = fn(a, b)
        return np.asarray(out).astype(np.result_type(a, b))
    return run


def _divide(a, b):
    import numpy as np
    if np.issubdtype(np.result_type(a, b), np.integer):
        return np.trunc(a / b)
    return a / b


def _cast_value(node, values: list):
    from onnx import helper
    return values[0].astype(helper.tensor_dtype_to_np_dtype(attr(node, "to")))


def _gather_value(node, values: list):
    import numpy as np
    return np.take(values[0], values[1].astype(np.int64), axis=int(attr(node, "axis", 0)))


def _concat_value(node, values: list):
    import numpy as np
    if any(v is None for v in values):
        raise ValueError("unknown operand")
    return np.concatenate([np.atleast_1d(v) for v in values], axis=int(attr(node, "axis", 0)))


def _reshape_value(_node, values: list):
    target = [int(t) for t in values[1].reshape(-1)]
    shape = reshape_target(values[0].shape, target, False)
    if shape is None:
        raise ValueError("bad reshape")
    return values[0].reshape(shape)


def _constant_of_shape(node, values: list):
    import numpy as np
    fill = attr(node, "value")
    value = tensor_value(fill) if fill is not None else np.zeros(1, np.float32)
    return np.full([int(d) for d in values[0].reshape(-1)], value.reshape(-1)[0],
                   dtype=value.dtype)


def _range_value(_node, values: list):
    import numpy as np
    return np.arange(values[0], values[1], values[2])


def _reduce_prod(node, values: list):
    import numpy as np
    axes = attr(node, "axes")
    keep = bool(attr(node, "keepdims", 1))
    return np.prod(values[0], axis=None if axes is None else tuple(axes), keepdims=keep)


def _transpose_value(node, values: list):
    import numpy as np
    return np.transpose(values[0], attr(node, "perm"))


def _evaluators() -> dict:
    import operator
    return {
        "Identity": lambda _n, v: v[0], "Cast": _cast_value, "Gather": _gather_value,
        "Slice": _slice_value, "Concat": _concat_value, "Squeeze": _squeeze_value,
        "Unsqueeze": _unsqueeze_value, "Reshape": _reshape_value,
        "Add": _binary(operator.add), "Sub": _binary(operator.sub),
        "Mul": _binary(operator.mul), "Div": _binary(_divide),
        "Max": _binary(lambda a, b: a if (a >= b).all() else b),
        "Min": _binary(lambda a, b: a if (a <= b).all() else b),
        "ConstantOfShape": _constant_of_shape, "Range": _range_value,
        "ReduceProd": _reduce_prod, "Transpose": _transpose_value,
    }


_EVALUATORS = _evaluators()
