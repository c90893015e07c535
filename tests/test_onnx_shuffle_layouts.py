"""Channel shuffles and channel splits in ONNX, whatever the layout around them.

The ONNX frontend finds a channel shuffle (Reshape splitting the channels into
``(g, C/g)`` → Transpose bringing ``C/g`` before ``g`` → Reshape merging them back) and
a channel split (``Split``, ``Slice``, ``Gather`` of consecutive channels) in physical
axes: in NCHW as PyTorch writes them, in NHWC as tf2onnx writes them, and between the
Transposes of ``cnnkit-export`` (NHWC at the edges, NCHW inside).  A Reshape →
Transpose → Reshape that permutes anything but the channels is no channel shuffle.

Every graph here is small and hand-made; each positive one is also run with
onnxruntime against a NumPy reference, so that what the test calls a channel shuffle is
one.
"""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from keras_cnnkit.analysis.cost import summarize
from keras_cnnkit.analysis.frontends.onnx_frontend import load_onnx_graph
from keras_cnnkit.analysis.ir import OpKind

RNG = np.random.default_rng(0)
C, H, W, G = 16, 8, 8, 2
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _weights(name, *shape):
    return numpy_helper.from_array(RNG.uniform(0.1, 0.9, shape).astype(np.float32), name)


def _ints(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _conv(name, x, out, c_in, c_out, inits):
    """A 1×1 conv ``c_in → c_out`` with bias; its weights go into ``inits``."""
    inits += [_weights(f"{name}_w", c_out, c_in, 1, 1), _weights(f"{name}_b", c_out)]
    return helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [out], name=name)


def _transpose(name, x, out, perm):
    return helper.make_node("Transpose", [x], [out], name=name, perm=perm)


def _reshape(name, x, out, shape, inits):
    inits.append(_ints(f"{name}_shape", shape))
    return helper.make_node("Reshape", [x, f"{name}_shape"], [out], name=name)


def _model(nodes, inits, in_shape):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(proto, x):
    import onnxruntime as ort
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _conv_np(proto, name, x):
    """The 1×1 conv ``name`` of ``proto`` on an NCHW array."""
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    w, b = inits[f"{name}_w"][:, :, 0, 0], inits[f"{name}_b"]
    return np.einsum("oc,nchw->nohw", w, x) + b[None, :, None, None]


def _shuffle_np(x, groups):
    """The channel shuffle of an NCHW array (ShuffleNet's definition)."""
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)


def _nodes(graph):
    return {n.name: n for n in graph}


def _ops(graph):
    return [n.op for n in graph]


# --- channel shuffle ------------------------------------------------------------------

