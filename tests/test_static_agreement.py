"""The static file frontend agrees with the live-model frontend on keras.applications.

For each model saved as ``.h5`` and as ``.keras``, the graph read from the file has the
same nodes (names, ops, attributes, shapes, stored parameter counts) as the graph of the
model in memory, and ``lint`` gives the same totals and the same findings.  Files
written by tf_keras (Keras 2) are compared with the Keras 3 build of the same
architecture (input layers are named differently there, so they are left out).

MobileNetV2 and ResNet50 run by default; every other application is marked slow.
"""
import gc
import logging
import os

import pytest

from keras_cnnkit.analysis.frontends.static_file import load_graph

keras = pytest.importorskip("keras")
logging.getLogger("absl").setLevel(logging.ERROR)

FAST = ["MobileNetV2", "ResNet50"]
SLOW = ["ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
        "DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1",
        "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
        "EfficientNetB6", "EfficientNetB7", "EfficientNetV2B0", "EfficientNetV2B1",
        "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2L", "EfficientNetV2M",
        "EfficientNetV2S", "InceptionResNetV2", "InceptionV3", "MobileNet",
        "MobileNetV3Large", "MobileNetV3Small", "NASNetLarge", "NASNetMobile", "ResNet101",
        "ResNet101V2", "ResNet152", "ResNet152V2", "ResNet50V2", "VGG16", "VGG19",
        "Xception"]
KERAS2 = ["MobileNetV2", "ResNet50", "InceptionV3", "DenseNet121", "VGG16", "Xception",
          "MobileNet", "NASNetMobile"]


def _node(node, drop_input_names=False):
    attrs = {k: v for k, v in node.attrs.items() if k != "declared_shape"}
    inputs = node.inputs if not drop_input_names else [
        "<input>" if i.startswith(("input", "img")) else i for i in node.inputs]
    return (node.op, inputs, node.output_shape, node.input_shapes, attrs, node.layer,
            node.source_class, node.params)


def _findings(report):
    return sorted((f.code, f.layer, f.node, f.params_before, f.params_after, f.macs_before,
                   f.macs_after, f.flops_before, f.flops_after) for f in report.findings)


def _totals(report):
    s = report.summary
    return (s.params, s.macs, s.flops, s.layer_count, sorted(s.unknown),
            sorted(s.params_from_observed))


def _live_input_shape(model):
    shape = tuple(model.inputs[0].shape[1:])
    return tuple(224 if d is None else d for d in shape) if None in shape else None


def check_agreement(name, tmp_path):
    """Save ``keras.applications.<name>`` both ways and compare with the live model."""
    from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
    from keras_cnnkit.lint.api import lint

    model = getattr(keras.applications, name)(weights=None)
    shape = _live_input_shape(model)
    live = graph_from_keras(model, input_shape=shape)
    live_report = lint(model, input_shape=shape)
    assert live_report.summary.params == model.count_params()
    live_nodes = {n.name: _node(n) for n in live}
    for suffix in ("h5", "keras"):
        path = os.path.join(tmp_path, f"{name}.{suffix}")
        model.save(path)
        static = load_graph(path)
        assert static.inputs == live.inputs and static.outputs == live.outputs
        assert {n.name: _node(n) for n in static} == live_nodes, suffix
        report = lint(path)
        assert _totals(report) == _totals(live_report), suffix
        assert _findings(report) == _findings(live_report), suffix
        os.remove(path)
    del model
    keras.backend.clear_session()
    gc.collect()


@pytest.mark.parametrize("name", FAST)
def test_agreement(name, tmp_path):
    """Static and live frontends agree on this application (fast set)."""
    check_agreement(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_agreement_slow(name, tmp_path):
    """Static and live frontends agree on this application."""
    check_agreement(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", KERAS2)
def test_agreement_keras2_h5(name, tmp_path):
    """tf_keras' .h5 of an application ≡ the Keras 3 build of it: the same ops with the
    same shapes and stored parameters, the same totals, the same findings.

    Layer names are left out: the libraries number their unnamed layers differently
    (``batch_normalization_3`` vs ``_97``), and DenseNet spells ``conv1/conv`` vs
    ``conv1_conv``.
    """
    tf_keras = pytest.importorskip("tf_keras")
    from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras
    from keras_cnnkit.lint.api import lint

    path = os.path.join(tmp_path, f"{name}_k2.h5")
    getattr(tf_keras.applications, name)(weights=None).save(path)
    tf_keras.backend.clear_session()
    model = getattr(keras.applications, name)(weights=None)

    def unnamed_nodes(graph):
        return sorted(repr((n.op, n.output_shape, n.input_shapes, n.params,
                            sorted((k, repr(v)) for k, v in n.attrs.items()
                                   if k not in ("declared_shape", "shares_weights_with"))))
                      for n in graph if n.op != "input")

    def unnamed_findings(report):
        return sorted(f[:1] + f[3:] for f in _findings(report))

    assert unnamed_nodes(load_graph(path)) == unnamed_nodes(graph_from_keras(model))
    static, live = lint(path), lint(model)
    assert _totals(static)[:4] == _totals(live)[:4]
    assert unnamed_findings(static) == unnamed_findings(live)
