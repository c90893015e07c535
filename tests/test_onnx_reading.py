"""Reading the ONNX files people really have (issue 14): dynamic sizes, exporters' shape
arithmetic, layer scale, layer norm, exact GELU, channel splits, radix sums, constants.

Each graph is written here with ``onnx.helper`` the way PyTorch's exporter writes it
(shapes computed by ``Shape → Gather → Unsqueeze → Concat``, ``chunk`` as ``Slice`` with
computed bounds, GELU as ``Div → Erf → Add → Mul → Mul``), mostly with dynamic height and
width.  Every expected figure is worked out by hand from the graph (MACs of a conv:
``H·W·C_out·k²·C_in/groups``; of a dense layer: ``positions·in·units``).
"""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from keras_cnnkit.analysis.cost import summarize
from keras_cnnkit.analysis.frontends.onnx_frontend import load_onnx_graph
from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.analysis.ops.geometry import pool_length
from keras_cnnkit.errors import ModelFileError
from keras_cnnkit.lint import cli
from keras_cnnkit.lint.api import lint, lint_graph

RNG = np.random.default_rng(0)


def weights(name, *shape):
    """Random float weights (as a trained model has: no exact zeros or whole numbers)."""
    return numpy_helper.from_array(RNG.uniform(0.1, 0.9, shape).astype(np.float32), name)


def const(name, values, dtype=np.int64):
    return helper.make_node("Constant", [], [name], name=f"{name}_const",
                            value=numpy_helper.from_array(np.asarray(values, dtype=dtype)))


def model(nodes, inits, in_shape, out_name="y", opset=17, in_name="x"):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def dims_of(tensor, prefix, axes):
    """PyTorch's ``x.size(i)`` for each axis: ``Shape → Gather(i) → Unsqueeze(0)``;
    returns the nodes and the names of the 1-element results."""
    nodes, names = [], []
    for axis in axes:
        nodes += [helper.make_node("Shape", [tensor], [f"{prefix}_shape{axis}"]),
                  const(f"{prefix}_i{axis}", axis),
                  helper.make_node("Gather", [f"{prefix}_shape{axis}", f"{prefix}_i{axis}"],
                                   [f"{prefix}_d{axis}"], axis=0),
                  const(f"{prefix}_u{axis}", [0]),
                  helper.make_node("Unsqueeze", [f"{prefix}_d{axis}", f"{prefix}_u{axis}"],
                                   [f"{prefix}_dim{axis}"])]
        names.append(f"{prefix}_dim{axis}")
    return nodes, names


def conv(name, x, out, w, b=None, **kw):
    return helper.make_node("Conv", [x, w] + ([b] if b else []), [out], name=name, **kw)


def ops_of(graph):
    return [n.op for n in graph]


# --- dynamic sizes ---------------------------------------------------------------------

def _small_cnn(in_shape):
    """3×3 stride-2 conv 3→8, ReLU, global average pool, flatten, dense 8→10."""
    nodes = [conv("conv", "x", "c", "w", pads=[1, 1, 1, 1], strides=[2, 2],
                  kernel_shape=[3, 3]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "wfc"], ["y"], name="fc", transB=1)]
    return model(nodes, [weights("w", 8, 3, 3, 3), weights("wfc", 10, 8)], in_shape)


def test_dynamic_height_and_width_default_to_224_with_a_note():
    graph = load_onnx_graph(_small_cnn(["batch", 3, "height", "width"]))
    summary = summarize(graph)
    assert summary.macs == 112 * 112 * 8 * 27 + 8 * 10 and summary.complete
    assert graph.notes == ["input 'x' (batch, 3, height, width): unknown dims taken as 224 "
                           "(the default), linted as 1x3x224x224; --input-shape "
                           "(input_shape=...) sets them"]
    given = load_onnx_graph(_small_cnn(["batch", 3, "height", "width"]), input_shape=(64, 48))
    assert summarize(given).macs == 32 * 24 * 8 * 27 + 80 and given.notes == []
    static = load_onnx_graph(_small_cnn([1, 3, 224, 224]))
    assert summarize(static).macs == summary.macs and static.notes == []


