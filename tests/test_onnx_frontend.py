"""The ONNX frontend on hand-built ONNX graphs: op mapping, layouts, costs, bad input.

Every expected number here is worked out by hand from the graph's definition (no
TensorFlow needed).  The comparisons with the Keras frontend on tf2onnx exports are in
``test_onnx_keras_parity.py``.
"""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from keras_cnnkit.analysis.cost import node_cost, summarize
from keras_cnnkit.analysis.frontends.onnx_frontend import load_onnx_graph, looks_like_onnx
from keras_cnnkit.analysis.ir import OpKind
from keras_cnnkit.errors import ModelFileError
from keras_cnnkit.lint.api import lint_graph


def _init(name, *shape, value=0.5):
    return numpy_helper.from_array(np.full(shape, value, dtype=np.float32), name)


def _ints(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _model(nodes, inits, in_shape, out_shape, opset=17, name="g", inputs=None):
    graph = helper.make_graph(
        nodes, name,
        inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _torch_style():
    """NCHW, as PyTorch exports it: conv-bn-relu, pool, depthwise + ReLU6, a dilated conv
    and a 1×1 branch added, GAP, flatten, Gemm, softmax."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("BatchNormalization", ["c1", "s", "bb", "m", "v"], ["n1"], name="bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "wd"], ["d1"], name="dw", group=16, pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Clip", ["d1", "lo", "hi"], ["r2"], name="relu6"),
        helper.make_node("Conv", ["r2", "wdil"], ["c2"], name="dilated", dilations=[2, 2],
                         pads=[2, 2, 2, 2]),
        helper.make_node("Conv", ["r2", "wpw"], ["c3"], name="branch"),
        helper.make_node("Add", ["c2", "c3"], ["a1"], name="add"),
        helper.make_node("GlobalAveragePool", ["a1"], ["g1"], name="gap"),
        helper.make_node("Flatten", ["g1"], ["f1"], name="flatten"),
        helper.make_node("Gemm", ["f1", "wfc", "bfc"], ["l1"], name="fc", transB=1),
        helper.make_node("Softmax", ["l1"], ["y"], name="softmax", axis=1),
    ]
    inits = [_init("w1", 16, 3, 3, 3), _init("b1", 16), _init("s", 16), _init("bb", 16),
             _init("m", 16), _init("v", 16), _init("wd", 16, 1, 3, 3),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi"),
             _init("wdil", 32, 16, 3, 3), _init("wpw", 32, 16, 1, 1), _init("wfc", 10, 32),
             _init("bfc", 10)]
    return _model(nodes, inits, ["N", 3, 32, 32], ["N", 10])


def test_torch_style_nchw_ops_attrs_shapes():
    graph = load_onnx_graph(_torch_style())
    assert graph.frontend == "onnx"
    ops = {n.name: n for n in graph}
    assert [n.op for n in graph] == [
        OpKind.INPUT, OpKind.CONV, OpKind.BATCHNORM, OpKind.ACTIVATION, OpKind.POOL,
        OpKind.DEPTHWISE_CONV, OpKind.ACTIVATION, OpKind.CONV, OpKind.CONV, OpKind.ADD,
        OpKind.GLOBAL_POOL, OpKind.DENSE, OpKind.ACTIVATION]
    conv1 = ops["conv1"]
    assert conv1.data_format == "channels_first"
    assert conv1.input_shapes == [(3, 32, 32)] and conv1.output_shape == (16, 32, 32)
    assert conv1.attrs["padding"] == "same" and conv1.attrs["use_bias"]
    assert conv1.layer == "conv1" and conv1.source_class == "Conv"
    assert ops["bn1"].attrs["channels"] == 16
    assert ops["relu6"].attrs["activation"] == "relu6"
    dw = ops["dw"]
    assert dw.attrs["groups"] == 16 == dw.attrs["in_channels"]
    assert dw.attrs["depth_multiplier"] == 1 and dw.output_shape == (16, 8, 8)
    dilated = ops["dilated"]
    assert dilated.attrs["dilation"] == (2, 2) and dilated.attrs["padding"] == "same"
    # GAP then Flatten: Keras' GlobalAveragePooling2D, the flatten is only a view.
    assert ops["gap"].output_shape == (32,) and not ops["gap"].attrs["keepdims"]
    assert ops["fc"].inputs == ["gap"]
    assert ops["fc"].attrs["in_features"] == 32 and ops["fc"].attrs["units"] == 10
    assert graph.outputs == ["softmax"]
    for node in graph:   # a node's input shapes are its producers' output shapes
        for src, shape in zip(node.inputs, node.input_shapes):
            assert graph[src].output_shape == shape, node.name


def test_torch_style_costs_by_hand():
    summary = summarize(load_onnx_graph(_torch_style()))
    params = {"conv1": 16 * 3 * 9 + 16, "bn1": 4 * 16, "dw": 16 * 9, "dilated": 32 * 16 * 9,
              "branch": 32 * 16, "fc": 32 * 10 + 10}
    macs = {"conv1": 32 * 32 * 16 * 27, "dw": 8 * 8 * 16 * 9, "dilated": 8 * 8 * 32 * 144,
            "branch": 8 * 8 * 32 * 16, "fc": 320}
    for name, value in params.items():
        assert summary.node(name).cost.params == value
        assert summary.node(name).observed_params == value
    assert summary.params == sum(params.values()) == 6106
    assert summary.macs == sum(macs.values()) == 779_584
    assert summary.unknown == [] and summary.param_mismatches == []


def _nhwc_export_style():
    """What tf2onnx writes for Keras' Conv2D → Flatten → Dense: transposes around the
    conv, a computed reshape target, MatMul + Add."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t1"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t1", "w", "b"], ["c1"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Transpose", ["r1"], ["t2"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Shape", ["t2"], ["sh"], name="shape"),
        helper.make_node("Slice", ["sh", "zero", "one"], ["batch"], name="batch"),
        helper.make_node("Concat", ["batch", "minus1"], ["target"], name="target", axis=0),
        helper.make_node("Reshape", ["t2", "target"], ["f1"], name="flatten"),
        helper.make_node("MatMul", ["f1", "wd"], ["m1"], name="dense"),
        helper.make_node("Add", ["m1", "bd"], ["y"], name="dense_bias"),
    ]
    inits = [_init("w", 8, 3, 3, 3), _init("b", 8), _ints("zero", [0]), _ints("one", [1]),
             _ints("minus1", [-1]), _init("wd", 30 * 30 * 8, 5), _init("bd", 5)]
    return _model(nodes, inits, ["N", 32, 32, 3], ["N", 5])


def test_nhwc_export_reads_channels_last_like_keras():
    graph = load_onnx_graph(_nhwc_export_style())
    assert [n.op for n in graph] == [OpKind.INPUT, OpKind.CONV, OpKind.ACTIVATION,
                                     OpKind.FLATTEN, OpKind.DENSE]
    conv = graph["conv"]
    assert conv.data_format == "channels_last"
    assert conv.input_shapes == [(32, 32, 3)] and conv.output_shape == (30, 30, 8)
    flat = graph["flatten"]
    assert flat.input_shapes == [(30, 30, 8)] and flat.output_shape == (7200,)
    dense = graph["dense"]
    assert dense.attrs["use_bias"] and dense.params == 7200 * 5 + 5
    assert graph.outputs == ["dense"]
    findings = lint_graph(graph, select=["flatten-dense-head"]).findings
    assert len(findings) == 1 and findings[0].layer == "dense"
    # 7200·5 + 5 → 8·5 + 5 after global average pooling
    assert (findings[0].params_before, findings[0].params_after) == (36_005, 45)


def test_conv1d_as_unsqueezed_2d_conv_is_rank_1():
    """tf2onnx's Conv1D: Unsqueeze, 1×k Conv, Squeeze, then the bias as an Add."""
    nodes = [
        helper.make_node("Unsqueeze", ["x", "ax2"], ["u"], name="expand"),
        helper.make_node("Conv", ["u", "w"], ["c"], name="conv1d", kernel_shape=[1, 3],
                         pads=[0, 1, 0, 1]),
        helper.make_node("Squeeze", ["c", "ax2"], ["s"], name="squeeze"),
        helper.make_node("Add", ["s", "b"], ["y"], name="bias"),
    ]
    inits = [_ints("ax2", [2]), _init("w", 48, 24, 1, 3), _init("b", 1, 48, 1)]
    graph = load_onnx_graph(_model(nodes, inits, ["N", 24, 150], ["N", 48, 150]))
    conv = graph["conv1d"]
    assert [n.op for n in graph] == [OpKind.INPUT, OpKind.CONV]
    assert conv.attrs["rank"] == 1 and conv.attrs["kernel"] == (3,)
    assert conv.attrs["padding"] == "same" and conv.attrs["use_bias"]
    assert conv.input_shapes == [(24, 150)] and conv.output_shape == (48, 150)
    assert summarize(graph).params == 24 * 48 * 3 + 48 == 3504
    finding = lint_graph(graph, select=["missing-bottleneck"]).findings[0]
    # seed 000's Char-CNN Conv1D 24→48: 3,504 → 2,076 with a 1×1 reduction to 12
    assert (finding.params_before, finding.params_after) == (3504, 2076)


def test_folded_batchnorm_and_split_group_conv():
    """A per-channel Mul + Add after a conv is a BN in inference form; Split → convs →
    Concat is one grouped conv."""
    nodes = [
        helper.make_node("Split", ["x", "halves"], ["x0", "x1"], name="split", axis=1),
        helper.make_node("Conv", ["x0", "w0"], ["c0"], name="g0", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["x1", "w1"], ["c1"], name="g1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["c0", "c1"], ["cat"], name="group_conv", axis=1),
        helper.make_node("Add", ["cat", "bias"], ["cb"], name="group_bias"),
        helper.make_node("Mul", ["cb", "scale"], ["bm"], name="bn"),
        helper.make_node("Add", ["bm", "shift"], ["y"], name="bn_shift"),
    ]
    inits = [_ints("halves", [8, 8]), _init("w0", 16, 8, 3, 3), _init("w1", 16, 8, 3, 3),
             _init("bias", 32, 1, 1), _init("scale", 32, 1, 1), _init("shift", 32, 1, 1)]
    graph = load_onnx_graph(_model(nodes, inits, ["N", 16, 10, 10], ["N", 32, 10, 10]))
    assert [n.op for n in graph] == [OpKind.INPUT, OpKind.CONV, OpKind.BATCHNORM]
    conv = graph["group_conv"]
    assert conv.attrs["groups"] == 2 and conv.attrs["in_channels"] == 16
    assert conv.attrs["filters"] == 32 and conv.attrs["use_bias"]
    assert conv.params == 2 * 16 * 8 * 9 + 32
    bn = graph["bn"]
    assert bn.attrs["folded"] and bn.attrs["center"] and bn.attrs["scale"]
    assert bn.params == 64          # stored: scale and shift
    summary = summarize(graph)
    assert summary.node("bn").cost.params == 128   # Keras' convention: γ, β, mean, var
    assert summary.param_mismatches == [{"layer": "bn", "formula": 128, "observed": 64}]
    symbols = [f.symbol for f in lint_graph(graph).findings]
    assert "bias-before-batchnorm" in symbols


def test_unknown_op_is_listed_never_zero():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3]),
        helper.make_node("LRN", ["c"], ["l"], name="lrn", size=5),
        helper.make_node("Mystery", ["l", "k"], ["y"], name="mystery", domain="com.example"),
    ]
    model = _model(nodes, [_init("w", 8, 3, 3, 3), _init("k", 7)], ["N", 3, 16, 16],
                   ["N", 8, 14, 14])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    graph = load_onnx_graph(model)
    assert graph["lrn"].op == OpKind.OPAQUE and graph["mystery"].op == OpKind.OPAQUE
    assert graph["lrn"].output_shape == (8, 14, 14)   # shape known, cost not
    assert graph["mystery"].params == 7                # its constant input
    for name in ("lrn", "mystery"):
        cost = node_cost(graph[name])
        assert not cost.known and cost.flops is None
    summary = summarize(graph)
    assert summary.unknown == ["lrn", "mystery"]
    assert summary.params == 8 * 27 + 7
    assert summary.macs == 14 * 14 * 8 * 27           # the known part only
    opaque = lint_graph(graph, select=["opaque-layer"]).findings
    assert sorted(f.layer for f in opaque) == ["lrn", "mystery"]