def _shuffle_nchw(inits):
    """PyTorch's ``view(N, g, C/g, H, W) → transpose(1, 2) → view(N, C, H, W)``."""
    return [_reshape("split", "a", "r5", [1, G, C // G, H, W], inits),
            _transpose("swap", "r5", "t5", [0, 2, 1, 3, 4]),
            _reshape("merge", "t5", "s", [1, C, H, W], inits)]


def _shuffle_nchw_flat(inits):
    """The same with height and width flattened, as an export with dynamic spatial
    sizes writes it: ``(N, g, C/g, H·W) → swap → (N, C, H, W)``."""
    return [_reshape("split", "a", "r5", [0, G, C // G, -1], inits),
            _transpose("swap", "r5", "t5", [0, 2, 1, 3]),
            _reshape("merge", "t5", "s", [1, C, H, W], inits)]


def _shuffle_nchw_to_nhwc(inits):
    """The shuffle's transpose also moving the channels last (one Transpose for the
    swap and the layout change), then back to NCHW for the next conv."""
    return [_reshape("split", "a", "r5", [1, G, C // G, H, W], inits),
            _transpose("swap", "r5", "t5", [0, 3, 4, 2, 1]),
            _reshape("merge", "t5", "s_nhwc", [1, H, W, C], inits),
            _transpose("back", "s_nhwc", "s", TO_NCHW)]


def _shuffle_nhwc(inits):
    """NHWC between transposes: ``(N, H, W, g, C/g) → swap the last two → (N, H, W,
    C)``, as tf2onnx writes a Keras ``ChannelShuffle``."""
    return [_transpose("to_nhwc", "a", "a_nhwc", TO_NHWC),
            _reshape("split", "a_nhwc", "r5", [1, H, W, G, C // G], inits),
            _transpose("swap", "r5", "t5", [0, 1, 2, 4, 3]),
            _reshape("merge", "t5", "s_nhwc", [1, H, W, C], inits),
            _transpose("to_nchw", "s_nhwc", "s", TO_NCHW)]


def _shuffle_model(body, nhwc_edges):
    """conv ``pre`` (1×1, C → C) → ``body`` (a → s) → conv ``post`` (1×1, C → C); with
    ``nhwc_edges`` the graph's input and output are NHWC (``cnnkit-export``'s edges)."""
    inits = []
    nodes = []
    source = "x"
    if nhwc_edges:
        nodes.append(_transpose("in_t", "x", "x_nchw", TO_NCHW))
        source = "x_nchw"
    nodes.append(_conv("pre", source, "a", C, C, inits))
    nodes += body(inits)
    nodes.append(_conv("post", "s", "p" if nhwc_edges else "y", C, C, inits))
    if nhwc_edges:
        nodes.append(_transpose("out_t", "p", "y", TO_NHWC))
    return _model(nodes, inits, [1, H, W, C] if nhwc_edges else [1, C, H, W])


SHUFFLES = {"nchw": _shuffle_nchw, "nchw_flat": _shuffle_nchw_flat,
            "nchw_to_nhwc": _shuffle_nchw_to_nhwc, "nhwc": _shuffle_nhwc}


@pytest.mark.parametrize("nhwc_edges", [False, True], ids=["nchw_edges", "nhwc_edges"])
@pytest.mark.parametrize("body", list(SHUFFLES), ids=list(SHUFFLES))
def test_channel_shuffle_is_read_in_every_layout(body, nhwc_edges):
    """One channel_shuffle node between the convs, in the layout of the graph's edges;
    the MACs and parameters are the two convs'."""
    proto = _shuffle_model(SHUFFLES[body], nhwc_edges)
    x = RNG.standard_normal((1, H, W, C) if nhwc_edges else (1, C, H, W)).astype(np.float32)
    nchw = x.transpose(TO_NCHW) if nhwc_edges else x
    want = _conv_np(proto, "post", _shuffle_np(_conv_np(proto, "pre", nchw), G))
    got = _run(proto, x)
    np.testing.assert_allclose(got.transpose(TO_NCHW) if nhwc_edges else got, want,
                               rtol=1e-4, atol=1e-4)

    graph = load_onnx_graph(proto)
    assert _ops(graph) == [OpKind.INPUT, OpKind.CONV, OpKind.CHANNEL_SHUFFLE, OpKind.CONV]
    nodes = _nodes(graph)
    shuffle = nodes["split"]
    fmt = "channels_last" if nhwc_edges else "channels_first"
    logical = (H, W, C) if nhwc_edges else (C, H, W)
    assert shuffle.attrs["groups"] == G and shuffle.data_format == fmt
    assert shuffle.input_shapes == [logical] and shuffle.output_shape == logical
    assert shuffle.source_class == "Reshape+Transpose+Reshape"
    assert nodes["post"].inputs == ["split"] and nodes["post"].input_shapes == [logical]
    assert nodes["post"].data_format == fmt
    summary = summarize(graph)
    # two 1×1 convs C → C over H·W, with bias; the shuffle costs nothing
    assert summary.complete and summary.macs == 2 * H * W * C * C
    assert summary.params == 2 * (C * C + C)


def _not_a_shuffle(inits, kind):
    """Reshape → Transpose → Reshape that permutes no channels: the width split into
    (2, W/2) and its parts swapped (``width``), or the channels split into (g, C/g)
    but height and width swapped instead (``spatial``)."""
    if kind == "width":
        return [_reshape("split", "a", "r5", [1, C, H, 2, W // 2], inits),
                _transpose("swap", "r5", "t5", [0, 1, 2, 4, 3]),
                _reshape("merge", "t5", "s", [1, C, H, W], inits)]
    return [_reshape("split", "a", "r5", [1, G, C // G, H, W], inits),
            _transpose("swap", "r5", "t5", [0, 1, 2, 4, 3]),
            _reshape("merge", "t5", "s", [1, C, W, H], inits)]


@pytest.mark.parametrize("kind", ["width", "spatial"])
def test_a_permutation_of_other_axes_is_no_channel_shuffle(kind):
    """It stays what the reader made of it before: two reshapes (their cost 0)."""
    proto = _shuffle_model(lambda inits: _not_a_shuffle(inits, kind), False)
    _run(proto, RNG.standard_normal((1, C, H, W)).astype(np.float32))   # a valid graph
    graph = load_onnx_graph(proto)
    assert _ops(graph) == [OpKind.INPUT, OpKind.CONV, OpKind.RESHAPE, OpKind.RESHAPE,
                           OpKind.CONV]
    nodes = _nodes(graph)
    mid = (C, H, 2, W // 2) if kind == "width" else (G, C // G, H, W)
    assert nodes["split"].attrs["target_shape"] == mid
    assert nodes["merge"].attrs["target_shape"] == (C, H, W)
    assert nodes["post"].input_shapes == [(C, H, W)]
    summary = summarize(graph)
    assert summary.complete and summary.macs == 2 * H * W * C * C
    assert summary.params == 2 * (C * C + C)


# --- channel split ----------------------------------------------------------------------

def _halves(kind, x, axis, inits):
    """``x`` cut into two channel halves ``h0``, ``h1`` along physical ``axis``."""
    if kind == "split":
        inits.append(_ints("halves", [C // 2, C // 2]))
        return [helper.make_node("Split", [x, "halves"], ["h0", "h1"], name="chunk",
                                 axis=axis)]
    nodes = []
    for i in range(2):
        if kind == "slice":
            inits += [_ints(f"start{i}", [i * C // 2]), _ints(f"end{i}", [(i + 1) * C // 2]),
                      _ints(f"axis{i}", [axis])]
            nodes.append(helper.make_node("Slice", [x, f"start{i}", f"end{i}", f"axis{i}"],
                                          [f"h{i}"], name=f"chunk{i}"))
        else:
            inits.append(_ints(f"index{i}", np.arange(i * C // 2, (i + 1) * C // 2)))
            nodes.append(helper.make_node("Gather", [x, f"index{i}"], [f"h{i}"],
                                          name=f"chunk{i}", axis=axis))
    return nodes


def _split_model(kind, layout):
    """conv ``pre`` (1×1, C → C) → two channel halves; conv ``branch`` (1×1, C/2 → C/2)
    on the second, concatenated after the first (ShuffleNet V2's basic unit, without
    its shuffle).  ``nhwc``: the halves are cut and joined in NHWC, between transposes."""
    inits = []
    nodes = [_conv("pre", "x", "a", C, C, inits)]
    if layout == "nhwc":
        nodes.append(_transpose("to_nhwc", "a", "a_nhwc", TO_NHWC))
        nodes += _halves(kind, "a_nhwc", 3, inits)
        nodes += [_transpose("h1_nchw", "h1", "h1_t", TO_NCHW),
                  _conv("branch", "h1_t", "z_t", C // 2, C // 2, inits),
                  _transpose("z_nhwc", "z_t", "z", TO_NHWC),
                  helper.make_node("Concat", ["h0", "z"], ["y_nhwc"], name="join", axis=3),
                  _transpose("to_nchw", "y_nhwc", "y", TO_NCHW)]
    else:
        nodes += _halves(kind, "a", 1, inits)
        nodes += [_conv("branch", "h1", "z", C // 2, C // 2, inits),
                  helper.make_node("Concat", ["h0", "z"], ["y"], name="join", axis=1)]
    return _model(nodes, inits, [1, C, H, W])


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("kind", ["split", "slice", "gather"])
def test_channel_halves_are_slices_in_every_layout(kind, layout):
    """Two slices of the channels, cut in NCHW or between transposes in NHWC."""
    proto = _split_model(kind, layout)
    x = RNG.standard_normal((1, C, H, W)).astype(np.float32)
    a = _conv_np(proto, "pre", x)
    want = np.concatenate([a[:, :C // 2], _conv_np(proto, "branch", a[:, C // 2:])], axis=1)
    np.testing.assert_allclose(_run(proto, x), want, rtol=1e-4, atol=1e-4)

    graph = load_onnx_graph(proto)
    assert OpKind.OPAQUE not in _ops(graph)
    slices = [n for n in graph if n.op == OpKind.SLICE]
    # the graph input is NCHW: the IR reads channels first, whatever the inner layout
    # (a transpose only changes how the physical axes map to the logical ones)
    assert [(s.attrs["axis"], s.attrs["start"], s.attrs["stop"]) for s in slices] == [
        (0, 0, C // 2), (0, C // 2, C)]
    assert all(s.input_shapes == [(C, H, W)] and s.output_shape == (C // 2, H, W)
               for s in slices)
    join = _nodes(graph)["join"]
    assert join.op == OpKind.CONCAT and join.output_shape == (C, H, W)
    summary = summarize(graph)
    assert summary.complete
    assert summary.macs == H * W * C * C + H * W * (C // 2) ** 2
    assert summary.params == (C * C + C) + ((C // 2) ** 2 + C // 2)


def test_a_channel_split_on_an_nhwc_input_reads_channels_last():
    """An NHWC graph input (channels last, as a Keras export has it): the halves are
    slices of the last logical axis."""
    inits = []
    nodes = [_transpose("in_t", "x", "x_nchw", TO_NCHW),
             _conv("pre", "x_nchw", "a", C, C, inits),
             _transpose("to_nhwc", "a", "a_nhwc", TO_NHWC),
             *_halves("split", "a_nhwc", 3, inits),
             helper.make_node("Concat", ["h1", "h0"], ["y"], name="join", axis=3)]
    graph = load_onnx_graph(_model(nodes, inits, [1, H, W, C]))
    slices = [n for n in graph if n.op == OpKind.SLICE]
    assert [(s.attrs["axis"], s.attrs["start"], s.attrs["stop"], s.data_format)
            for s in slices] == [(2, 0, C // 2, "channels_last"),
                                 (2, C // 2, C, "channels_last")]
    assert _nodes(graph)["join"].output_shape == (H, W, C)


def test_a_gather_that_is_no_run_stays_opaque():
    """Gathered channels out of order (a permutation) are no slice."""
    inits = [_ints("perm", [1, 0, 2, 3])]
    nodes = [_conv("pre", "x", "a", C, C, inits),
             helper.make_node("Gather", ["a", "perm"], ["y"], name="pick", axis=1)]
    graph = load_onnx_graph(_model(nodes, inits, [1, C, H, W]))
    assert _nodes(graph)["pick"].op == OpKind.OPAQUE