def test_an_input_with_no_known_dim_stays_unknown_and_asks_for_input_shape():
    graph = load_onnx_graph(_small_cnn(["batch", "channels", "height", "width"]))
    summary = summarize(graph)
    assert not summary.complete and "conv" in summary.unknown
    assert summary.to_dict()["costs_complete"] is False
    (note,) = graph.notes
    assert "no known dimension besides the batch" in note and "--input-shape" in note


def test_cli_prints_the_note_and_flags_incomplete_totals(tmp_path, capsys):
    dynamic, unknown = tmp_path / "dynamic.onnx", tmp_path / "unknown.onnx"
    onnx.save(_small_cnn(["batch", 3, "height", "width"]), str(dynamic))
    onnx.save(_small_cnn(["batch", "channels", "height", "width"]), str(unknown))
    cli.main([str(dynamic), str(unknown), "--no-config", "--format", "json"])
    models = {m["file"]: m["summary"] for m in json.loads(capsys.readouterr().out)["models"]}
    assert models[str(dynamic)]["costs_complete"] is True
    assert models[str(dynamic)]["macs"] == 112 * 112 * 8 * 27 + 80
    assert "taken as 224" in models[str(dynamic)]["notes"][0]
    assert models[str(unknown)]["costs_complete"] is False
    assert "conv" in models[str(unknown)]["unknown_cost_layers"]
    cli.main([str(dynamic), "--no-config"])
    out = capsys.readouterr().out
    assert f"{dynamic}: note: input 'x' (batch, 3, height, width): unknown dims taken as " \
           "224" in out
    cli.main([str(dynamic), "--no-config", "--format", "github"])
    assert f"::notice file={dynamic},title=cnnkit-lint::input 'x'" in capsys.readouterr().out
    cli.main([str(dynamic), "--no-config", "--format", "sarif"])
    (run,) = json.loads(capsys.readouterr().out)["runs"]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"]
    assert [(n["level"], "taken as 224" in n["message"]["text"])
            for n in invocation["toolExecutionNotifications"]] == [("note", True)]


# --- ShuffleNet V2: chunk + channel shuffle, as PyTorch writes them ----------------------

def _shufflenet_unit(in_shape):
    """Two branches (1×1 conv 16→16, 3×3 depthwise) concatenated to 32 channels, the
    channel shuffle (view (N, 2, 16, H, W), transpose, view back, sizes from ``Shape``),
    then ``x.chunk(2, dim=1)`` (``Slice`` with bounds computed from ``Shape``) and a 1×1
    conv 16→16 on the second half, concatenated with the first."""
    size_nodes, (n, c, h, w) = dims_of("cat", "s", [0, 1, 2, 3])
    nodes = [conv("branch1", "x", "a", "w1", "b1", kernel_shape=[1, 1]),
             conv("branch2", "x", "b", "w2", "b2", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                  group=16),
             helper.make_node("Concat", ["a", "b"], ["cat"], name="concat", axis=1),
             *size_nodes,
             const("two", [2]),
             helper.make_node("Div", ["s_d1", "two_s"], ["half"]),
             const("two_s", 2),
             const("g_u", [0]),
             helper.make_node("Unsqueeze", ["half", "g_u"], ["half1"]),
             helper.make_node("Concat", [n, "two", "half1", h, w], ["view5"], axis=0),
             helper.make_node("Reshape", ["cat", "view5"], ["r5"], name="view"),
             helper.make_node("Transpose", ["r5"], ["t5"], name="swap", perm=[0, 2, 1, 3, 4]),
             helper.make_node("Concat", [n, c, h, w], ["view4"], axis=0),
             helper.make_node("Reshape", ["t5", "view4"], ["shuffled"], name="unview"),
             helper.make_node("Shape", ["shuffled"], ["sh"]),
             const("ch", [1]),
             helper.make_node("Gather", ["sh", "ch"], ["csize"], axis=0),
             const("one", [1]),
             helper.make_node("Add", ["csize", "one"], ["c1"]),
             helper.make_node("Div", ["c1", "two"], ["step"]),
             helper.make_node("Mul", ["step", "one"], ["end0"]),
             helper.make_node("Mul", ["step", "two"], ["end1"]),
             const("zero", [0]),
             helper.make_node("Slice", ["shuffled", "zero", "end0", "one"], ["x1"],
                              name="chunk0"),
             helper.make_node("Slice", ["shuffled", "end0", "end1", "one"], ["x2"],
                              name="chunk1"),
             conv("branch3", "x2", "z", "w3", "b3", kernel_shape=[1, 1]),
             helper.make_node("Concat", ["x1", "z"], ["y"], name="out", axis=1)]
    inits = [weights("w1", 16, 16, 1, 1), weights("b1", 16), weights("w2", 16, 1, 3, 3),
             weights("b2", 16), weights("w3", 16, 16, 1, 1), weights("b3", 16)]
    return model(nodes, inits, in_shape)