def test_input_shape_fills_symbolic_dims():
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])]
    model = _model(nodes, [_init("w", 4, 3, 3, 3)], ["N", 3, "H", "W"], ["N", 4, "H", "W"])
    default = load_onnx_graph(model)    # unknown dims default to 224, as for Keras files
    assert summarize(default).unknown == [] and summarize(default).params == 108
    assert summarize(default).macs == 224 * 224 * 4 * 27
    assert default.notes == ["input 'x' (N, 3, H, W): unknown dims taken as 224 (the "
                             "default), linted as 1x3x224x224; --input-shape "
                             "(input_shape=...) sets them"]
    known = summarize(load_onnx_graph(model, input_shape=(3, 20, 10)))
    assert known.unknown == [] and known.macs == 20 * 10 * 4 * 27
    # one value per unknown dimension, as cnnkit-lint's --input-shape allows
    assert summarize(load_onnx_graph(model, input_shape=(20, 10))).macs == known.macs
    assert summarize(load_onnx_graph(model, input_shape={"x": (3, 20, 10)})).macs == known.macs
    with pytest.raises(ModelFileError, match="does not fit"):
        load_onnx_graph(model, input_shape=(20,))


def test_file_round_trip_and_bad_files(tmp_path):
    good = tmp_path / "m.onnx"
    onnx.save(_torch_style(), str(good))
    data = good.read_bytes()
    assert summarize(load_onnx_graph(good)).params == 6106
    assert load_onnx_graph(str(good)).source == str(good)
    cases = {
        "missing.onnx": None,
        "empty.onnx": b"",
        "random.onnx": np.random.default_rng(0).bytes(4096),
        "truncated.onnx": data[: len(data) // 3],
        "text.onnx": b"not an onnx model at all\n" * 10,
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(ModelFileError) as info:
            load_onnx_graph(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "\n" not in message, message
        if content is not None:
            assert path.read_bytes() == content        # input untouched
    with pytest.raises(ModelFileError, match="not a file"):
        load_onnx_graph(tmp_path)
    assert looks_like_onnx(data[:16])
    for content in (b"\x89HDF\r\n\x1a\n", b"PK\x03\x04", b'{"class_name": "x"}', b"",
                    cases["random.onnx"][:16], cases["text.onnx"][:16]):
        assert not looks_like_onnx(content), content


def _shuffle_net(shuffle: bool):
    """Two group convs, with PyTorch's channel shuffle between them or not."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], name="gconv1", group=4,
                              kernel_shape=[1, 1])]
    inits = [_init("w1", 16, 4, 1, 1), _init("w2", 16, 4, 1, 1)]
    last = "c1"
    if shuffle:
        nodes += [
            helper.make_node("Reshape", ["c1", "split"], ["r1"], name="view"),
            helper.make_node("Transpose", ["r1"], ["t1"], name="swap", perm=[0, 2, 1, 3, 4]),
            helper.make_node("Reshape", ["t1", "merge"], ["r2"], name="view_back"),
        ]
        inits += [_ints("split", [-1, 4, 4, 8, 8]), _ints("merge", [-1, 16, 8, 8])]
        last = "r2"
    nodes.append(helper.make_node("Conv", [last, "w2"], ["y"], name="gconv2", group=4,
                                  kernel_shape=[1, 1]))
    return _model(nodes, inits, ["N", 16, 8, 8], ["N", 16, 8, 8])


def test_channel_shuffle_is_recognised():
    graph = load_onnx_graph(_shuffle_net(True))
    assert [n.op for n in graph] == [OpKind.INPUT, OpKind.CONV, OpKind.CHANNEL_SHUFFLE,
                                     OpKind.CONV]
    shuffle = graph["view"]
    assert shuffle.attrs["groups"] == 4 and shuffle.output_shape == (16, 8, 8)
    assert graph["gconv2"].inputs == ["view"]
    rule = ["group-conv-without-shuffle"]
    assert lint_graph(graph, select=rule).findings == []
    unshuffled = lint_graph(load_onnx_graph(_shuffle_net(False)), select=rule).findings
    assert [f.layer for f in unshuffled] == ["gconv2"]


def test_external_data_is_never_read(tmp_path):
    """Weights stored as external data: their dimensions suffice, the files they name
    (here: missing, and one outside the model's folder) are never opened."""
    model = _torch_style()
    for init in model.graph.initializer:
        if init.name in ("w1", "wdil"):
            init.ClearField("raw_data")
            init.ClearField("float_data")
            init.data_location = TensorProto.EXTERNAL
            entry = init.external_data.add()
            entry.key, entry.value = "location", ("missing.bin" if init.name == "w1"
                                                  else "../../../etc/passwd")
    path = tmp_path / "external.onnx"
    path.write_bytes(model.SerializeToString())
    summary = summarize(load_onnx_graph(path))
    assert summary.params == 6106 and summary.macs == 779_584
