"""Training the builders on several devices: ``keras.distribution`` and ``tf.distribute``.

Keras 3 already has the engine (see ``docs/distribution.md``); this module adds what it
needs from us:

* :func:`propose_layout_map` proposes a ``keras.distribution.LayoutMap`` for
  ``ModelParallel`` (JAX backend): the large Dense kernels and wide 1×1 convolution
  kernels of a model are sharded over the mesh's model axis, keyed by the variables'
  exact paths (``predictions/kernel``, ``conv5_block1_1_conv/kernel``), which the
  builders' predictable layer names make the same every time a model is built.  Kernels
  that cannot be split evenly are sharded on their other dimension, or skipped (never
  padded: padding would change the model) and listed with the reason.
* :func:`synchronize_batch_norm` makes batch norm use the statistics of the global batch
  under a ``tf.distribute`` strategy, as it does on its own under ``keras.distribution``
  on JAX.

Data parallelism needs nothing from us: build the model inside the distribution's scope
(``keras.distribution.DataParallel`` on JAX, ``tf.distribute.MirroredStrategy`` on
TensorFlow) and train it as usual.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import re

#: Candidates smaller than this many parameters stay replicated: sharding a small
#: kernel saves little memory and costs a collective per use.  2**20 parameters are
#: 4 MiB in float32.
DEFAULT_MIN_PARAMS = 2 ** 20


@dataclasses.dataclass(frozen=True)
class ShardedVariable:
    """A variable the plan shards: its path (the ``LayoutMap`` key), shape and axes.

    ``axes`` holds one mesh axis name or ``None`` per dimension of the variable.
    """

    path: str
    shape: tuple
    axes: tuple


@dataclasses.dataclass(frozen=True)
class SkippedVariable:
    """A large kernel the plan leaves replicated, and why."""

    path: str
    shape: tuple
    reason: str


@dataclasses.dataclass
class LayoutPlan:
    """What :func:`propose_layout_map` proposes.

    Attributes:
        layout_map: the ``keras.distribution.LayoutMap`` to give ``ModelParallel``;
            variables it does not name are replicated.
        sharded: the variables sharded, in the model's layer order.
        skipped: the large kernels left replicated (no dimension divisible by the model
            axis, or a path shared with another variable), with the reason.
        model_axis: the mesh axis the kernels are sharded over.
        axis_size: its number of devices.
    """

    layout_map: object
    sharded: tuple
    skipped: tuple
    model_axis: str
    axis_size: int

    def describe(self) -> str:
        """A table of the sharded and the skipped variables."""
        lines = [f"sharded over mesh axis {self.model_axis!r} ({self.axis_size} devices): "
                 f"{len(self.sharded)} variable(s)"]
        lines += [f"  {v.path:<40} {str(v.shape):<22} {v.axes}" for v in self.sharded]
        if self.skipped:
            lines.append(f"left replicated: {len(self.skipped)} large kernel(s)")
            lines += [f"  {v.path:<40} {str(v.shape):<22} {v.reason}" for v in self.skipped]
        return "\n".join(lines)


def _candidate_kernel(layer):
    """The kernel of a Dense layer or an ungrouped 1×1 convolution, else ``None``."""
    import keras

    if type(layer) is keras.layers.Dense:  # pylint: disable=unidiomatic-typecheck
        # Subclasses may use their kernel differently; only Dense's matmul is known.
        return layer.kernel
    convs = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    if type(layer) in convs and layer.groups == 1 and \
            all(k == 1 for k in layer.kernel_size):
        return layer.kernel
    return None


def _layers(model):
    """Every layer of ``model``, nested ones included, each once."""
    # Keras has no public recursive layer walk; _flatten_layers is what Model.summary
    # and the tracking machinery use.
    return model._flatten_layers(include_self=False)  # pylint: disable=protected-access


def _mesh_axis(device_mesh, model_axis: str) -> int:
    if model_axis not in device_mesh.axis_names:
        raise ValueError(f"the device mesh has no axis {model_axis!r} (its axes: "
                         f"{tuple(device_mesh.axis_names)}); pass model_axis=")
    return int(device_mesh.shape[list(device_mesh.axis_names).index(model_axis)])


def _kernel_axes(shape: tuple, model_axis: str, size: int):
    """Axes that shard a (…, in, out) kernel: on ``out`` if it divides, else on ``in``.

    Returns ``(axes, shard_bias)``, or ``(None, reason)`` when neither dimension is
    divisible by ``size``.
    """
    n_in, n_out = shape[-2], shape[-1]
    lead = (None,) * (len(shape) - 2)
    if n_out % size == 0:
        return lead + (None, model_axis), True
    if n_in % size == 0:
        return lead + (model_axis, None), False
    return None, (f"neither its input ({n_in}) nor its output ({n_out}) dimension is "
                  f"divisible by the {size} devices of axis {model_axis!r}; kept whole "
                  "(padding would change the model)")


def propose_layout_map(model, device_mesh, *, model_axis: str = "model",
                       min_params: int = DEFAULT_MIN_PARAMS) -> LayoutPlan:
    """Propose a ``LayoutMap`` that shards ``model``'s large kernels over ``model_axis``.

    The candidates are the kernels of ``Dense`` layers and of ungrouped 1×1 convolutions
    (``Conv1D/2D/3D``) with at least ``min_params`` parameters: classifier heads,
    VGG's and AlexNet's fully connected layers, the wide 1×1 convolutions of the last
    stages.  Each is split on its output dimension (column-parallel; its bias is split
    alike) when the model axis divides it, else on its input dimension (row-parallel;
    the bias stays whole), else left replicated and listed in ``skipped``.  Everything
    else (3×3 and depthwise kernels, batch norm, small layers) is replicated.

    The map's keys are the variables' paths (``"fc1/kernel"``), escaped as regular
    expressions: ``LayoutMap`` matches keys with ``re.fullmatch``, and a path matching
    two keys is an error, so each key names exactly one path.  Paths are not always
    unique: a model nested in another after it was built keeps its own paths, so two
    same-named layers (a backbone's ``predictions`` and the outer model's) share one;
    such kernels are left replicated and listed in ``skipped``.  A model built again by
    the same code (the builders name every layer) has the same paths: plan on a model
    built outside the distribution (on the host if it does not fit one device), then
    build the model for training inside ``ModelParallel``'s scope.

    Args:
        model: a built Keras model (its variables' shapes are read, not their values).
        device_mesh: the ``keras.distribution.DeviceMesh`` of the ``ModelParallel``.
        model_axis: the mesh axis to shard the kernels over.
        min_params: the smallest kernel, in parameters, worth sharding.

    Returns:
        The plan: the ``LayoutMap``, the variables sharded and the kernels skipped.

    Raises:
        ValueError: ``model_axis`` is not an axis of ``device_mesh``, or ``model`` is
            not built.
    """
    from keras.distribution import LayoutMap

    size = _mesh_axis(device_mesh, model_axis)
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built: its kernel shapes are "
                         "unknown (call it on an input or build it first)")
    layout_map = LayoutMap(device_mesh)
    # A nested model built on its own keeps its variables' paths ("d/kernel"), so two
    # layers of the same name in different models share a path, and a LayoutMap key
    # could not tell them apart.
    uses = collections.Counter(v.path for v in model.variables)
    sharded, skipped = [], []
    for layer in _layers(model):
        kernel = _candidate_kernel(layer)
        if kernel is None or math.prod(kernel.shape) < min_params:
            continue
        shape = tuple(int(d) for d in kernel.shape)
        axes, shard_bias = _kernel_axes(shape, model_axis, size)
        bias = getattr(layer, "bias", None)
        variables = [(kernel, axes)]
        if shard_bias is True and bias is not None:
            variables.append((bias, (model_axis,)))
        shared = [v.path for v, _ in variables if uses[v.path] > 1]
        if shared:
            skipped.append(SkippedVariable(
                kernel.path, shape, f"{uses[shared[0]]} variables have the path "
                f"{shared[0]!r} (same-named layers in nested models); a LayoutMap key "
                "could not tell them apart: give the layers unique names"))
            continue
        if axes is None:
            skipped.append(SkippedVariable(kernel.path, shape, shard_bias))
            continue
        for variable, var_axes in variables:
            layout_map[re.escape(variable.path)] = var_axes
            sharded.append(ShardedVariable(variable.path, tuple(variable.shape), var_axes))
    return LayoutPlan(layout_map, tuple(sharded), tuple(skipped), model_axis, size)


def synchronize_batch_norm(model) -> int:
    """Make every ``BatchNormalization`` of ``model`` use global-batch statistics under a
    ``tf.distribute`` strategy (Keras' ``synchronized=True``); returns how many changed.

    Under ``tf.distribute.MirroredStrategy`` each replica normalises with the mean and
    variance of its own slice of the batch, so training differs from one device with
    the same global batch; synchronised, the replicas all-reduce the moments and the
    losses match.  The flag is read at call time and saved with the model.

    On JAX, ``keras.distribution`` computes batch statistics over the global batch
    already (the sharded program keeps single-device semantics), and Keras accepts the
    flag only on TensorFlow: there this function changes nothing and returns 0.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return 0
    changed = 0
    for layer in _layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            layer.synchronized = True
            changed += 1
    return changed
