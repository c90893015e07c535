"""Data-aware refit: the new layers solved by least squares on calibration activations.

For each approximate fix, in model order, the fragment's last weighted layer (a conv or
a Dense: the ``refit_node`` of its plan) is solved so that, fed what the *fixed* model
computes there, it reproduces what the *original* model computes at the replaced layer
(before its activation, when both have the same one).  When that layer is pointwise (a
1×1 conv or a Dense) after a linear conv or Dense of the fragment (the core of a
Tucker-2 bottleneck, the first factor of a truncated SVD), that one is solved first,
through the pointwise kernel, then the last layer again on its new inputs.  Earlier fixes
are refitted first, so each solve also absorbs the error that reaches it from upstream:
the layer-by-layer reconstruction of He et al., "Channel Pruning for Accelerating Very Deep Neural
Networks" (ICCV 2017), and Zhang et al., "Accelerating Very Deep Convolutional Networks
for Classification and Detection" (TPAMI 2016), here in its closed-form linear part.

A conv's input becomes an ``(positions × window·in)`` patch matrix (the kernel's own
window, strides, dilation and padding), so the solve is one linear least-squares problem
(``numpy.linalg.lstsq``) with a small ridge; rows are sampled down to a memory budget.
"""
from __future__ import annotations

import itertools
import math
from typing import Optional, Sequence

import keras
import numpy as np


#: Most elements of the design matrix (rows × columns) before rows are sampled.
MAX_ELEMENTS = 40_000_000

_CONVS = ("Conv1D", "Conv2D", "Conv3D")


def _pads(size: int, kernel: int, stride: int, dilation: int, padding: str) -> tuple:
    effective = (kernel - 1) * dilation + 1
    if padding == "valid":
        return 0, 0
    if padding == "causal":
        return effective - 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def patches(x: np.ndarray, kernel_size: Sequence[int], strides: Sequence[int] = None,
            dilation: Sequence[int] = None, padding: str = "valid") -> np.ndarray:
    """``(batch·positions, taps·channels)`` windows of channels-last ``x``, ordered as a
    conv kernel ``(*kernel_size, in, out)`` reshapes to ``(taps·in, out)``; with Keras'
    (TensorFlow's) padding conventions."""
    x = np.asarray(x)
    rank = x.ndim - 2
    strides = tuple(strides or (1,) * rank)
    dilation = tuple(dilation or (1,) * rank)
    pads = [_pads(n, k, s, d, padding) for n, k, s, d in
            zip(x.shape[1:-1], kernel_size, strides, dilation)]
    xp = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    out = [(n + a + b - (k - 1) * d - 1) // s + 1 for n, (a, b), k, s, d in
           zip(x.shape[1:-1], pads, kernel_size, strides, dilation)]
    taps = []
    for tap in itertools.product(*(range(k) for k in kernel_size)):
        index = tuple(slice(t * d, t * d + (o - 1) * s + 1, s)
                      for t, d, o, s in zip(tap, dilation, out, strides))
        taps.append(xp[(slice(None),) + index])
    stacked = np.stack(taps, axis=-2)
    return stacked.reshape(x.shape[0] * math.prod(out), -1)


def _channels_last(array: np.ndarray, data_format: str) -> np.ndarray:
    return np.moveaxis(array, 1, -1) if data_format == "channels_first" else array


def _design(layer, inputs: np.ndarray) -> np.ndarray:
    """The layer's input as the rows its kernel multiplies."""
    if type(layer).__name__ == "Dense":
        return inputs.reshape(-1, inputs.shape[-1])
    config = layer.get_config()
    return patches(_channels_last(inputs, config["data_format"]), config["kernel_size"],
                   config["strides"], config["dilation_rate"], config["padding"])


def _targets(layer, outputs: np.ndarray) -> np.ndarray:
    if type(layer).__name__ == "Dense":
        return outputs.reshape(-1, outputs.shape[-1])
    out = _channels_last(outputs, layer.get_config()["data_format"])
    return out.reshape(-1, out.shape[-1])


def _lstsq(design: np.ndarray, target: np.ndarray, ridge: float) -> np.ndarray:
    scale = ridge * float(np.mean(np.sum(design ** 2, axis=0)))
    system = np.concatenate([design, np.sqrt(scale) * np.eye(design.shape[1])])
    rhs = np.concatenate([target, np.zeros((design.shape[1], target.shape[1]))])
    return np.linalg.lstsq(system, rhs, rcond=None)[0]


