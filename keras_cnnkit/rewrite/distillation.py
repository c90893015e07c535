"""A short knowledge-distillation fine-tune of a fixed model, the original as teacher.

Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network" (2015): the
student (the fixed model) learns the teacher's (the original's) class probabilities
softened by a temperature T (a softmax of the logits divided by T), with the loss
scaled by T² so that its gradients keep their size as T changes; where labels are
given, a share ``alpha`` of the loss is the usual cross-entropy on them.  A model whose
output is not a ``(batch, classes)`` distribution is distilled on its raw outputs (mean
squared error).

The teacher runs once, before training (its outputs become the targets), and the student
trains with Keras' own ``fit`` loop, so its callbacks (early stopping, learning-rate
schedules, checkpoints, TensorBoard) work as usual.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import keras
import numpy as np

from keras_cnnkit.rewrite import fidelity as fid


@dataclasses.dataclass
class DistillResult:
    """What :func:`distill` returns.

    Attributes:
        history: the ``keras.callbacks.History`` of the ``fit``.
        fidelity: the student's output error and top-1 agreement with the teacher after
            training (:class:`~keras_cnnkit.rewrite.fidelity.Fidelity`, no per-fix part).
    """

    history: Any
    fidelity: fid.Fidelity


def ends_in_softmax(model: keras.Model) -> bool:
    """True when the model's last layer applies a softmax (its output is probabilities)."""
    last = model.layers[-1]
    if type(last).__name__ == "Softmax":
        return True
    act = getattr(last, "activation", None)
    return getattr(act, "__name__", "") == "softmax"


class _DenseLogits(keras.layers.Layer):  # pylint: disable=too-many-ancestors,abstract-method
    """A softmax Dense's logits, computed with that Dense's own variables (shared)."""

    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense

    def call(self, inputs):  # pylint: disable=arguments-differ
        logits = keras.ops.matmul(inputs, self.dense.kernel)
        return logits + self.dense.bias if self.dense.use_bias else logits


def logits_model(model: keras.Model) -> Optional[keras.Model]:
    """A model sharing ``model``'s layers (and weights) that returns the logits its
    final softmax reads, or ``None`` when it does not end in a softmax (a ``Softmax``
    or softmax ``Activation`` layer, or a Dense with a softmax activation).

    Distilling on logits keeps the teacher's "dark knowledge": probabilities of a
    confident model underflow, and their logarithms clipped at float precision lose it.
    """
    if not ends_in_softmax(model):
        return None
    last = model.layers[-1]
    if type(last).__name__ == "Dense":
        return keras.Model(model.inputs, _DenseLogits(last)(last.input))
    if type(last).__name__ in ("Softmax", "Activation"):
        return keras.Model(model.inputs, last.input)
    return None


#: Keys of the labels in a fine-tuning ``.npz`` (the inputs: as for calibration data).
LABEL_KEYS = ("y", "labels", "y_train", "targets")


def load_npz(path) -> tuple:
    """``(x, labels or None)`` of a fine-tuning ``.npz``: the inputs under the keys
    :func:`~keras_cnnkit.rewrite.fidelity.calibration_inputs` reads, the labels (integer
    or one-hot) under one of :data:`LABEL_KEYS` when present.

    Raises:
        ValueError: not an ``.npz`` file, or inputs and labels of different lengths.
    """
    keys = {}

    def choose(names):
        keys["x"] = next((k for k in fid.NPZ_KEYS if k in names), names[0] if names else None)
        keys["y"] = next((k for k in LABEL_KEYS if k in names and k != keys["x"]), None)
        return [keys["x"], keys["y"]]

    arrays = fid.read_npz(path, choose)
    try:
        x = np.asarray(arrays[keys["x"]], dtype="float32")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz of inputs ({exc})") from None
    labels = arrays.get(keys["y"]) if keys["y"] is not None else None
    if labels is not None and len(labels) != len(x):
        raise ValueError(f"{path}: {len(x)} inputs but {len(labels)} labels")
    return x, labels


def _split(data) -> tuple:
    if isinstance(data, (tuple, list)):
        if len(data) == 1:
            return np.asarray(data[0]), None
        return np.asarray(data[0]), (None if data[1] is None else np.asarray(data[1]))
    return np.asarray(data), None


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[1] == classes:
        return labels.astype("float32")
    return np.eye(classes, dtype="float32")[labels.reshape(-1).astype("int64")]


