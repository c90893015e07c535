"""Every built-in op kind, walked end to end: node → shape → cost → Keras layers.

For each kind one example node is made by hand.  Its Keras layers (codegen) are called on
symbolic inputs: Keras' own output shape must equal the IR's inferred shape, and Keras'
``count_params()`` the IR's parameter count.  A kind added without an example here fails
:func:`test_examples_cover_every_builtin_kind`.
"""
import keras
import numpy as np
import pytest

from keras_cnnkit.analysis import ops
from keras_cnnkit.analysis.cost import node_cost
from keras_cnnkit.analysis.ir import Node, OpKind
from keras_cnnkit.analysis.shapes import infer_shape
from keras_cnnkit.rewrite import UnsupportedNodeError, node_layers, supported_ops
from keras_cnnkit.rewrite.codegen import call_layers

IMG = (8, 8, 4)
SMALL = (4, 4, 3)
CONV = {"kernel": (3, 3), "in_channels": 4, "use_bias": True, "padding": "same"}

#: kind → (input shapes, attrs): one example node per built-in kind.
EXAMPLES = {
    OpKind.INPUT: ([], {"shape": IMG}),
    OpKind.CONV: ([IMG], dict(CONV, filters=6)),
    OpKind.DEPTHWISE_CONV: ([IMG], dict(CONV, filters=8, groups=4, depth_multiplier=2,
                                        use_bias=False)),
    OpKind.CONV_TRANSPOSE: ([IMG], dict(CONV, filters=3, strides=(2, 2))),
    OpKind.DEFORM_CONV: ([IMG, (8, 8, 18)], dict(CONV, filters=6)),
    OpKind.EMBEDDING: ([(5,)], {"input_dim": 10, "output_dim": 3}),
    OpKind.DENSE: ([(5, 7)], {"in_features": 7, "units": 3, "use_bias": True,
                              "activation": "relu"}),
    OpKind.BATCHNORM: ([IMG], {"channels": 4, "axis": 2}),
    OpKind.NORM: ([IMG], {"kind": "layer", "axes": (2,), "norm_size": 4, "center": True,
                          "scale": True}),
    OpKind.ACTIVATION: ([IMG], {"activation": "relu6"}),
    OpKind.ADD: ([SMALL, SMALL], {}),
    OpKind.SUBTRACT: ([SMALL, SMALL], {}),
    OpKind.MULTIPLY: ([SMALL, SMALL], {}),
    OpKind.AVERAGE: ([SMALL, SMALL], {}),
    OpKind.MAXIMUM: ([SMALL, SMALL], {}),
    OpKind.MINIMUM: ([SMALL, SMALL], {}),
    OpKind.CONCAT: ([SMALL, (4, 4, 2)], {"axis": 2}),
    OpKind.POOL: ([IMG], {"pool_type": "max", "pool_size": (2, 2), "strides": (2, 2)}),
    OpKind.GLOBAL_POOL: ([IMG], {"pool_type": "avg", "rank": 2}),
    OpKind.FLATTEN: ([SMALL], {}),
    OpKind.RESHAPE: ([SMALL], {"target_shape": (16, 3)}),
    OpKind.TRANSPOSE: ([SMALL], {"perm": (2, 0, 1)}),
    OpKind.SLICE: ([IMG], {"axis": 2, "start": 1, "stop": 3}),
    OpKind.DROPOUT: ([IMG], {"rate": 0.1, "kind": "dropout"}),
    OpKind.PAD: ([IMG], {"padding": ((1, 1), (0, 2))}),
    OpKind.CROP: ([IMG], {"cropping": ((1, 0), (0, 1))}),
    OpKind.UPSAMPLE: ([SMALL], {"size": (2, 2), "interpolation": "bilinear"}),
    OpKind.CHANNEL_SHUFFLE: ([(4, 4, 6)], {"groups": 3}),
    OpKind.RESCALE: ([IMG], {"mode": "rescaling", "params": 0}),
    OpKind.IDENTITY: ([IMG], {}),
    OpKind.OPAQUE: ([IMG], {"class_name": "Lambda"}),
    "layer_scale": ([SMALL], {"channels": 3}),
    "divide": ([SMALL, SMALL], {}),
    "reduce": ([IMG], {"reduction": "sum", "axes": (2,)}),
    "strided_slice": ([IMG], {"slices": ((1, 5, None), (0, None, 2), (None, None, None)),
                              "squeeze": ()}),
    "resize": ([SMALL], {"size": (6, 5), "interpolation": "bilinear"}),
    "matmul": ([(5, 7), (7, 3)], {}),
    "einsum": ([(4, 6), (6, 3)], {"equation": "bij,bjk->bik"}),
    "einsum_dense": ([(5, 7)], {"equation": "abc,cd->abd", "output_shape": (None, 3),
                                "bias_axes": "d"}),
    "unary": ([IMG], {"function": "sqrt"}),
    "adaptive_pool": ([IMG], {"output_size": (3, 5), "pool_type": "avg"}),
    "attention": ([(6, 5), (4, 7)], {"variant": "multi_head", "num_heads": 2, "key_dim": 3}),
    "rnn": ([(6, 5)], {"units": 4, "cell": "lstm"}),
    "lookup": ([(3,)], {"mode": "multi_hot", "size": 9}),
    "state": ([IMG], {"size": 4}),
}