@pytest.mark.parametrize("in_shape", [["N", 16, "H", "W"], [1, 16, 224, 224]])
def test_shufflenet_split_and_shuffle_are_understood(in_shape):
    graph = load_onnx_graph(_shufflenet_unit(in_shape))
    nodes = {n.name: n for n in graph}
    assert OpKind.OPAQUE not in ops_of(graph)
    assert nodes["view"].op == OpKind.CHANNEL_SHUFFLE and nodes["view"].attrs["groups"] == 2
    assert [(nodes[s].op, nodes[s].attrs["start"], nodes[s].attrs["stop"])
            for s in ("chunk0", "chunk1")] == [(OpKind.SLICE, 0, 16), (OpKind.SLICE, 16, 32)]
    assert nodes["branch3"].output_shape == (16, 224, 224)
    summary = summarize(graph)
    hw = 224 * 224
    assert summary.macs == hw * 16 * 16 + hw * 16 * 9 + hw * 16 * 16 and summary.complete
    assert summary.params == (256 + 16) + (144 + 16) + (256 + 16)
    assert nodes["out"].output_shape == (32, 224, 224)


# --- ConvNeXt: LayerNormalization, dense over channels, exact GELU, layer scale --------

def _convnext_block(in_shape):
    """Stem 4×4/4 conv 3→8; block: 7×7 depthwise, permute to NHWC, LayerNorm (opset 17),
    Linear 8→32, exact GELU, Linear 32→8, permute back, ``layer_scale · x`` (γ of shape
    (8, 1, 1)), residual add — torchvision's ``CNBlock`` as exported."""
    nodes = [conv("stem", "x", "s", "ws", "bs", kernel_shape=[4, 4], strides=[4, 4]),
             conv("dw", "s", "d", "wd", "bd", kernel_shape=[7, 7], pads=[3, 3, 3, 3],
                  group=8),
             helper.make_node("Transpose", ["d"], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
             helper.make_node("LayerNormalization", ["nhwc", "ln_g", "ln_b"], ["ln"],
                              name="norm", axis=-1, epsilon=1e-6),
             helper.make_node("MatMul", ["ln", "w_up"], ["up0"], name="pwconv1"),
             helper.make_node("Add", ["b_up", "up0"], ["up"], name="pwconv1_bias"),
             const("sqrt2", 1.4142135381698608, np.float32),
             helper.make_node("Div", ["up", "sqrt2"], ["scaled"], name="gelu_div"),
             helper.make_node("Erf", ["scaled"], ["erf"], name="gelu_erf"),
             const("one", 1.0, np.float32),
             helper.make_node("Add", ["erf", "one"], ["erf1"], name="gelu_add"),
             helper.make_node("Mul", ["up", "erf1"], ["prod"], name="gelu_mul"),
             const("half", 0.5, np.float32),
             helper.make_node("Mul", ["prod", "half"], ["act"], name="gelu_half"),
             helper.make_node("MatMul", ["act", "w_down"], ["down0"], name="pwconv2"),
             helper.make_node("Add", ["b_down", "down0"], ["down"], name="pwconv2_bias"),
             helper.make_node("Transpose", ["down"], ["nchw"], name="to_nchw",
                              perm=[0, 3, 1, 2]),
             helper.make_node("Mul", ["gamma", "nchw"], ["scaled_out"], name="layer_scale"),
             helper.make_node("Add", ["scaled_out", "s"], ["y"], name="residual")]
    inits = [weights("ws", 8, 3, 4, 4), weights("bs", 8), weights("wd", 8, 1, 7, 7),
             weights("bd", 8), weights("ln_g", 8), weights("ln_b", 8), weights("w_up", 8, 32),
             weights("b_up", 32), weights("w_down", 32, 8), weights("b_down", 8),
             weights("gamma", 8, 1, 1)]
    return model(nodes, inits, in_shape)


def test_convnext_block_reads_as_its_layers():
    graph = load_onnx_graph(_convnext_block(["N", 3, "H", "W"]))
    nodes = {n.name: n for n in graph}
    assert ops_of(graph) == [OpKind.INPUT, OpKind.CONV, OpKind.DEPTHWISE_CONV, OpKind.NORM,
                             OpKind.DENSE, OpKind.ACTIVATION, OpKind.DENSE, "layer_scale",
                             OpKind.ADD]
    norm = nodes["norm"]
    assert norm.attrs["kind"] == "layer" and norm.attrs["norm_size"] == 8
    assert norm.output_shape == (8, 56, 56) and norm.data_format == "channels_first"
    assert nodes["gelu_erf"].attrs["activation"] == "gelu"
    assert nodes["pwconv1"].output_shape == (32, 56, 56) and nodes["pwconv1"].attrs["use_bias"]
    assert nodes["layer_scale"].attrs["channels"] == 8
    summary = summarize(graph)
    positions = 56 * 56
    assert summary.macs == (positions * 8 * 3 * 16 + positions * 8 * 49
                            + positions * 8 * 32 * 2)
    assert summary.params == (384 + 8) + (392 + 8) + 16 + (256 + 32) + (256 + 8) + 8
    assert summary.complete and summary.param_mismatches == []
    assert lint_graph(graph, select=["bias-before-batchnorm"]).findings == []


def test_layer_scale_is_not_a_batch_norm_but_scale_and_shift_are():
    """``conv(+bias) · γ`` is a layer scale (C parameters; the bias is not cancelled);
    ``conv(+bias) · s + b`` is a folded batch norm (2·C numbers stored, Keras' 4·C
    convention in the cost model), and the bias before it is redundant."""
    scale_only = [conv("conv", "x", "c", "w", "b", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                  helper.make_node("Mul", ["c", "gamma"], ["s"], name="scale"),
                  helper.make_node("Add", ["s", "x"], ["y"], name="residual")]
    inits = [weights("w", 8, 8, 3, 3), weights("b", 8), weights("gamma", 8, 1, 1),
             weights("beta", 8, 1, 1)]
    graph = load_onnx_graph(model(scale_only, inits, [1, 8, 16, 16]))
    assert ops_of(graph) == [OpKind.INPUT, OpKind.CONV, "layer_scale", OpKind.ADD]
    assert summarize(graph).params == 8 * 8 * 9 + 8 + 8
    assert lint_graph(graph, select=["bias-before-batchnorm"]).findings == []

    folded = scale_only[:2] + [helper.make_node("Add", ["s", "beta"], ["y"], name="shift")]
    graph = load_onnx_graph(model(folded, inits, [1, 8, 16, 16]))
    assert ops_of(graph) == [OpKind.INPUT, OpKind.CONV, OpKind.BATCHNORM]
    bn = graph.nodes["scale"]
    assert bn.attrs["folded"] and bn.attrs["center"] and bn.attrs["scale"] and bn.params == 16
    assert summarize(graph).params == 8 * 8 * 9 + 8 + 4 * 8
    (finding,) = lint_graph(graph, select=["bias-before-batchnorm"]).findings
    assert finding.layer == "conv"


# --- constants that are not parameters -------------------------------------------------

def test_integer_constants_scalars_and_stride_tables_are_not_parameters():
    """A detection head's decode: 1×1 conv 8→4, flattened to (4, 16) by a shape subgraph,
    times a stride table (8 or 16 per anchor) plus anchor centres (i + ½), then an op the
    linter does not know (a custom-domain op with 12 float weights, an int64 index list
    and a scalar).  Only the conv's and the custom op's float weights are parameters."""
    size_nodes, (n, c) = dims_of("c", "s", [0, 1])
    strides = np.repeat([8.0, 16.0], 8).reshape(1, 16).astype(np.float32)
    anchors = (np.arange(16) % 4 + 0.5).reshape(1, 16).astype(np.float32)
    nodes = [conv("head", "x", "c", "w", kernel_shape=[1, 1]),
             *size_nodes,
             const("minus1", [-1]),
             helper.make_node("Concat", [n, c, "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["c", "target"], ["flat"], name="flatten"),
             helper.make_node("Mul", ["flat", "strides"], ["scaled"], name="times_stride"),
             helper.make_node("Add", ["scaled", "anchors"], ["boxes"], name="plus_anchor"),
             helper.make_node("Decode", ["boxes", "wc", "idx", "eps"], ["y"], name="decode",
                              domain="custom")]
    inits = [weights("w", 4, 8, 1, 1), numpy_helper.from_array(strides, "strides"),
             numpy_helper.from_array(anchors, "anchors"), weights("wc", 12),
             numpy_helper.from_array(np.arange(5, dtype=np.int64), "idx"),
             numpy_helper.from_array(np.array(1e-3, np.float32), "eps")]
    proto = model(nodes, inits, [1, 8, 4, 4])
    proto.opset_import.append(helper.make_opsetid("custom", 1))
    graph = load_onnx_graph(proto)
    nodes_by_name = {n.name: n for n in graph}
    assert nodes_by_name["times_stride"].params == 0
    assert nodes_by_name["plus_anchor"].params == 0
    assert nodes_by_name["decode"].op == OpKind.OPAQUE and nodes_by_name["decode"].params == 12
    assert summarize(graph).params == 4 * 8 + 12
    learned = load_onnx_graph(model(
        nodes[:-1] + [helper.make_node("Add", ["boxes", "pos"], ["y"], name="position")],
        inits[:3] + [weights("pos", 1, 16)], [1, 8, 4, 4]))
    assert learned.nodes["position"].params == 16     # a learned table still counts


def test_resize_scales_are_not_parameters():
    nodes = [conv("conv", "x", "c", "w", kernel_shape=[1, 1]),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], name="up", mode="linear")]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph = load_onnx_graph(model(nodes, [weights("w", 4, 8, 1, 1), scales], [1, 8, 7, 7]))
    assert graph.nodes["up"].op == OpKind.UPSAMPLE
    assert summarize(graph).params == 32


# --- reductions ------------------------------------------------------------------------

def test_resnest_radix_sum_is_a_reduce_node():
    """1×1 conv 16→16, split into radix 2 × 8 channels, summed over the radix
    (``ReduceSum``, opset 13 axes input), pooled, then a 1×1 conv 8→4."""
    nodes = [conv("conv", "x", "c", "w", kernel_shape=[1, 1]),
             const("split", [1, 2, 8, 8, 8]),
             helper.make_node("Reshape", ["c", "split"], ["r"], name="radix_view"),
             const("radix_axis", [1]),
             helper.make_node("ReduceSum", ["r", "radix_axis"], ["s"], name="radix_sum",
                              keepdims=0),
             helper.make_node("ReduceMean", ["s"], ["g"], name="gap", axes=[2, 3], keepdims=1),
             conv("fc", "g", "y", "w2", kernel_shape=[1, 1])]
    graph = load_onnx_graph(model(nodes, [weights("w", 16, 16, 1, 1), weights("w2", 4, 8, 1, 1)],
                                  [1, 16, 8, 8], opset=13))
    nodes_by_name = {n.name: n for n in graph}
    radix = nodes_by_name["radix_sum"]
    assert radix.op == "reduce" and radix.attrs["axes"] == (0,)
    assert radix.attrs["reduction"] == "sum" and radix.output_shape == (8, 8, 8)
    assert nodes_by_name["gap"].op == OpKind.GLOBAL_POOL
    assert nodes_by_name["fc"].output_shape == (4, 1, 1)
    summary = summarize(graph)
    assert summary.complete and summary.macs == 64 * 16 * 16 + 4 * 8
    assert summary.node("radix_sum").cost.flops == 2 * 8 * 8 * 8


# --- pooling lengths, normalisations ----------------------------------------------------

def test_pool_lengths_with_pads_and_ceil_mode():
    """PyTorch's ``MaxPool2d`` output lengths."""
    assert pool_length(112, 3, 2, (1, 1)) == 56                # ResNet's stem pool
    assert pool_length(112, 3, 2, "valid", ceil_mode=True) == 56   # SqueezeNet's
    assert pool_length(112, 3, 2, "valid") == 55
    assert pool_length(5, 2, 2, (1, 1), ceil_mode=True) == 3   # last window dropped
    nodes = [helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[3, 3],
                              strides=[2, 2], ceil_mode=1)]
    graph = load_onnx_graph(model(nodes, [], ["N", 4, "H", "W"]))
    assert graph.nodes["pool"].output_shape == (4, 112, 112)


WINDOWS = [  # (op, attributes, input length): the windows whose lengths are easy to get wrong
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, 112),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, 112),
    ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1],
                 "ceil_mode": 1}, 5),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [2, 2],
                 "pads": [2, 1, 2, 1]}, 15),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [3, 3], "pads": [0, 1, 0, 1],
                     "ceil_mode": 1}, 16),
    ("Conv", {"kernel_shape": [4, 4], "strides": [3, 3], "auto_pad": "SAME_LOWER"}, 16),
    ("Conv", {"kernel_shape": [3, 3], "strides": [2, 2], "dilations": [2, 2],
              "pads": [2, 0, 1, 1]}, 15),
    ("ConvTranspose", {"kernel_shape": [4, 4], "strides": [2, 2], "pads": [1, 1, 1, 1]}, 8),
    ("ConvTranspose", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                       "output_padding": [1, 1]}, 8),
    ("ConvTranspose", {"kernel_shape": [2, 2], "strides": [3, 3]}, 7),
    ("ConvTranspose", {"kernel_shape": [1, 1], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
     7),
    ("ConvTranspose", {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
     7),
]


@pytest.mark.parametrize("op,attrs,length", WINDOWS)
def test_window_lengths_match_onnxruntime(op, attrs, length):
    """Our shape rules decide the output shapes, so they must be ONNX's: each length is
    checked against onnxruntime running the node."""
    ort = pytest.importorskip("onnxruntime")
    inits = {"Conv": [weights("w", 4, 3, *attrs["kernel_shape"])],
             "ConvTranspose": [weights("w", 3, 4, *attrs["kernel_shape"])]}.get(op, [])
    node = helper.make_node(op, ["x"] + ["w"] * bool(inits), ["y"], name="window", **attrs)
    proto = model([node], inits, [1, 3, length, length])
    x = np.ones((1, 3, length, length), np.float32)
    expected = ort.InferenceSession(proto.SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert load_onnx_graph(proto).nodes["window"].output_shape == expected.shape[1:]


def test_group_and_instance_norm():
    nodes = [helper.make_node("InstanceNormalization", ["x", "g1", "b1"], ["i"], name="inorm"),
             helper.make_node("GroupNormalization", ["i", "g2", "b2"], ["y"], name="gnorm",
                              num_groups=2)]
    inits = [weights(n, 8) for n in ("g1", "b1", "g2", "b2")]
    graph = load_onnx_graph(model(nodes, inits, [1, 8, 4, 4], opset=21))
    assert [(n.op, n.attrs.get("groups")) for n in graph][1:] == [(OpKind.NORM, 8),
                                                                  (OpKind.NORM, 2)]
    assert summarize(graph).params == 32


# --- bad input -------------------------------------------------------------------------

def _with_attr(proto, name, value):
    """``proto`` with its conv's attribute ``name`` set to ``value``."""
    node = proto.graph.node[0]
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(name, value)])
    return proto


