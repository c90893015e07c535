"""keras.applications models exported to ONNX with dynamic height and width (issue 14).

Each model (``weights=None``, built at 224×224×3) is exported twice through tf2onnx
(:func:`keras_cnnkit.onnx_convert.to_onnx`): with its static 224×224 signature, and with
``input_shape=(None, None, 3)``, the export people make to serve any size.  The dynamic
file is linted with no input shape: its unknown dims are taken as 224 (with a note
saying so) and its MACs and parameters equal the static file's, with every cost known.
Two small models run in the fast suite, every other one in the ``slow`` env.
"""
import gc

import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tf2onnx")

from keras_cnnkit.analysis.cost import summarize  # noqa: E402
from keras_cnnkit.analysis.frontends.onnx_frontend import load_onnx_graph  # noqa: E402
from keras_cnnkit.onnx_convert import to_onnx  # noqa: E402

FAST = ("MobileNetV2", "MobileNetV3Small")
ALL = sorted(name for name in dir(keras.applications)
             if name[0].isupper() and callable(getattr(keras.applications, name)))


def check_dynamic_export(name: str) -> None:
    keras.backend.clear_session()
    gc.collect()
    model = getattr(keras.applications, name)(weights=None, input_shape=(224, 224, 3))
    static = load_onnx_graph(to_onnx(model)[0])
    proto = to_onnx(model, input_shape=(None, None, 3))[0]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims] == [False, False, False, True]
    dynamic = load_onnx_graph(proto)
    ours, theirs = summarize(dynamic), summarize(static)
    assert ours.complete and theirs.complete, ours.unknown[:5]
    assert (ours.macs, ours.params) == (theirs.macs, theirs.params)
    (note,) = dynamic.notes
    assert "taken as 224" in note and "1x224x224x3" in note
    assert static.notes == []


@pytest.mark.parametrize("name", FAST)
def test_dynamic_export_of_a_small_model(name):
    check_dynamic_export(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n not in FAST])
def test_dynamic_export_of_every_keras_application(name):
    check_dynamic_export(name)
