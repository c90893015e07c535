"""``cnnkit-lint`` reads an IR-exported ``.onnx`` as it reads its ``.keras`` source, for
the models whose channels are split and shuffled (ShuffleNet V2, ShuffleNet v1 units).

Parity means: no opaque node in the ONNX graph, as many channel shuffles and channel
slices as in the Keras graph, the same MACs, the same parameters and the same finding
codes.  (``cnnkit-export`` writes a shuffle as NCHW Reshape → Transpose → Reshape between
the Transposes of its NHWC edges, and each channel split as a ``Slice``; the ONNX
frontend must find them in that layout: ``test_onnx_shuffle_layouts.py``.)
"""
# pylint: disable=missing-function-docstring
import collections

import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("onnx")

from keras_cnnkit.analysis.ir import OpKind  # noqa: E402  pylint: disable=C0413
from keras_cnnkit.export.direct import export_file  # noqa: E402  pylint: disable=C0413
from keras_cnnkit.lint.api import graph_of, lint  # noqa: E402  pylint: disable=C0413

KINDS = (OpKind.CHANNEL_SHUFFLE, OpKind.SLICE, OpKind.CONCAT, OpKind.CONV,
         OpKind.DEPTHWISE_CONV)


def _assert_lints_alike(source, exported, input_shape=None):
    graph = graph_of(exported, input_shape=input_shape)
    opaque = [n.layer for n in graph if n.op == OpKind.OPAQUE]
    assert not opaque, opaque
    mine = collections.Counter(n.op for n in graph if n.op in KINDS)
    theirs = collections.Counter(n.op for n in graph_of(source) if n.op in KINDS)
    assert mine == theirs
    assert mine[OpKind.CHANNEL_SHUFFLE] > 0
    got, want = lint(exported, input_shape=input_shape), lint(source)
    assert got.summary.complete and want.summary.complete
    assert got.summary.macs == want.summary.macs
    assert got.summary.params == want.summary.params
    assert sorted(f.code for f in got.findings) == sorted(f.code for f in want.findings)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic_spatial"])
def test_shufflenet_v2_export_lints_like_its_source(tmp_path, dynamic):
    """Every unit's channel split (two ``Slice`` nodes) and shuffle are read, stage 2
    included (it used to read as 6 opaque slices).  ``dynamic_spatial`` writes each
    shuffle with height and width flattened into one axis."""
    from keras_cnnkit.models import create_model
    model = create_model("shufflenet_v2_x0_5", input_shape=(64, 64, 3), weights=None)
    path = str(tmp_path / "shufflenet.keras")
    model.save(path)
    out = str(tmp_path / "shufflenet.onnx")
    export_file(path, out, verify=False, dynamic_spatial=dynamic)
    _assert_lints_alike(path, out, input_shape=(64, 64, 3) if dynamic else None)


def _shufflenet_v1_units(implementation):
    """ShuffleNet v1 units (group convs + ChannelShuffle, 3 groups), a 4-group shuffle,
    a split by two ChannelSlices, and a ShuffleNet V2 unit."""
    from keras_cnnkit import layers as K
    inp = keras.Input((32, 32, 3))
    x = K.ConvBNAct(24, 3, strides=2, name="stem")(inp)
    x = K.ShuffleUnit(240, strides=2, version=1, groups=3, first_group_conv=False,
                      group_implementation=implementation, name="v1_down")(x)
    x = K.ShuffleUnit(240, strides=1, version=1, groups=3,
                      group_implementation=implementation, name="v1")(x)
    x = K.ChannelShuffle(4, name="shuffle4")(x)
    low = K.ChannelSlice(0, 96, name="low")(x)
    high = K.ConvBNAct(144, 1, name="high_conv")(K.ChannelSlice(96, None, name="high")(x))
    x = keras.layers.Concatenate(name="join")([low, high])
    x = K.ShuffleUnit(240, strides=1, version=2, name="v2")(x)
    return keras.Model(inp, K.ClassifierHead(10, name="head")(x))


@pytest.mark.parametrize("implementation", ["native", "split"])
def test_shufflenet_v1_units_export_lint_like_their_source(tmp_path, implementation):
    path = str(tmp_path / "units.keras")
    _shufflenet_v1_units(implementation).save(path)
    out = str(tmp_path / "units.onnx")
    export_file(path, out, verify=False)
    _assert_lints_alike(path, out)