def example(kind: str) -> Node:
    """The example node of ``kind``, its output shape inferred by the IR."""
    shapes, attrs = EXAMPLES[kind]
    inputs = [f"in{i}" for i in range(len(shapes))]
    return Node(kind, kind, inputs, list(shapes), infer_shape(kind, attrs, shapes), attrs,
                source_class="Example")


def test_examples_cover_every_builtin_kind():
    builtin = {k for k in ops.all_kinds()
               if type(ops.op_def(k)).__module__.startswith("keras_cnnkit.")}
    assert set(EXAMPLES) == builtin


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_kind_walks_from_node_to_keras(kind):
    """Shape and cost are computed; the Keras layers have the IR's shape and params."""
    node = example(kind)
    definition = ops.op_def(kind)
    cost = node_cost(node)
    assert ops.latency_class_of(node) in ops.LatencyClass.ALL
    if definition.has(ops.Trait.OPAQUE):
        assert node.output_shape is None and not cost.known
    else:
        assert node.output_shape is not None and cost.known
    if not definition.rebuildable:
        with pytest.raises(UnsupportedNodeError, match=definition.not_rebuildable[:20]):
            node_layers(node)
        assert kind not in supported_ops()
        return
    assert kind in supported_ops()
    layers = node_layers(node)
    dtype = "int32" if kind == OpKind.EMBEDDING else "float32"
    out = call_layers(layers, [keras.Input(s, dtype=dtype) for s in node.input_shapes])
    assert tuple(out.shape[1:]) == node.output_shape
    assert sum(layer.count_params() for layer in layers) == cost.params
    assert layers[-1].name == kind


def test_slice_codegen_selects_the_channels():
    """Channels 1:3 of the input, by value."""
    layers = node_layers(example(OpKind.SLICE))
    x = np.arange(8 * 8 * 4, dtype="float32").reshape((1, 8, 8, 4))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(call_layers(layers, [x])),
                                  x[..., 1:3])


def test_slice_of_a_spatial_axis_is_refused():
    node = Node("s", OpKind.SLICE, ["x"], [IMG], (8, 3, 4), {"axis": 1, "start": 2, "stop": 5})
    with pytest.raises(UnsupportedNodeError, match="channel axis only"):
        node_layers(node)


def test_embedding_codegen_is_a_lookup_table():
    (layer,) = node_layers(example(OpKind.EMBEDDING))
    assert isinstance(layer, keras.layers.Embedding)
    layer.build((None, 5))
    assert tuple(layer.embeddings.shape) == (10, 3)


def test_deform_conv_says_why_it_is_not_rebuilt():
    with pytest.raises(UnsupportedNodeError, match="offsets"):
        node_layers(example(OpKind.DEFORM_CONV))
