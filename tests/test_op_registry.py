"""The op registry: every kind is complete, gaps are caught, attrs are typed, plugins load.

Expected figures are worked out here by hand (``2·C`` parameters, ``2`` FLOPs per
element), never read from the code under test.
"""
import dataclasses
from importlib import metadata

import numpy as np
import pytest

from keras_cnnkit.analysis import ops
from keras_cnnkit.analysis.cost import node_cost, summarize
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.ops import registry
from keras_cnnkit.analysis.patterns import TRANSPARENT
from keras_cnnkit.analysis.shapes import ShapeError, infer_shape, propagate_shapes

CONV_ATTRS = {"kernel": (3, 3), "in_channels": 4, "filters": 8, "use_bias": True,
              "padding": "same"}


def gaps() -> dict:
    """Kind → what it lacks, for every registered kind that lacks something."""
    return {kind: ops.missing_pieces(ops.op_def(kind)) for kind in ops.all_kinds()
            if ops.missing_pieces(ops.op_def(kind))}


def test_every_kind_has_shape_cost_and_codegen():
    """Walk the registry: a shape rule, a FLOP formula, and a codegen or the reason
    there is none, for every kind."""
    assert gaps() == {}
    for kind in ops.all_kinds():
        definition = ops.op_def(kind)
        assert definition.kind == kind
        assert definition.rebuildable or definition.not_rebuildable.strip()


#: Kinds added after OpKind, each named by its op module's constant.
LATER_KINDS = {"layer_scale", "divide", "reduce", "strided_slice", "resize", "matmul",
               "einsum", "einsum_dense", "unary", "adaptive_pool", "attention", "rnn",
               "lookup", "state"}


def test_every_builtin_kind_is_registered():
    """Every OpKind constant names a registered kind (and the later kinds are the rest)."""
    builtin = {v for k, v in vars(OpKind).items() if k.isupper()}
    assert len(builtin) == 31
    assert builtin | LATER_KINDS == set(ops.all_kinds())


class _HalfDone(ops.OpDef):
    """A kind someone started: a shape rule, nothing else."""

    kind = "test_half_done"

    def infer_shape(self, a, shapes):
        return tuple(shapes[0])


class _NoReason(_HalfDone):
    """Marked not rebuildable, without saying why."""

    kind = "test_no_reason"
    rebuildable = False

    def flops(self, node, a, sizes, macs):
        return 0


@pytest.fixture
def scratch_kinds():
    """Kinds registered by a test, removed afterwards."""
    added = []
    yield added
    for kind in added:
        ops.unregister(kind)


def test_coverage_walk_catches_a_kind_with_missing_pieces(scratch_kinds):
    """A registered kind without a FLOP formula and a codegen fails the walk."""
    ops.register(_HalfDone)
    scratch_kinds.append(_HalfDone.kind)
    assert gaps() == {"test_half_done": [
        "a FLOP formula (flops)",
        "a Keras codegen (keras_layers), or rebuildable = False with a reason"]}


def test_not_rebuildable_needs_a_reason(scratch_kinds):
    ops.register(_NoReason)
    scratch_kinds.append(_NoReason.kind)
    assert gaps() == {"test_no_reason": ["the reason it is not rebuildable (not_rebuildable)"]}


def test_register_refuses_a_taken_kind_and_a_nameless_one():
    class Nameless(ops.OpDef):
        pass

    with pytest.raises(ops.OpDefinitionError, match="'conv'.*taken"):
        ops.register(Impostor)
    with pytest.raises(ops.OpDefinitionError, match="no kind name"):
        ops.register(Nameless)
    assert type(ops.op_def(OpKind.CONV)).__name__ == "Conv"


# --- typed attributes ---------------------------------------------------------------------


def conv_node(**changes):
    attrs = dict(CONV_ATTRS, **changes)
    return Node("c", OpKind.CONV, ["x"], [(8, 8, 4)], (8, 8, 8), attrs)


def test_attrs_are_checked_when_a_node_is_made():
    conv_node()  # complete: fine
    conv_node(kernel=(np.int64(3), np.int64(3)), in_channels=np.int32(4))  # numpy ints too
    with pytest.raises(ops.AttrsError, match="needs the attribute.*'kernel'"):
        Node("c", OpKind.CONV, ["x"], [(8, 8, 4)], (8, 8, 8),
             {k: v for k, v in CONV_ATTRS.items() if k != "kernel"})
    with pytest.raises(ops.AttrsError, match="no attribute.*'kernal'"):
        conv_node(kernal=(3, 3))
    with pytest.raises(ops.AttrsError, match="'kernel' must be"):
        conv_node(kernel="3x3")
    with pytest.raises(ops.AttrsError, match="'use_bias' must be bool"):
        conv_node(use_bias="yes")
    with pytest.raises(ops.AttrsError, match="one of 'channels_last', 'channels_first'"):
        conv_node(data_format="NHWC")
    with pytest.raises(ops.AttrsError, match="unknown op kind 'convolution'"):
        Node("c", "convolution", ["x"], [(8, 8, 4)], (8, 8, 8), dict(CONV_ATTRS))


