"""Traits, the activation table and latency classes: one definition each, as documented.

The expected members and numbers are written out here from the documented conventions
(the FLOP table of :mod:`keras_cnnkit.analysis.cost`, ONNX's and Keras' op names).
"""
import pytest

from keras_cnnkit.analysis import ops
from keras_cnnkit.analysis.ir import Node, OpKind
from keras_cnnkit.analysis.keras_layers import activation_name
from keras_cnnkit.analysis.ops import LatencyClass, Trait, activation_table
from keras_cnnkit.analysis.patterns import MERGES, RECTIFIERS, TRANSPARENT, WEIGHTED


def test_groupings_are_trait_sets():
    assert set(WEIGHTED) == {"conv", "depthwise_conv", "conv_transpose", "deform_conv",
                             "dense"}
    assert set(MERGES) == {"add", "subtract", "multiply", "divide", "average", "maximum",
                           "minimum", "concat"}
    assert set(TRANSPARENT) == {"batchnorm", "activation", "dropout", "identity",
                                "layer_scale", "state"}
    assert set(ops.kinds_with(Trait.VIEW)) == {"input", "flatten", "reshape", "identity",
                                               "dropout", "state"}
    assert set(ops.kinds_with(Trait.SOURCE)) == {"input"}
    assert set(ops.kinds_with(Trait.OPAQUE)) == {"opaque"}
    head = TRANSPARENT | {OpKind.FLATTEN}
    assert isinstance(head, frozenset) and OpKind.FLATTEN in head and "dropout" in head
    assert "pad" not in TRANSPARENT and None not in WEIGHTED


def test_activation_table():
    """FLOPs per element, rectifiers, spellings, ONNX and keras.ops names."""
    flops = {"relu": 1, "relu6": 1, "leaky_relu": 2, "prelu": 4, "sigmoid": 4, "elu": 4,
             "hard_sigmoid": 4, "selu": 5, "silu": 5, "hard_silu": 5, "gelu": 5, "mish": 5,
             "softmax": 5, "log_softmax": 5, "softplus": 3, "softsign": 3, "tanh": 1,
             "exponential": 1}
    assert {row.name: row.flops for row in activation_table.TABLE} == flops
    assert activation_table.flops_per_element(None) == 0
    assert activation_table.flops_per_element("linear") == 0
    assert activation_table.flops_per_element("clip") is None
    assert RECTIFIERS == {"relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "silu",
                          "hard_silu", "gelu", "mish"}
    assert activation_name("swish") == "silu" and activation_name("hard_swish") == "hard_silu"
    assert activation_name("identity") is None
    onnx = activation_table.onnx_activations()
    assert onnx["HardSwish"] == "hard_silu" and onnx["Exp"] == "exponential"
    assert len(onnx) == 15
    assert activation_table.keras_op_activations() == {
        "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Silu": "silu",
        "Tanh": "tanh", "HardSigmoid": "hard_sigmoid", "HardSilu": "hard_silu",
        "LeakyRelu": "leaky_relu", "Elu": "elu", "Selu": "selu", "Exp": "exponential",
        "Softplus": "softplus", "Softsign": "softsign", "Gelu": "gelu", "Mish": "mish",
        "Softmax": "softmax", "LogSoftmax": "log_softmax"}
    tf_ops = activation_table.tf_op_activations()
    assert tf_ops["nn.relu6"] == "relu6" and tf_ops["nn.swish"] == "silu"
    assert tf_ops["math.sigmoid"] == tf_ops["nn.sigmoid"] == "sigmoid"


def conv(groups=1, kernel=(3, 3), in_channels=8, filters=8, op=OpKind.CONV):
    return Node("c", op, ["x"], [(8, 8, in_channels)], (8, 8, filters),
                {"kernel": kernel, "in_channels": in_channels, "filters": filters,
                 "groups": groups, "use_bias": False, "padding": "same"})


@pytest.mark.parametrize("node, expected", [
    (conv(), LatencyClass.CONV),
    (conv(kernel=(1, 1)), LatencyClass.POINTWISE),
    (conv(groups=8), LatencyClass.DEPTHWISE),
    (conv(groups=2), LatencyClass.GROUPED),
    (conv(groups=8, op=OpKind.DEPTHWISE_CONV), LatencyClass.DEPTHWISE),
    (Node("d", OpKind.DENSE, ["x"], [(8,)], (4,),
          {"in_features": 8, "units": 4, "use_bias": True}), LatencyClass.DENSE),
    (Node("a", OpKind.ACTIVATION, ["x"], [(8,)], (8,), {"activation": "relu"}),
     LatencyClass.ELEMENTWISE),
    (Node("p", OpKind.GLOBAL_POOL, ["x"], [(4, 4, 8)], (8,), {}), LatencyClass.REDUCTION),
    (Node("u", OpKind.UPSAMPLE, ["x"], [(4, 4, 8)], (8, 8, 8), {"size": (2, 2)}),
     LatencyClass.MOVEMENT),
    (Node("b", OpKind.BATCHNORM, ["x"], [(4, 4, 8)], (4, 4, 8), {"channels": 8}),
     LatencyClass.NORM),
    (Node("f", OpKind.FLATTEN, ["x"], [(4, 4, 8)], (128,), {}), LatencyClass.NONE),
    (Node("o", OpKind.OPAQUE, ["x"], [(4,)], None, {}), LatencyClass.UNKNOWN),
], ids=lambda v: v if isinstance(v, str) else v.op)
def test_latency_classes(node, expected):
    assert ops.latency_class_of(node) == expected


def test_every_kind_documents_itself():
    """Each kind's module opens with a docstring, and its definition class has one."""
    for kind in ops.all_kinds():
        definition = ops.op_def(kind)
        module = __import__(type(definition).__module__, fromlist=["_"])
        assert module.__doc__ and type(definition).__doc__, kind
