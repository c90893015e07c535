"""Applying replacements to a live Keras model: rebuild it, carrying weights over.

The model's functional graph (a Sequential's too) is re-run call by call in topological
order.  Each layer is cloned from its config and keeps its weights, except the layers a
replacement removes: when the last of them is reached, the replacement's layers are
called instead.  Layers inside ``keras_cnnkit`` blocks (IR names ``block/op``) and nested
models (``outer/layer``) are reachable too: a block or nested model a replacement touches
is flattened into plain layers (``block_op``), with their weights; so is a separable
conv (``sep/depthwise`` + ``sep``: a ``DepthwiseConv`` and a 1×1 conv).  A Sequential model
stays Sequential when every replacement is a chain.

Weights: a fragment node that re-creates a removed node (the same name, else the next
removed node of the same op) takes its weights when their shapes agree.  In a
function-preserving replacement it keeps the Keras name too, and a conv/dense that lost
its bias folds it into the batch norm it feeds (moving mean − bias), so the outputs are
unchanged.  Other new layers start from their initialisers (the model needs retraining).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Iterable, Optional, Sequence, Union

import keras

from keras_cnnkit.analysis.ir import Graph, OpKind
from keras_cnnkit.errors import CnnkitError
from keras_cnnkit.io_guard import functional_graph
from keras_cnnkit.lint.findings import Finding
from keras_cnnkit.rewrite import fold
from keras_cnnkit.rewrite.codegen import call_layers, layer_name, node_layers
from keras_cnnkit.rewrite.plan import select_findings

#: A fragment entry's layers, or a factory ``make(originals, name_for)`` making them once
#: the original layers (IR name → layer) have been reached; ``name_for(ir_name)`` gives
#: a Keras name unique in the rebuilt model.
LayerSource = Union[list, Callable[[dict, Callable[[str], str]], list]]


class RewriteError(CnnkitError, ValueError):
    """A replacement cannot be applied to this model (unknown node, dangling output...)."""


@dataclasses.dataclass
class Substitution:
    """One replacement, in terms of Keras layers.

    Attributes:
        removed: IR names of the replaced nodes, topological order.
        output: the fragment entry (or outside IR node) whose value replaces
            ``removed[-1]``.
        entries: ``(ir_name, layers, input_ir_names)`` per new node, in call order;
            ``layers`` may be a :data:`LayerSource` factory.
        carry: ``carry(original_layers, new_layers)`` sets the new layers' weights
            (both dicts by IR name), or None.
        finding: the finding it comes from, if any.
        preserves_function: whether the rebuilt model computes the same function.
    """

    removed: list
    output: str
    entries: list
    carry: Optional[Callable[[dict, dict], None]] = None
    finding: Optional[Finding] = None
    preserves_function: bool = False


@dataclasses.dataclass
class RewriteResult:
    """What :func:`rewrite_model` did.

    Attributes:
        model: the rebuilt model.
        applied: the substitutions applied, in model order.
        skipped: the findings not applied, each with the reason (:class:`Skipped`).
    """

    model: keras.Model
    applied: list
    skipped: list

    @property
    def needs_retraining(self) -> bool:
        """True when some applied substitution changes what the model computes."""
        return any(not sub.preserves_function for sub in self.applied)

    @property
    def applied_findings(self) -> list:
        """The findings behind the applied substitutions."""
        return [sub.finding for sub in self.applied if sub.finding is not None]


#: Rules whose fix computes its layers' weights from the layers it removes (an exact merge),
#: → ``"module:function(finding, graph, dtype) -> Substitution"``.
COMPUTED_WEIGHTS = {"mergeable-branches": "keras_cnnkit.rewrite.reparam:finding_substitution"}


class _Removed:
    """Stands for the value of a removed intermediate node while the model is re-run."""

    def __init__(self, name: str):
        self.name = name


def substitution_for(finding: Finding, graph: Optional[Graph] = None,
                     dtype: Any = None) -> Substitution:
    """The :class:`Substitution` of ``finding``'s replacement (layers from codegen).

    ``graph`` (the IR the finding was made on) lets weights be matched to the removed
    nodes by op, and a dropped bias find the batch norm after it.
    """
    rep = finding.replacement
    if rep is None:
        raise RewriteError(f"{finding.code} at {finding.layer!r} has no replacement")
    if finding.symbol in COMPUTED_WEIGHTS and graph is not None:
        # Weights that are computed from several removed layers, not carried over.
        module, _, function = COMPUTED_WEIGHTS[finding.symbol].partition(":")
        return getattr(importlib.import_module(module), function)(finding, graph, dtype)
    pairs = _counterparts(rep, graph)
    # A function-preserving fix keeps the Keras names of the layers it re-creates.
    keep = {node.name: old for node, old in pairs} if rep.preserves_function else {}
    entries = [(node.name, _codegen_source(node, keep.get(node.name, node.name), dtype),
                list(node.inputs)) for node in rep.nodes]
    return Substitution(list(rep.removed), rep.output, entries,
                        carry=_carry(rep, pairs, graph), finding=finding,
                        preserves_function=rep.preserves_function)


def _codegen_source(node, name: str, dtype) -> Callable[[dict, Callable[[str], str]], list]:
    def make(_originals: dict, name_for: Callable[[str], str]) -> list:
        return node_layers(node, name=name_for(name), dtype=dtype)
    return make


def _counterparts(rep, graph: Optional[Graph]) -> list:
    """``(fragment node, removed name)`` pairs: the same name, else the next removed node
    of the same op (a fragment node that re-creates a removed one)."""
    unmatched = list(rep.removed)
    pairs = []
    for node in rep.nodes:
        match = node.name if node.name in unmatched else next(
            (name for name in unmatched if graph is not None and name in graph.nodes
             and graph[name].op == node.op), None)
        if match is not None:
            unmatched.remove(match)
            pairs.append((node, match))
    return pairs


def _carry(rep, pairs: list, graph: Optional[Graph]) -> Callable[[dict, dict], None]:
    """Weights for the fragment: each re-created layer takes its original's weights when
    the shapes agree.  In a function-preserving fix a conv/dense that lost its bias
    folds it into the batch norm it feeds (inside the fragment, or the graph's next
    node); any other mismatch there is an error."""
    def carry(originals: dict, new: dict) -> None:
        dropped = {}
        for node, old_name in pairs:
            old, layer = originals[old_name], new[node.name]
            weights = old.get_weights()
            if _shapes(old) == _shapes(layer):
                layer.set_weights(weights)
            elif not rep.preserves_function:
                continue
            elif (len(weights) == 2 and len(layer.weights) == 1
                  and tuple(layer.weights[0].shape) == weights[0].shape):
                layer.set_weights(weights[:1])
                dropped[node.name] = weights[1]
            else:
                raise RewriteError(f"cannot carry the weights of {old_name!r} into "
                                   f"{node.name!r}: shapes {_shapes(old)} vs {_shapes(layer)}")
        for name, bias in dropped.items():
            bn = _batchnorm_after(name, rep, graph)
            if bn is None or bn not in new:
                raise RewriteError(f"the bias dropped from {name!r} has no batch norm "
                                   "to fold into")
            fold.fold_bias_into_bn(bias, new[bn])
    return carry


def _batchnorm_after(name: str, rep, graph: Optional[Graph]) -> Optional[str]:
    """The batch norm reading fragment node ``name``: in the fragment, or after it."""
    for node in rep.nodes:
        if node.op == OpKind.BATCHNORM and node.inputs[:1] == [name]:
            return node.name
    if name == rep.output and graph is not None:
        consumer = graph.single_consumer(graph[rep.removed[-1]])
        if consumer is not None and consumer.op == OpKind.BATCHNORM:
            return consumer.name
    return None


def _shapes(layer) -> list:
    return [tuple(w.shape) for w in layer.weights]


def rewrite_model(model: keras.Model, findings: Iterable[Finding] = (),
                  substitutions: Sequence[Substitution] = (), select=None,
                  graph: Optional[Graph] = None, dtype: Any = None) -> RewriteResult:
    """Rebuild ``model`` with the findings' replacements (and extra ``substitutions``).

    Args:
        model: a built Functional or Sequential model.  It is not modified.
        findings: findings of a lint of ``model``; those without a replacement, not
            matched by ``select``, or in conflict with a bigger saving are skipped.
        substitutions: further substitutions (e.g. from :func:`fold_batchnorm`).
        select: codes, code prefixes or symbols of the findings to apply (None: all).
        graph: the IR the findings were made on (default: ``model``'s, from the live
            frontend); it matches weights to removed nodes and rejects replacements
            that would leave a node dangling.
        dtype: dtype policy of the new layers (None: Keras' default).

    Raises:
        RewriteError: the model is not Functional/Sequential, or a replacement names a
            node the model does not have.
    """
    findings = list(findings)
    if graph is None and any(f.replacement is not None for f in findings):
        from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
        graph = graph_from_keras(model)
    chosen, skipped = select_findings(findings, select=select, graph=graph)
    subs = [substitution_for(f, graph, dtype=dtype) for f in chosen] + list(substitutions)
    if not subs:
        return RewriteResult(_rebuild(model, []).model, [], skipped)
    rebuilt = _rebuild(model, subs)
    rebuilt.skipped = skipped
    return rebuilt


def apply_findings(model: keras.Model, findings: Iterable[Finding], select=None,
                   graph: Optional[Graph] = None) -> keras.Model:
    """``model`` rebuilt with the findings' replacements; see :func:`rewrite_model`."""
    return rewrite_model(model, findings, select=select, graph=graph).model


def apply_report(model: keras.Model, report, select=None) -> keras.Model:
    """``model`` rebuilt with the fixes of ``report``, its lint report (the Python twin of
    ``cnnkit-lint --fix``).

    ``model`` is not modified.  ``select`` (codes, code prefixes, symbols or ``ALL``)
    picks the findings to apply; conflicting fixes keep the bigger FLOP saving.
    """
    return apply_findings(model, report.findings, select=select, graph=report.graph)


def fold_batchnorm(model: keras.Model, graph: Optional[Graph] = None) -> RewriteResult:
    """Inference transform: fold each batch norm into the conv/dense feeding it.

    A conv, depthwise conv or dense without a fused activation, whose only consumer is
    a ``BatchNormalization`` over its channel axis, becomes one layer with a bias;
    the batch norm disappears.  The outputs in inference are unchanged (to float
    rounding); the model should not be trained afterwards.
    """
    if graph is None:
        from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
        graph = graph_from_keras(model)
    return apply_substitutions(model, batchnorm_fold_substitutions(graph))


def apply_substitutions(model: keras.Model, substitutions: Sequence[Substitution]
                        ) -> RewriteResult:
    """``model`` rebuilt with ``substitutions`` applied (an inference transform's, such as
    :func:`fold_batchnorm`'s or :func:`keras_cnnkit.rewrite.reparam.reparameterize`'s)."""
    return _rebuild(model, substitutions)


def batchnorm_fold_substitutions(graph: Graph) -> list:
    """The :class:`Substitution` of every foldable (conv/dense → BN) pair of ``graph``."""
    subs = []
    shared = {n.attrs["shares_weights_with"] for n in graph if "shares_weights_with" in n.attrs}
    for node in graph:
        if node.op not in (OpKind.CONV, OpKind.DEPTHWISE_CONV, OpKind.DENSE):
            continue
        if node.name in shared or "shares_weights_with" in node.attrs:
            continue  # a shared conv feeds other calls too
        if (node.attr("activation") or "linear") != "linear" or node.name in graph.outputs:
            continue
        bn = graph.single_consumer(node)
        if bn is None or bn.op != OpKind.BATCHNORM or len(bn.inputs) != 1 or (
                bn.name in shared or "shares_weights_with" in bn.attrs):
            continue
        rank = len(bn.output_shape)
        axis = bn.attr("axis", rank - 1) % rank  # IR axes exclude the batch
        if axis != (0 if node.data_format == "channels_first" else rank - 1):
            continue
        subs.append(Substitution([node.name, bn.name], node.name,
                                 [(node.name, _folded_layer(node.name), list(node.inputs))],
                                 carry=_bn_fold_carry(node.name, bn.name),
                                 preserves_function=True))
    return subs


def _folded_layer(conv_name: str) -> Callable[[dict, Callable[[str], str]], list]:
    def make(originals: dict, name_for: Callable[[str], str]) -> list:
        conv = originals[conv_name]
        if type(conv).__name__ not in fold.KERNEL_LAYOUTS:
            raise RewriteError(f"cannot fold a batch norm into {type(conv).__name__} "
                               f"{conv_name!r}")
        config = dict(conv.get_config(), use_bias=True, name=name_for(conv_name))
        return [type(conv).from_config(config)]
    return make


def _bn_fold_carry(conv_name: str, bn_name: str) -> Callable[[dict, dict], None]:
    def carry(originals: dict, new: dict) -> None:
        conv, bn = originals[conv_name], originals[bn_name]
        weights = conv.get_weights()
        kernel, bias = weights[0], (weights[1] if len(weights) > 1 else None)
        new[conv_name].set_weights(list(fold.fold_bn_into_kernel(
            kernel, bias, bn, fold.KERNEL_LAYOUTS[type(conv).__name__])))
    return carry


# -- the rebuild ---------------------------------------------------------------------


class _Rebuilder:
    """Re-runs a model's layers, substituting, and records old/new layers by IR name.

    IR names follow the live frontend: ``layer`` at the top level, ``outer/layer``
    inside a nested model, ``block/op`` inside a ``keras_cnnkit`` block.  A nested
    model or block that a substitution reaches into is flattened into plain layers
    (named ``outer_layer``, ``block_op``); the others are cloned whole.
    """

    def __init__(self, model: keras.Model, subs: Sequence[Substitution]):
        self.model = model
        self.by_last = {}
        self.intermediate = set()
        for sub in subs:
            if sub.removed[-1] in self.by_last:
                raise RewriteError(f"two replacements end at {sub.removed[-1]!r}")
            self.by_last[sub.removed[-1]] = sub
            self.intermediate.update(sub.removed[:-1])
        touched = {name for sub in subs for name in sub.removed}
        touched |= {src for sub in subs for _, _, ins in sub.entries for src in ins}
        self.expand = {"/".join(name.split("/")[:i]) for name in touched
                       for i in range(1, name.count("/") + 1)}
        # Names of the layers that stay; a removed layer's name is free for its successor.
        self.taken = {layer_name(layer.name) for layer in model.layers} - {
            layer_name(name) for sub in subs for name in sub.removed if "/" not in name}
        self.tensors: dict = {}
        self.calls: dict = {}
        self.clones: dict = {}
        self.originals: dict = {}
        self.new: dict = {}
        self.copies: list = []
        self.order: list = []
        self.applied: list = []

    def name_for(self, ir_name: str) -> str:
        """A Keras name for a new layer, unique in the rebuilt model."""
        base = layer_name(ir_name)
        name, i = base, 1
        while name in self.taken:
            i += 1
            name = f"{base}_fix{i if i > 2 else ''}"
        self.taken.add(name)
        return name

    def call(self, layer, *args, prefix: str = "", **kwargs):
        """One call of an original layer (the ``call_fn`` of the graph walk)."""
        ir_name = self._call_name(prefix + layer.name)
        if ir_name in self.expand and _is_model(layer):
            return self._expand_model(layer, args, kwargs, ir_name + "/")
        if ir_name in self.expand and _is_block(layer):
            return self._expand_block(layer, args[0], ir_name + "/")
        if ir_name in self.expand and _is_separable(layer):
            depthwise, pointwise = split_separable(layer, tuple(args[0].shape))
            mid = self.call(depthwise, args[0], prefix=ir_name + "/")
            return self.visit(ir_name, pointwise,
                              lambda: self._clone_once(pointwise, ir_name, prefix), (mid,), {})
        out = self.visit(ir_name, layer, lambda: self._clone_once(layer, ir_name, prefix),
                         args, kwargs)
        for alias in _output_aliases(layer, args, ir_name):
            self.tensors[alias] = out
        return out

    def _call_name(self, name: str) -> str:
        """The IR name of this call: ``name``, then ``name@1``... for a shared layer's
        later calls (the live frontend's naming)."""
        k = self.calls.get(name, 0)
        self.calls[name] = k + 1
        return name if k == 0 else f"{name}@{k}"

    def _clone_once(self, layer, ir_name: str, prefix: str):
        """The new layer for ``layer``: one clone per original, shared by all its calls."""
        if id(layer) not in self.clones:
            rename = self.name_for(ir_name) if prefix else None
            self.clones[id(layer)] = _clone_layer(layer, rename)
        return self.clones[id(layer)]

    def visit(self, ir_name: str, original, make_new: Callable, args, kwargs):
        """Emit one IR node: clone it, skip it (removed), or emit its replacement."""
        self.originals[ir_name] = original
        if ir_name in self.by_last:
            out = self._emit(self.by_last[ir_name])
        elif ir_name in self.intermediate:
            out = _Removed(ir_name)
        else:
            for value in keras.tree.flatten((args, kwargs)):
                if isinstance(value, _Removed):
                    raise RewriteError(f"{ir_name!r} reads {value.name!r}, which a "
                                       "replacement removes")
            layer = make_new()
            out = layer(*args, **kwargs)
            self.copies.append((original, layer))
            self.new[ir_name] = layer
            self.order.append(layer)
        self.tensors[ir_name] = out
        return out

    def _lookup(self, name: str, local: dict):
        if name in local:
            return local[name]
        if name not in self.tensors or isinstance(self.tensors[name], _Removed):
            raise RewriteError(f"a replacement reads {name!r}, which is not available "
                               "at that point of the model")
        return self.tensors[name]

    def _emit(self, sub: Substitution):
        local = {}
        for ir_name, source, inputs in sub.entries:
            layers = source(self.originals, self.name_for) if callable(source) else source
            local[ir_name] = call_layers(layers, [self._lookup(s, local) for s in inputs])
            self.new[ir_name] = layers[-1]
            self.order.extend(layers)
        self.applied.append(sub)
        return self._lookup(sub.output, local)

    def _expand_block(self, block, x, prefix: str):
        from keras_cnnkit.blockspec.core import BLOCK_INPUT
        graph = block.graph(tuple(x.shape))
        values = {BLOCK_INPUT: x}
        op_layers = block._op_layers  # pylint: disable=protected-access
        for op in graph.ops:
            args = [values[src] for src in op.inputs]
            values[op.name] = self.call(op_layers[op.name], args[0] if len(args) == 1 else args,
                                        prefix=prefix)
        self.tensors[prefix.rstrip("/")] = values[graph.output]
        return values[graph.output]

    def _expand_model(self, model, args, kwargs, prefix: str):
        if any(v is not None for v in kwargs.values()):
            raise RewriteError(f"cannot flatten nested model {model.name!r} called with "
                               f"keyword arguments {sorted(kwargs)}")
        inner = functional_graph(model)
        out = inner._run_through_graph(  # pylint: disable=protected-access
            args[0], operation_fn=lambda layer: layer,
            call_fn=lambda layer, *a, **k: self.call(layer, *a, prefix=prefix, **k))
        self.tensors[prefix.rstrip("/")] = out
        return out


def _is_separable(layer) -> bool:
    return type(layer).__name__ in ("SeparableConv1D", "SeparableConv2D")


def split_separable(layer, input_shape: tuple) -> tuple:
    """A built ``SeparableConvND`` as two built layers with its weights: a depthwise conv
    named ``depthwise`` (no bias) and the 1×1 pointwise conv (bias, activation) under the
    layer's own name — the two IR nodes ``name/depthwise`` and ``name``."""
    rank = 1 if type(layer).__name__.endswith("1D") else 2
    config = layer.get_config()
    common = {"data_format": config["data_format"], "dtype": layer.dtype_policy}
    depthwise = getattr(keras.layers, f"DepthwiseConv{rank}D")(
        kernel_size=config["kernel_size"], strides=config["strides"],
        padding=config["padding"], depth_multiplier=config["depth_multiplier"],
        dilation_rate=config["dilation_rate"], use_bias=False, name="depthwise", **common)
    pointwise = getattr(keras.layers, f"Conv{rank}D")(
        filters=config["filters"], kernel_size=1, use_bias=config["use_bias"],
        activation=config["activation"], name=layer.name, **common)
    depthwise.build(input_shape)
    pointwise.build(depthwise.compute_output_shape(input_shape))
    weights = layer.get_weights()
    depthwise.set_weights(weights[:1])
    pointwise.set_weights(weights[1:])
    return depthwise, pointwise


def _is_block(layer) -> bool:
    from keras_cnnkit.layers.base import SpecBlock
    return isinstance(layer, SpecBlock)


def _is_model(layer) -> bool:
    return isinstance(layer, keras.Model) and functional_graph(layer) is not None


def _output_aliases(layer, args, ir_name: str) -> list:
    """Other IR names of a layer's output: a block's output op, a nested model's output."""
    if _is_block(layer):
        return [f"{ir_name}/{layer.graph(tuple(args[0].shape)).output}"]
    if _is_model(layer):
        return [f"{ir_name}/{_op_name(t)}" for t in functional_graph(layer).outputs[:1]]
    return []


def _clone_layer(layer, name: Optional[str] = None):
    """A new layer from ``layer``'s config (renamed to ``name``), or ``layer`` itself when
    it is a stateless op that cannot be re-created."""
    if not isinstance(layer, keras.layers.Layer):
        return layer  # a bare keras.ops operation: stateless
    try:
        config = layer.get_config()
        if name is not None:
            config = dict(config, name=name)
        return type(layer).from_config(config)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        if not layer.weights and name is None:
            return layer  # stateless and not re-creatable: share the instance
        raise RewriteError(f"cannot re-create layer {layer.name!r} "
                           f"({type(layer).__name__}) from its config: {exc}") from exc


def _rebuild(model: keras.Model, subs: Sequence[Substitution]) -> RewriteResult:
    functional = functional_graph(model)
    if functional is None:
        raise RewriteError(f"model {model.name!r} is not a built Functional or Sequential "
                           "model (subclassed, or built without an Input); it cannot be "
                           "rewritten")
    rebuilder = _Rebuilder(model, subs)
    new_inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=_op_name(t)),
        functional.input)
    for old, new in zip(keras.tree.flatten(functional.input), keras.tree.flatten(new_inputs)):
        rebuilder.tensors[_op_name(old)] = new
    dangling = sorted({_op_name(t) for t in functional.outputs} & rebuilder.intermediate)
    if dangling:
        raise RewriteError(f"model output {dangling[0]!r} is removed by a replacement")
    outputs = functional._run_through_graph(  # pylint: disable=protected-access
        new_inputs, operation_fn=lambda layer: layer, call_fn=rebuilder.call)
    missing = [name for name in rebuilder.by_last if name not in rebuilder.originals]
    if missing:
        raise RewriteError("the model has no node named " + ", ".join(map(repr, missing)))
    if isinstance(model, keras.Sequential) and _is_chain(subs) and not rebuilder.expand:
        first = functional.inputs[0]
        new_model = keras.Sequential(
            [keras.Input(batch_shape=first.shape, dtype=first.dtype, name=_op_name(first))]
            + rebuilder.order, name=model.name)
    else:
        new_model = keras.Model(new_inputs, outputs, name=model.name)
    for old, new in rebuilder.copies:
        if new is not old:
            new.set_weights(old.get_weights())
    for sub in rebuilder.applied:
        if sub.carry is not None:
            sub.carry(rebuilder.originals, rebuilder.new)
    return RewriteResult(new_model, rebuilder.applied, [])


def _op_name(tensor) -> str:
    """The name of the layer that produced a Keras tensor (its input layer for inputs)."""
    history = getattr(tensor, "_keras_history", None)
    return history[0].name if history else tensor.name


def _is_chain(subs: Sequence[Substitution]) -> bool:
    """True when every fragment is a chain, so the layer list is still a Sequential."""
    for sub in subs:
        prev = None
        for ir_name, _, inputs in sub.entries:
            if len(inputs) != 1 or (prev is not None and inputs[0] != prev):
                return False
            prev = ir_name
        if sub.entries and sub.output != prev:
            return False
    return True
