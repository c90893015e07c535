"""PyTorch's ONNX exports, read without ``--input-shape`` (issue 14; ``tox -e onnx-corpus``).

torchvision's ResNet-50, ShuffleNet V2 x1.0 and ConvNeXt-T (random weights, eval mode) are
exported to ONNX opset 17 at 1×3×224×224 and with dynamic batch, height and width, by
the TorchScript exporter (``dynamo=False``, where most files in the wild come from) and
by the dynamo exporter (weights inline, ``external_data=False``: the linter never opens
the external data files a model names).  Each file is linted with no input shape.

Expected figures, all from outside the linter: fvcore's conv + linear MAC count of the
torch model at 224² (1 fvcore flop = 1 MAC); the parameters as the file's float
initializers of more than one element, counted per use (the exporters fold batch norms
into the convs, and the dynamo exporter drops all-zero biases, so ``numel()`` of the
torch model is not what the file holds); the dynamic file's MACs equal the static
file's.  Needs torch, torchvision and fvcore, hence its own tox env.
"""
import functools
import warnings

import numpy as np
import onnx
import pytest
import torch
import torchvision
from fvcore.nn import FlopCountAnalysis

from keras_cnnkit.analysis.cost import node_cost
from keras_cnnkit.lint.api import lint

pytestmark = [pytest.mark.slow, pytest.mark.onnx_corpus]

MODELS = ("resnet50", "shufflenet_v2_x1_0", "convnext_tiny")
WEIGHTED = ("conv", "depthwise_conv", "dense")
DYNAMIC_AXES = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch"}}


@functools.lru_cache(maxsize=1)
def build(name: str):
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


@functools.lru_cache(maxsize=None)
def fvcore_conv_linear_macs(name: str) -> int:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        counts = FlopCountAnalysis(build(name), torch.randn(1, 3, 224, 224))
        counts.unsupported_ops_warnings(False)
        counts.uncalled_modules_warnings(False)
        by_op = counts.by_operator()
    return int(sum(v for k, v in by_op.items() if k in ("conv", "linear", "addmm")))


def export(name: str, path, exporter: str, dynamic: bool) -> str:
    kwargs = {"dynamo": exporter == "dynamo"}
    if exporter == "dynamo":
        kwargs["external_data"] = False
        if dynamic:
            dim = torch.export.Dim
            kwargs["dynamic_shapes"] = {"x": {0: dim("batch", max=64),
                                              2: dim("height", min=32, max=2048),
                                              3: dim("width", min=32, max=2048)}}
    elif dynamic:
        kwargs["dynamic_axes"] = DYNAMIC_AXES
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(build(name), (torch.randn(1, 3, 224, 224),), str(path),
                              opset_version=17, input_names=["input"],
                              output_names=["output"], **kwargs)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            if exporter == "dynamo" and dynamic:
                pytest.skip(f"torch.export cannot export {name} with dynamic sizes: "
                            f"{type(exc).__name__}")
            raise
    return str(path)


def float_parameters_per_use(path: str) -> int:
    """Elements of the file's float initializers (more than one element), once per use."""
    proto = onnx.load(path)
    floats = {t.name: int(np.prod(t.dims)) for t in proto.graph.initializer
              if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
              and int(np.prod(t.dims)) > 1}
    return sum(floats[i] for node in proto.graph.node for i in node.input if i in floats)


def conv_linear_macs(report) -> int:
    return sum(node_cost(n).macs or 0 for n in report.graph if n.op in WEIGHTED)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("name", MODELS)
def test_dynamic_export_lints_like_the_static_one_and_fvcore(name, exporter, tmp_path):
    paths = {dynamic: export(name, tmp_path / f"{name}.{dynamic}.onnx", exporter, dynamic)
             for dynamic in (False, True)}
    reports = {dynamic: lint(path, select=["ALL"]) for dynamic, path in paths.items()}
    for dynamic, report in reports.items():
        assert report.summary.complete, report.summary.unknown[:5]
        assert [n.name for n in report.graph if n.op == "opaque"] == []
        assert conv_linear_macs(report) == fvcore_conv_linear_macs(name)
        assert report.summary.params == float_parameters_per_use(paths[dynamic])
    static, dynamic = reports[False], reports[True]
    assert dynamic.summary.macs == static.summary.macs
    assert static.graph.notes == []
    (note,) = dynamic.graph.notes
    assert "taken as 224" in note and "1x3x224x224" in note
    assert sorted((f.code, f.macs_before, f.macs_after) for f in dynamic.findings) == sorted(
        (f.code, f.macs_before, f.macs_after) for f in static.findings)