def _bad_cases():
    base = lambda: _small_cnn([1, 3, 16, 16])  # noqa: E731
    external = base()
    external.graph.node.insert(3, const("k", [1, -1]))
    external.graph.node[3].attribute[0].t.data_location = TensorProto.EXTERNAL
    external.graph.node[4].CopyFrom(helper.make_node("Reshape", ["g", "k"], ["f"]))
    zero = base()
    zero.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 0
    cycle = base()
    cycle.graph.node[0].input[0] = "r"
    return [("constant with external data", external), ("zero input dim", zero),
            ("zero strides", _with_attr(base(), "strides", [0, 0])),
            ("short dilations", _with_attr(base(), "dilations", [1])),
            ("negative pads", _with_attr(base(), "pads", [-1, 0, 0, 0])), ("cycle", cycle)]


@pytest.mark.parametrize("label,proto", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_onnx_is_a_model_file_error(tmp_path, label, proto):
    """Refused with a ``ModelFileError`` (never onnx's ``ValidationError``, a
    ``ZeroDivisionError`` or a rule's crash); the external constant is never read."""
    path = tmp_path / f"{label.replace(' ', '_')}.onnx"
    path.write_bytes(proto.SerializeToString())
    if label == "constant with external data":
        report = lint(str(path), select=["ALL"])     # the reshape's target stays unknown
        assert [n.source_class for n in report.graph if n.op == OpKind.OPAQUE] == ["Reshape"]
        return
    with pytest.raises(ModelFileError):
        lint(str(path), select=["ALL"])


@pytest.mark.parametrize("dims", [[0], [8], [8, 4, 1]])
def test_a_gemm_weight_that_is_not_a_matrix_is_named(tmp_path, dims):
    """Gemm's B must be 2-D; an initializer of another rank (the fuzz campaign: an empty
    ``[0]``) is refused naming the node and the weight, not as "cannot analyse the ONNX
    graph: ValueError: not enough values to unpack"."""
    weight = numpy_helper.from_array(np.ones(dims, np.float32), "fc_w")
    proto = model([helper.make_node("Gemm", ["x", "fc_w"], ["y"], name="fc")], [weight],
                  [1, 8])
    path = tmp_path / "gemm.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelFileError) as info:
        lint(str(path), select=["ALL"])
    assert f"node 'fc' (Gemm): its weight 'fc_w' has shape {dims}, not a matrix" \
        in str(info.value)


@pytest.mark.parametrize("channels, group", [(10 ** 12, 1), (4, 1), (3, 0)])
def test_a_conv_whose_input_channels_do_not_match_its_weight_is_named(tmp_path, channels,
                                                                      group):
    """A conv's weight fixes its input channels (``W.dims[1] × group``); an input that
    disagrees (the fuzz campaign: a declared 10¹² channels), or group 0, is refused when
    the conv is read, not by a rule's crash ("rule CNK108 ... failed: ShapeError")."""
    proto = model([conv("c", "x", "y", "w", group=group)], [weights("w", 8, 3, 3, 3)],
                  [1, channels, 12, 12])
    path = tmp_path / "conv.onnx"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelFileError) as info:
        lint(str(path), select=["ALL"])
    assert f"node 'c' (Conv): its weight 'w' of shape [8, 3, 3, 3] in {group} group(s) " \
        f"reads {3 * group} channels, but its input has {channels}" in str(info.value)