@keras.saving.register_keras_serializable(package="keras_cnnkit")
class DistillationLoss(keras.losses.Loss):
    """``(1 − alpha)·T²·CE(softmax(t/T), softmax(s/T)) + alpha·CE(labels, softmax(s))``.

    ``y_true`` packs the teacher's logits ``t`` and, when ``labels``, the one-hot
    labels; ``y_pred`` is the student's output (logits, or probabilities when
    ``probabilities``).  Registered, so a model saved while compiled with it loads.
    """

    def __init__(self, classes: int, temperature: float, alpha: float, labels: bool,
                 probabilities: bool, name: str = "distillation"):
        super().__init__(name=name)
        self.classes, self.temperature, self.alpha = classes, temperature, alpha
        self.labels, self.probabilities = labels, probabilities

    def call(self, y_true, y_pred):
        ops = keras.ops
        student = (ops.log(ops.clip(y_pred, 1e-7, 1.0)) if self.probabilities else y_pred)
        teacher = y_true[:, :self.classes]
        t = self.temperature
        soft = ops.softmax(teacher / t, axis=-1)
        loss = -ops.sum(soft * ops.log_softmax(student / t, axis=-1), axis=-1) * t * t
        if not self.labels:
            return loss
        hard = -ops.sum(y_true[:, self.classes:] * ops.log_softmax(student, axis=-1), axis=-1)
        return (1.0 - self.alpha) * loss + self.alpha * hard

    def get_config(self) -> dict:
        """The constructor's arguments."""
        return {"classes": self.classes, "temperature": self.temperature,
                "alpha": self.alpha, "labels": self.labels,
                "probabilities": self.probabilities, "name": self.name}


def _outputs(model: keras.Model, x, batch_size: int) -> np.ndarray:
    out = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out, dtype="float32")


def _targets(teacher: keras.Model, x, labels, classes: int, probabilities: bool,
             batch_size: int) -> np.ndarray:
    """The teacher's logits (or outputs), with the one-hot labels appended if any."""
    out = _outputs(teacher, x, batch_size)
    if probabilities:
        out = np.log(np.clip(out, 1e-7, 1.0))
    if labels is None or not classes:
        return out
    return np.concatenate([out, _one_hot(labels, classes)], axis=1)


def distill(original: keras.Model, fixed: keras.Model, data, epochs: int = 1,
            batch_size: int = 32, temperature: float = 4.0, alpha: float = 0.1,
            learning_rate: float = 1e-4, optimizer=None,
            callbacks: Optional[Sequence] = None, validation_data=None,
            fidelity_data=None, outputs: str = "auto", shuffle: bool = True,
            verbose: int = 0, seed: Optional[int] = None) -> DistillResult:
    """Fine-tune ``fixed`` (in place) to imitate ``original`` on ``data``.

    Args:
        original: the teacher; not trained.
        fixed: the student, e.g. :func:`~keras_cnnkit.rewrite.carry.rewrite_with_weights`'s
            model; trained in place.
        data: the inputs ``x``, or ``(x,)``, or ``(x, labels)`` (integer or one-hot).
        epochs / batch_size / shuffle / verbose / callbacks: as for ``fit``.  The
            callbacks see the model being fitted: ``fixed``, or for a softmax classifier
            a model sharing its layers that returns the logits (see
            :func:`logits_model`); weights they save or restore are ``fixed``'s.
        temperature: the softening temperature T (Hinton et al. use 2–20).
        alpha: the share of the hard-label cross-entropy (when labels are given).
        learning_rate: Adam's learning rate (ignored when ``optimizer`` is given); the
            default, 1e-4, is a fine-tuning rate: the carried weights are a good start
            that a training-from-scratch rate would throw away.
        optimizer: a Keras optimizer instead of Adam.
        validation_data: ``x`` or ``(x, labels)``; the teacher makes its targets.
        fidelity_data: the inputs the final fidelity is measured on (default: ``x``).
        outputs: ``"auto"`` (a classifier ending in a softmax is distilled on the logits
            that softmax reads, another ``(batch, classes)`` output is taken as logits,
            other outputs are matched by mean squared error), ``"logits"``,
            ``"probabilities"`` (log-probabilities stand for the logits) or ``"raw"``
            (mean squared error).
        seed: seeds Keras' random state (shuffling, dropout) when given.

    Returns:
        a :class:`DistillResult`: the ``fit`` history and the final fidelity.
    """
    if seed is not None:
        keras.utils.set_random_seed(seed)
    x, labels = _split(data)
    out_shape = tuple(original.outputs[0].shape)
    classifier = outputs != "raw" and len(out_shape) == 2 and (out_shape[-1] or 0) > 1
    classes = int(out_shape[-1]) if classifier else 0
    teacher, student, probabilities = original, fixed, outputs == "probabilities"
    if classifier and outputs == "auto":
        teacher_logits, student_logits = logits_model(original), logits_model(fixed)
        if teacher_logits is not None and student_logits is not None:
            teacher, student = teacher_logits, student_logits
        else:
            probabilities = ends_in_softmax(fixed)
    targets = _targets(teacher, x, labels, classes, probabilities, batch_size)
    loss = (DistillationLoss(classes, temperature, alpha, labels is not None, probabilities)
            if classifier else "mse")
    val = None
    if validation_data is not None:
        vx, vy = _split(validation_data)
        val = (vx, _targets(teacher, vx, vy if labels is not None else None, classes,
                            probabilities, batch_size))
    student.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate), loss=loss)
    history = student.fit(x, targets, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                          callbacks=list(callbacks or []), validation_data=val,
                          verbose=verbose)
    probe = x if fidelity_data is None else np.asarray(fidelity_data)
    error, top1 = fid.model_fidelity(original, fixed, probe, batch_size)
    described = "the distillation data" if fidelity_data is None else "the given data"
    return DistillResult(history, fid.Fidelity(f"{described} ({len(probe)} samples)", False,
                                               error, top1, []))