def solve_layer(layer, inputs: np.ndarray, targets: np.ndarray, ridge: float = 1e-4,
                seed: int = 0, mixer: Optional[np.ndarray] = None) -> float:
    """Set ``layer``'s kernel (and bias) to the least-squares solution of
    ``layer_linear(inputs) · mixer ≈ targets``; returns the relative residual on the rows
    used.

    ``mixer`` (default: none) is the ``(layer's outputs, final outputs)`` matrix of a
    linear pointwise layer after this one (a 1×1 conv or a Dense): with its thin SVD
    ``U·S·Vᵀ``, the problem is ``min ‖P·(C·U·S) − Y·V‖`` (V has orthonormal columns), so
    ``C = lstsq(P, Y·V)·S⁻¹·Uᵀ``.  ``ridge`` adds ``ridge × mean(column square norms)`` to
    the normal equations' diagonal (Tikhonov), which keeps the solve stable on few
    samples.
    """
    design = _design(layer, np.asarray(inputs, dtype=np.float64))
    target = np.asarray(targets, dtype=np.float64)
    target = target.reshape(-1, target.shape[-1]) if mixer is not None else _targets(
        layer, target)
    rows = design.shape[0]
    budget = max(MAX_ELEMENTS // max(design.shape[1], 1), 4 * design.shape[1])
    if rows > budget:
        keep = np.random.default_rng(seed).choice(rows, budget, replace=False)
        design, target = design[keep], target[keep]
    use_bias = bool(getattr(layer, "use_bias", False))
    if use_bias:
        design = np.concatenate([design, np.ones((design.shape[0], 1))], axis=1)
    if mixer is None:
        solution = _lstsq(design, target, ridge)
        fitted = design @ solution
    else:
        u, s, vt = np.linalg.svd(np.asarray(mixer, dtype=np.float64), full_matrices=False)
        kept = s > s[0] * 1e-10
        u, s, vt = u[:, kept], s[kept], vt[kept]
        solution = _lstsq(design, target @ vt.T, ridge) / s @ u.T
        fitted = design @ solution @ mixer
    residual = np.linalg.norm(fitted - target) / max(np.linalg.norm(target), 1e-30)
    kernel_shape = tuple(layer.weights[0].shape)
    weights = [(solution[:-1] if use_bias else solution).reshape(kernel_shape)]
    if use_bias:
        weights.append(solution[-1])
    dtype = keras.backend.standardize_dtype(layer.weights[0].dtype)
    layer.set_weights([np.asarray(w, dtype=dtype) for w in weights])
    return float(residual)


def _pointwise_matrix(layer) -> Optional[np.ndarray]:
    """A 1×…×1, stride-1, ungrouped conv's or a Dense's kernel as an ``(in, out)``
    matrix; ``None`` for other layers."""
    name = type(layer).__name__
    if name == "Dense":
        return np.asarray(layer.kernel.numpy())
    if name not in _CONVS or getattr(layer, "groups", 1) != 1:
        return None
    config = layer.get_config()
    if set(config["kernel_size"]) != {1} or set(config["strides"]) != {1}:
        return None
    kernel = np.asarray(layer.kernel.numpy())
    return kernel.reshape(kernel.shape[-2], kernel.shape[-1])


def _linear_predecessor(fix, node_name: str):
    """The layer of the fragment node feeding ``node_name`` when it is a conv or Dense
    with no activation whose only reader is ``node_name``; else ``None``."""
    nodes = {n.name: n for n in fix.plan.finding.replacement.nodes}
    node = nodes.get(node_name)
    if node is None or len(node.inputs) != 1 or node.inputs[0] not in nodes:
        return None
    prev = node.inputs[0]
    if sum(prev in n.inputs for n in nodes.values()) != 1:
        return None
    layer = fix.layers.get(prev, [None])[-1]
    if type(layer).__name__ not in _CONVS + ("Dense",) or getattr(layer, "groups", 1) != 1:
        return None
    return layer if _activation_name(layer) == "linear" else None


def _activation_name(layer) -> str:
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", str(act)) if act is not None else "linear"


def layer_outputs(layer, inputs: np.ndarray, linear: bool = False,
                  batch_size: int = 256) -> np.ndarray:
    """``layer`` (a conv or Dense) applied to ``inputs``; without its activation when
    ``linear``."""
    if linear:
        clone = type(layer).from_config(dict(layer.get_config(), activation="linear"))
        clone.build((None,) + tuple(inputs.shape[1:]))
        clone.set_weights(layer.get_weights())
        layer = clone
    return np.concatenate([keras.ops.convert_to_numpy(layer(inputs[i:i + batch_size]))
                           for i in range(0, len(inputs), batch_size)])


def _input_of(model: keras.Model, layer, x, batch_size: int) -> np.ndarray:
    probe = keras.Model(model.inputs, layer.input)
    return np.asarray(probe.predict(x, batch_size=batch_size, verbose=0))


def refit_fix(original: keras.Model, fixed: keras.Model, fix, x, ridge: float = 1e-4,
              seed: int = 0, batch_size: int = 64) -> str:
    """Refit one applied fix (an :class:`~keras_cnnkit.rewrite.carry.AppliedFix`);
    returns what was done, or why not."""
    plan = fix.plan
    if plan.refit_node is None:
        return ""
    new = fix.layers.get(plan.refit_node, [None])[-1]
    if new is None or type(new).__name__ not in _CONVS + ("Dense",):
        return "not refit: the output layer is not a conv or Dense"
    if getattr(new, "groups", 1) != 1:
        return "not refit: grouped conv"
    last = plan.finding.replacement.removed[-1]
    try:
        old = original.get_layer(last)
    except ValueError:
        return f"not refit: {last!r} is not a top-level layer"
    if type(old).__name__ not in _CONVS + ("Dense",):
        return f"not refit: {last!r} is not a conv or Dense"
    act_new, act_old = _activation_name(new), _activation_name(old)
    old_in = _input_of(original, old, x, batch_size)
    if act_new == act_old:
        target = layer_outputs(old, old_in, linear=True)
    elif act_new == "linear":
        target = layer_outputs(old, old_in)
    else:
        return f"not refit: activations differ ({act_old} → {act_new})"
    if plan.bias_to_batchnorm is not None:
        target = target - _broadcast_bias(plan.bias_to_batchnorm[1], old)
    space = "pre-activation" if act_new == act_old and act_new != "linear" else "output"
    if act_new == act_old == "softmax":
        # softmax(z + c) = softmax(z): match the logits up to a per-sample constant.
        target = target - target.mean(axis=-1, keepdims=True)
        space = "centred logit"
    done = []
    mixer, prev = _pointwise_matrix(new), _linear_predecessor(fix, plan.refit_node)
    if mixer is not None and prev is not None:
        shifted = (target if type(new).__name__ == "Dense"
                   else _channels_last(target, new.get_config()["data_format"]))
        if new.use_bias:
            shifted = shifted - np.asarray(new.bias.numpy())
        solve_layer(prev, _input_of(fixed, prev, x, batch_size), shifted, ridge=ridge,
                    seed=seed, mixer=mixer)
        done.append(prev.name)
    new_in = _input_of(fixed, new, x, batch_size)
    residual = solve_layer(new, new_in, target, ridge=ridge, seed=seed)
    done.append(new.name)
    return (f"refit {' then '.join(done)} by least squares ({space} residual "
            f"{residual:.2%})")


def _broadcast_bias(bias: np.ndarray, layer) -> np.ndarray:
    config = layer.get_config()
    if config.get("data_format") == "channels_first":
        rank = len(layer.output.shape) - 2
        return np.asarray(bias).reshape((-1,) + (1,) * rank)
    return np.asarray(bias)


def refit_fixes(original: keras.Model, fixed: keras.Model, fixes: list, x,
                ridge: float = 1e-4, seed: int = 0, batch_size: int = 64) -> list:
    """Refit every fix of ``fixes`` (model order) on inputs ``x``, layer by layer; sets
    each fix's ``refit`` and returns those notes."""
    notes = []
    for fix in fixes:
        fix.refit = refit_fix(original, fixed, fix, x, ridge=ridge, seed=seed,
                              batch_size=batch_size)
        notes.append(fix.refit)
    return notes