def test_typed_attrs_fill_defaults():
    """Missing optional attributes read as their declared defaults."""
    typed = ops.typed_attrs(OpKind.CONV, CONV_ATTRS)
    assert (typed.groups, typed.strides, typed.dilation, typed.activation) == (
        1, (1, 1), (1, 1), None)
    assert typed.data_format == "channels_last" and typed.dtype_bytes == 4
    assert dataclasses.is_dataclass(typed)
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.groups = 2  # pylint: disable=assigning-non-slot


def test_shape_inference_reports_bad_attrs_as_shape_errors():
    with pytest.raises(ShapeError, match="'kernel'"):
        infer_shape(OpKind.CONV, {"in_channels": 4, "filters": 8, "use_bias": True},
                    [(8, 8, 4)])
    assert infer_shape(OpKind.CONV, CONV_ATTRS, [(8, 8, 4)]) == (8, 8, 8)


# --- third-party kinds through the entry point --------------------------------------------


@pytest.fixture
def entry_points(monkeypatch):
    """Simulate installed ``keras_cnnkit.op_kinds`` entry points (name → target)."""
    def install(**targets):
        eps = [metadata.EntryPoint(name, value, ops.ENTRY_POINT_GROUP)
               for name, value in targets.items()]
        monkeypatch.setattr(registry, "_entry_points", lambda: eps)
        monkeypatch.setitem(registry._PLUGINS, "loaded", False)  # pylint: disable=protected-access

    yield install
    for kind in ("test_scale_shift", "test_incomplete"):
        ops.unregister(kind)


def test_plugin_kind_is_used_end_to_end(entry_points):
    """A kind from an entry point: nodes, shapes, costs, summary and traits use it."""
    entry_points(**{"scale-shift": "op_plugin_example:ScaleShift"})
    graph = Graph(name="g")
    graph.add(Node("x", OpKind.INPUT, output_shape=(5, 5, 4), attrs={"shape": (5, 5, 4)}))
    shape = infer_shape("test_scale_shift", {"channels": 4}, [(5, 5, 4)])
    assert shape == (5, 5, 4)
    graph.add(Node("ss", "test_scale_shift", ["x"], [(5, 5, 4)], shape, {"channels": 4},
                   source_class="ScaleShift"))
    graph.inputs, graph.outputs = ["x"], ["ss"]
    cost = node_cost(graph["ss"])
    assert cost.known and cost.params == 2 * 4 and cost.flops == 2 * 5 * 5 * 4
    assert summarize(graph).params == 8 and summarize(graph).flops == 200
    assert "test_scale_shift" in ops.all_kinds() and "test_scale_shift" in TRANSPARENT
    bigger = propagate_shapes(graph, {"x": (10, 10, 4)})
    assert bigger["ss"].output_shape == (10, 10, 4)
    assert node_cost(bigger["ss"]).flops == 2 * 10 * 10 * 4
    with pytest.raises(ops.AttrsError, match="'channels'"):
        Node("bad", "test_scale_shift", ["x"], [(5, 5, 4)], shape, {})


def test_broken_plugins_are_errors_naming_the_entry_point(entry_points):
    entry_points(**{"gone": "no_such_module_here:Kind"})
    with pytest.raises(ops.OpDefinitionError, match="'gone'.*failed to load"):
        ops.all_kinds()
    entry_points(**{"half": "op_plugin_example:Incomplete"})
    with pytest.raises(ops.OpDefinitionError,
                       match="'half'.*'test_incomplete' lacks a FLOP formula"):
        ops.op_def("test_incomplete")
    assert ops.find("test_incomplete") is None
    entry_points(**{"not-a-kind": "op_plugin_example:ScaleShiftAttrs"})
    with pytest.raises(ops.OpDefinitionError, match="'not-a-kind'.*not a subclass of OpDef"):
        ops.all_kinds()
    entry_points(**{"builtin-again": "keras_cnnkit.analysis.ops.elementwise:Add",
                    "impostor": "test_op_registry:Impostor"})
    with pytest.raises(ops.OpDefinitionError, match="'impostor'.*'conv'.*taken"):
        ops.all_kinds()


class Impostor(_HalfDone):
    """A plugin claiming a built-in kind."""

    kind = OpKind.CONV

    def flops(self, node, a, sizes, macs):
        return 0

    def keras_layers(self, node, a, common):
        return []
