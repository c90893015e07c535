"""Tests of ``lint_rules.pylint_plugin``: every message's positives, negatives, near-misses.

Expected parameter counts are worked out by hand in the comments beside them
(weights k^rank·C_in·C_out, plus one bias per output channel where the layer has one).
"""
from __future__ import annotations

import inspect
import io
import pathlib
import textwrap

import astroid
import pytest
from pylint.lint import Run
from pylint.reporters.text import TextReporter
from pylint.testutils import CheckerTestCase, MessageTest

from lint_rules.pylint_plugin import KerasModelChecker
from lint_rules.pylint_plugin.layer_flow import LayerRef
from lint_rules.pylint_plugin.savings import (
    global_pooling_head,
    stacked_conv_count,
    stacked_small_kernels,
)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SYMBOLS = ("large-kernel", "flatten-dense-head", "bias-before-batchnorm",
           "dropout-before-batchnorm", "unsafe-model-load")
HEADER = "import keras\nfrom keras import layers\n"


# --- the arithmetic -------------------------------------------------------------------

@pytest.mark.parametrize("kernel, count", [(5, 2), (6, 3), (7, 3), (9, 4), (11, 5)])
def test_stacked_conv_count_covers_the_receptive_field(kernel, count):
    """n 3-wide convs see 2n + 1 ≥ k inputs, and n − 1 would not."""
    assert stacked_conv_count(kernel) == count
    assert 2 * count + 1 >= kernel > 2 * (count - 1) + 1


@pytest.mark.parametrize("args, before, after", [
    ((5, 2, 64, 64, False), 102_400, 73_728),   # brief: 25·64·64 vs 2·9·64·64
    ((5, 2, 64, 64, True), 102_464, 73_856),    # + 64 vs + 2·64 biases
    ((5, 2, 3, 3, False), 225, 162),            # seed 003: one 5×5 vs two 3×3, 3 filters
    ((5, 2, 48, 64, False), 76_800, 64_512),    # InceptionV3 5×5 branch: 25·48·64 vs 9·48·64+9·64²
    ((7, 2, 3, 64, False), 9_408, 75_456),      # 49·3·64 vs 9·3·64 + 2·9·64·64: no saving
    ((9, 1, 256, 16, False), 36_864, 14_592),   # 9·256·16 vs 3·256·16 + 3·3·16·16
    ((5, 3, 32, 32, True), 128_032, 55_360),    # 125·32·32+32 vs 2·27·32·32 + 2·32
])
def test_stacked_small_kernels(args, before, after):
    """Before/after parameter counts of the large-kernel rewrite."""
    saving = stacked_small_kernels(*args)
    assert (saving.before, saving.after) == (before, after)
    assert saving.saves == (after < before)


def test_global_pooling_head_vgg16_fc6():
    """Seed 003: VGG16's FC6 over a 7×7×512 map has 7·7·512·4096 = 102,760,448 weights."""
    saving = global_pooling_head(49, 512, 4096, use_bias=False)
    assert (saving.before, saving.after) == (102_760_448, 512 * 4096)
    assert str(saving) == "102,760,448 → 2,097,152"


def test_positional_parameters_match_keras():
    """The plugin reads positional arguments where Keras' constructors take them."""
    keras = pytest.importorskip("keras")
    for cls, name in [("Conv2D", "use_bias"), ("Conv3D", "groups"), ("Conv1D", "dilation_rate"),
                      ("SeparableConv2D", "use_bias"), ("DepthwiseConv2D", "depth_multiplier"),
                      ("Conv3DTranspose", "data_format"), ("Conv2DTranspose", "data_format"),
                      ("MaxPooling2D", "padding"), ("Dense", "use_bias"),
                      ("Embedding", "output_dim"), ("Dropout", "rate")]:
        params = list(inspect.signature(getattr(keras.layers, cls).__init__).parameters)[1:]
        position = params.index(name)
        call = astroid.extract_node(f"f({', '.join(f'a{i}' for i in range(position + 1))})")
        assert LayerRef(cls, call).argument(name).name == f"a{position}", (cls, name)


# --- the checker ----------------------------------------------------------------------

class _PluginCase(CheckerTestCase):
    """Runs the checker over source and returns ``(symbol, line, args)`` per message."""

    CHECKER_CLASS = KerasModelChecker

    def found(self, code: str, header: str = HEADER) -> list[tuple]:
        """Messages on ``header + code``; lines count from the first line of ``code``."""
        offset = header.count("\n")
        self.walk(astroid.parse(header + textwrap.dedent(code.lstrip("\n"))))
        return sorted((m.msg_id, m.line - offset, m.args) for m in self.linter.release_messages())


class TestLargeKernel(_PluginCase):
    """``large-kernel`` (CNK101)."""

    def test_reports_at_the_conv_node(self):
        """Positive in a Sequential literal; input channels from the previous conv."""
        node = astroid.extract_node(HEADER + textwrap.dedent("""
            keras.Sequential([
                layers.Conv2D(64, 3),
                layers.Conv2D(64, 5),  #@
            ])
        """))
        with self.assertAddsMessages(MessageTest(
                "large-kernel", node=node,
                args=("Conv2D", "5x5", "64 → 64 channels", 2, "3x3", "102,464 → 73,856")),
                ignore_position=True):
            self.walk(node.root())

    def test_module_constant_and_tuple_kernel_with_unknown_input(self):
        """``kernel_size=(K, K)`` resolves through a constant; C_in unknown → C_in = filters."""
        assert self.found("""
            K = 5
            def block(x):
                return layers.Conv2D(64, kernel_size=(K, K), use_bias=False)(x)
        """) == [("large-kernel", 3, (
            "Conv2D", "5x5", "64 → 64 channels, input channels unknown: assumed = filters",
            2, "3x3", "102,400 → 73,728"))]

    def test_first_conv_on_known_rgb_input_is_not_reported(self):
        """3→64 7×7 grows under stacking (9,408 → 75,456 weights): no message."""
        assert not self.found("""
            inputs = keras.Input(shape=(224, 224, 3))
            x = layers.Conv2D(64, 7, strides=2, padding="same")(inputs)
        """)

    def test_same_conv_with_unknown_input_assumes_filters(self):
        """Near-miss of the above: 64→64 7×7: 49·4096+64 = 200,768; 3·9·4096+3·64 = 110,784."""
        assert self.found("""
            def stem(inputs):
                return layers.Conv2D(64, 7, strides=2, padding="same")(inputs)
        """) == [("large-kernel", 2, (
            "Conv2D", "7x7", "64 → 64 channels, input channels unknown: assumed = filters",
            3, "3x3", "200,768 → 110,784"))]

    @pytest.mark.parametrize("code", [
        "keras.Sequential([layers.Conv2D(64, 7)])",
        "model = keras.Sequential()\nmodel.add(layers.Conv2D(64, 5))",
        "inputs = keras.Input(shape=(None, None, None))\ny = layers.Conv2D(64, 5)(inputs)",
    ])
    def test_model_input_of_unknown_depth_is_not_assumed(self, code):
        """Decision: a conv read back to the model's input is not given C_in = filters."""
        assert not self.found(code)

    def test_channels_flow_through_norm_activation_and_pooling(self):
        """16 channels from ``Input`` through BN/ReLU/pooling: 6,416 → 4,640."""
        assert self.found("""
            keras.Sequential([
                keras.Input(shape=(32, 32, 16)),
                layers.BatchNormalization(),
                layers.ReLU(),
                layers.MaxPool2D(),
                layers.Conv2D(16, 5, padding="same"),
            ])
        """) == [("large-kernel", 6, ("Conv2D", "5x5", "16 → 16 channels", 2, "3x3",
                                       "6,416 → 4,640"))]

    def test_keras2_input_shape_keyword(self):
        """``input_shape=(32, 32, 3)`` on the conv: 3→64 5×5 does not save."""
        assert not self.found("keras.Sequential([layers.Conv2D(64, 5, input_shape=(32, 32, 3))])")

    def test_add_chain_and_conv1d(self):
        """``model.add`` chain; Embedding gives 256 channels: 9·256·16 = 36,864 → 14,592."""
        assert self.found("""
            model = keras.Sequential()
            model.add(layers.Embedding(1000, 256))
            model.add(layers.Conv1D(16, 9, use_bias=False))
            model.add(layers.Conv1D(16, 5))
        """) == [("large-kernel", 3, ("Conv1D", "size-9", "256 → 16 channels", 4, "size-3",
                                       "36,864 → 14,592"))]

    def test_conv3d(self):
        """5×5×5, 32→32 with bias: 128,032 → 55,360."""
        assert self.found("y = layers.Conv3D(32, 5)") == [("large-kernel", 1, (
            "Conv3D", "5x5x5", "32 → 32 channels, input channels unknown: assumed = filters",
            2, "3x3x3", "128,032 → 55,360"))]

    @pytest.mark.parametrize("conv", [
        "layers.Conv2D(64, 3)",                      # small kernel
        "layers.Conv2D(64, (1, 7))",                 # asymmetric: a different rule
        "layers.Conv2D(64, 5, dilation_rate=2)",     # dilated: other receptive field
        "layers.Conv2D(64, 5, groups=4)",            # grouped: other weight count
        "layers.Conv2D(FILTERS, 5)",                 # filters not inferable
        "layers.Conv2D(64, 5, use_bias=BIAS)",       # bias flag not inferable
        "layers.SeparableConv2D(64, 5)",             # not a plain conv
        "other.Conv2D(64, 5)",                       # not Keras
    ])
    def test_near_misses(self, conv):
        """Nothing is reported where the rewrite is not the one the rule prices."""
        assert not self.found(f"""
            import other
            def build(FILTERS, BIAS):
                return {conv}
        """)


class TestKerasNameResolution(_PluginCase):
    """Keras is recognised behind every common import spelling."""

    @pytest.mark.parametrize("header, conv", [
        ("import keras\n", "keras.layers.Conv2D"),
        ("from tensorflow import keras\n", "keras.layers.Convolution2D"),
        ("import tensorflow as tf\n", "tf.keras.layers.Conv2D"),
        ("import tensorflow.keras.layers as L\n", "L.Conv2D"),
        ("import tf_keras as keras\n", "keras.layers.Conv2D"),
        ("from keras.src.layers import Conv2D\n", "Conv2D"),
        ("from keras.layers import Conv2D as C2\n", "C2"),
        ("from keras import layers\nConv = layers.Conv2D\n", "Conv"),
        ("try:\n    from tensorflow import keras\nexcept ImportError:\n    import keras\n",
         "keras.layers.Conv2D"),
    ])
    def test_import_spellings(self, header, conv):
        """A 5×5 64→64 conv is found whichever way Keras was imported."""
        found = self.found(f"{conv}(64, 5, use_bias=False)\n", header=header)
        assert found == [("large-kernel", 1, (
            "Conv2D", "5x5", "64 → 64 channels, input channels unknown: assumed = filters",
            2, "3x3", "102,400 → 73,728"))]

    def test_other_library_with_keras_like_names(self):
        """``from mylib import Conv2D`` is not Keras; an unresolved star import neither."""
        assert not self.found("Conv2D(64, 5)\nlayers.Conv2D(64, 5)\n",
                              header="from mylib import Conv2D, layers\n")


class TestFlattenDenseHead(_PluginCase):
    """``flatten-dense-head`` (CNK105)."""

    def test_vgg16_head_from_the_input_shape(self):
        """VGG16: 224 halved by five poolings is 7, so FC6 has 7·7·512·4096 + 4096 params."""
        convs = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
        body = "".join(
            f"    layers.Conv2D({width}, 3, padding='same', activation='relu'),\n" * count
            + "    layers.MaxPooling2D(2, strides=2),\n" for width, count in convs)
        code = ("vgg = keras.Sequential([\n    keras.Input(shape=(224, 224, 3)),\n" + body
                + "    layers.Flatten(),\n    layers.Dense(4096, activation='relu'),\n])\n")
        assert self.found(code) == [("flatten-dense-head", 21, (
            "4096", "params 102,764,544 → 2,101,248 with GlobalAveragePooling2D() instead "
                    "of Flatten() on the 7x7x512 map"))]

    def test_valid_and_same_window_arithmetic(self):
        """34 = 32 + 2·1 padded; valid 3/2 conv → ⌊(34 − 3)/2⌋ + 1 = 16; same 3/2 pool → 8.
        Dense(10) without bias over 8·8·16: 10,240 weights; after global pooling 16·10."""
        assert self.found("""
            keras.Sequential([
                layers.InputLayer(shape=(32, 32, 3)),
                layers.ZeroPadding2D(1),
                layers.Conv2D(16, 3, strides=2, use_bias=False),
                layers.MaxPooling2D(3, strides=2, padding="same"),
                layers.Flatten(),
                layers.Dense(10, use_bias=False),
            ])
        """) == [("flatten-dense-head", 6, (
            "10", "params 10,240 → 160 with GlobalAveragePooling2D() instead of Flatten() "
                  "on the 8x8x16 map"))]

    def test_functional_chain_with_known_channels(self):
        """``x = Flatten()(x)`` then ``x = Dense(10)(x)``; 32 channels, spatial size unknown."""
        assert self.found("""
            def head(inputs):
                x = layers.Conv2D(32, 3)(inputs)
                x = layers.Flatten()(x)
                x = layers.Dense(10)(x)
                return x
        """) == [("flatten-dense-head", 3, (
            "10", "its kernel holds 32·10 weights per spatial position; with "
                  "GlobalAveragePooling2D() instead it holds 320 in all"))]

    def test_nested_call(self):
        """``Dense(..)(Flatten()(x))`` with nothing known about ``x``."""
        assert self.found("""
            def head(x, n):
                return layers.Dense(n)(layers.Flatten()(x))
        """) == [("flatten-dense-head", 2, (
            "n", "its kernel holds one block of weights per spatial position; with global "
                 "average pooling instead it holds one and accepts any input size"))]

    def test_dropout_between_does_not_break_the_head(self):
        """Decision: weightless element-wise layers (Dropout) between still count, as in
        Keras' MNIST convnet example (Flatten, Dropout(0.5), Dense); 5·5·64·10+10 = 16,010."""
        assert self.found("""
            keras.Sequential([
                keras.Input(shape=(5, 5, 64)),
                layers.Flatten(),
                layers.Dropout(0.5),
                layers.Dense(10, activation="softmax"),
            ])
        """) == [("flatten-dense-head", 3, (
            "10", "params 16,010 → 650 with GlobalAveragePooling2D() instead of Flatten() "
                  "on the 5x5x64 map"))]

    def test_layer_instances_bound_to_names(self):
        """``flat = Flatten()`` / ``dense = Dense(10)`` applied later; reported at Flatten()."""
        assert [(s, line) for s, line, _ in self.found("""
            flat = layers.Flatten()
            dense = layers.Dense(10)
            def head(x):
                return dense(flat(x))
        """)] == [("flatten-dense-head", 1)]

    @pytest.mark.parametrize("middle", [
        "layers.GlobalAveragePooling2D(),",                     # the fix itself
        "layers.Flatten(), layers.BatchNormalization(),",       # a weighted layer between
        "layers.GlobalMaxPooling2D(), layers.Flatten(),",       # flattening one position
        "layers.Flatten(), layers.Reshape((8, 8, 1)), layers.Conv2D(8, 3), layers.Flatten(), "
        "layers.GlobalAveragePooling2D(),",                     # Dense never follows Flatten
    ])
    def test_sequential_near_misses(self, middle):
        """Heads that are not Flatten → Dense over a spatial map."""
        assert not self.found(f"""
            keras.Sequential([
                keras.Input(shape=(8, 8, 32)), {middle} layers.Dense(10)])
        """)

    def test_unrelated_variables_and_branches(self):
        """Dense on another tensor; a variable assigned on two branches is not followed."""
        assert not self.found("""
            def head(a, b, flag):
                f = layers.Flatten()(a)
                y = layers.Dense(10)(b)
                if flag:
                    z = layers.Flatten()(a)
                else:
                    z = a
                return layers.Dense(10)(z), f, y
        """)


class TestBiasBeforeBatchNorm(_PluginCase):
    """``bias-before-batchnorm`` (CNK108)."""

    def test_sequential_reports_at_the_conv(self):
        """Positive: the 64 biases are cancelled by BN's mean subtraction."""
        assert self.found("""
            keras.Sequential([
                layers.Conv2D(64, 3, padding="same"),
                layers.BatchNormalization(),
            ])
        """) == [("bias-before-batchnorm", 2, ("Conv2D", "64 params"))]

    def test_functional_chain_and_nested_call(self):
        """Consecutive statements, explicit ``use_bias=True``, and a nested call."""
        assert self.found("""
            def block(x):
                x = layers.Conv2D(32, 3, use_bias=True)(x)
                x = layers.BatchNormalization()(x)
                return layers.BatchNormalization()(layers.Conv1D(16, 3)(x))
        """) == [("bias-before-batchnorm", 2, ("Conv2D", "32 params")),
                 ("bias-before-batchnorm", 4, ("Conv1D", "16 params"))]

    def test_layers_keyword_tuple_and_add_after_a_literal(self):
        """``Sequential(layers=(...))``; ``model.add`` continues a ``Sequential([...])``."""
        assert self.found("""
            keras.models.Sequential(layers=(layers.Conv2D(8, 3), layers.BatchNormalization()))
            model = keras.Sequential([layers.Conv2D(16, 3)])
            model.add(layers.BatchNormalization())
        """) == [("bias-before-batchnorm", 1, ("Conv2D", "8 params")),
                 ("bias-before-batchnorm", 2, ("Conv2D", "16 params"))]

    @pytest.mark.parametrize("conv, reported, saved", [
        ("layers.SeparableConv2D(12, 3)", "SeparableConv2D", "12 params"),
        ("layers.Conv2DTranspose(8, 3, strides=2)", "Conv2DTranspose", "8 params"),
        ("layers.Convolution1D(4, 3)", "Conv1D", "4 params"),
    ])
    def test_other_convolutions(self, conv, reported, saved):
        """Every convolution's bias is one per output channel, cancelled alike."""
        assert self.found(f"keras.Sequential([{conv}, layers.BatchNormalization()])") == [
            ("bias-before-batchnorm", 1, (reported, saved))]

    def test_depthwise_bias_count_from_the_input_channels(self):
        """DepthwiseConv2D on 24 channels with depth_multiplier 2 has 48 biases."""
        assert self.found("""
            keras.Sequential([
                keras.Input(shape=(32, 32, 24)),
                layers.DepthwiseConv2D(3, depth_multiplier=2),
                layers.BatchNormalization(),
            ])
        """) == [("bias-before-batchnorm", 3, ("DepthwiseConv2D", "48 params"))]

    def test_unknown_filters(self):
        """Filters not inferable: the message names the saving per channel."""
        assert self.found("""
            def block(x, width):
                x = layers.Conv2D(width, 3)(x)
                return layers.BatchNormalization()(x)
        """) == [("bias-before-batchnorm", 2, ("Conv2D", "one param per channel"))]

    @pytest.mark.parametrize("first, second", [
        ("layers.Conv2D(64, 3, use_bias=False)", "layers.BatchNormalization()"),
        ("layers.Conv2D(64, 3, use_bias=NO_BIAS)", "layers.BatchNormalization()"),
        ("layers.Conv2D(64, 3, use_bias=flag)", "layers.BatchNormalization()"),
        ("layers.Conv2D(64, 3), layers.ReLU()", "layers.BatchNormalization()"),
        ("layers.Dense(64)", "layers.BatchNormalization()"),
        ("layers.Conv2D(64, 3)", "layers.LayerNormalization()"),
        ("layers.BatchNormalization()", "layers.Conv2D(64, 3)"),
    ])
    def test_near_misses(self, first, second):
        """No bias, a constant ``False``, unknown flag, not adjacent, not a conv, not BN."""
        assert not self.found(f"""
            NO_BIAS = False
            def build(flag):
                return keras.Sequential([{first}, {second}])
        """)


class TestDropoutBeforeBatchNorm(_PluginCase):
    """``dropout-before-batchnorm`` (CNK109)."""

    def test_sequential_and_functional(self):
        """Positives; reported at the dropout layer."""
        assert self.found("""
            keras.Sequential([layers.Dense(8), layers.Dropout(0.5), layers.BatchNormalization()])
            def block(x):
                x = layers.SpatialDropout2D(0.2)(x)
                x = layers.BatchNormalization()(x)
                return x
        """) == [("dropout-before-batchnorm", 1, ("Dropout",)),
                 ("dropout-before-batchnorm", 3, ("SpatialDropout2D",))]

    @pytest.mark.parametrize("layers_", [
        "layers.Dropout(0.5), layers.Dense(10)",
        "layers.BatchNormalization(), layers.Dropout(0.5)",
        "layers.Dropout(0.0), layers.BatchNormalization()",
        "layers.Dropout(0.5), layers.ReLU(), layers.BatchNormalization()",
        "layers.AlphaDropout(0.1), layers.BatchNormalization()",
    ])
    def test_near_misses(self, layers_):
        """Dropout then Dense, BN then Dropout, rate 0, not adjacent, variance-keeping."""
        assert not self.found(f"keras.Sequential([{layers_}])")


class TestUnsafeModelLoad(_PluginCase):
    """``unsafe-model-load``."""

    def test_positives(self):
        """Keyword, positional, constant, imported name, tf.keras, switch, deserializer."""
        assert self.found("""
            import tensorflow as tf
            from keras.saving import load_model
            UNSAFE = False
            keras.models.load_model("m.keras", safe_mode=False)
            keras.saving.load_model("m.keras", None, True, False)
            load_model("m.keras", safe_mode=UNSAFE)
            tf.keras.models.load_model("m.keras", safe_mode=False)
            keras.config.enable_unsafe_deserialization()
            keras.saving.deserialize_keras_object({}, safe_mode=False)
        """) == [
            ("unsafe-model-load", 4, ("load_model(..., safe_mode=False)",)),
            ("unsafe-model-load", 5, ("load_model(..., safe_mode=False)",)),
            ("unsafe-model-load", 6, ("load_model(..., safe_mode=False)",)),
            ("unsafe-model-load", 7, ("load_model(..., safe_mode=False)",)),
            ("unsafe-model-load", 8, ("enable_unsafe_deserialization()",)),
            ("unsafe-model-load", 9, ("deserialize_keras_object(..., safe_mode=False)",)),
        ]

    def test_near_misses(self):
        """Safe mode on or default, not inferable, or another library's load_model."""
        assert not self.found("""
            from mylib import load_model
            def load(path, flag):
                keras.models.load_model(path, safe_mode=True)
                keras.saving.load_model(path)
                keras.saving.load_model(path, compile=False)
                keras.models.load_model(path, safe_mode=flag)
                load_model(path, safe_mode=False)
        """)


# --- end to end -----------------------------------------------------------------------

def test_pylint_run_reports_file_and_line(tmp_path, monkeypatch):
    """``pylint --load-plugins=lint_rules.pylint_plugin`` reports each symbol at file:line."""
    monkeypatch.syspath_prepend(str(REPO_ROOT))
    source = tmp_path / "model.py"
    source.write_text(textwrap.dedent("""\
        import keras
        from keras import layers

        model = keras.Sequential([
            keras.Input(shape=(16, 16, 64)),
            layers.Conv2D(64, 5, padding="same"),
            layers.BatchNormalization(),
            layers.Dropout(0.3),
            layers.BatchNormalization(),
            layers.Flatten(),
            layers.Dense(10),
        ])
        keras.models.load_model("m.keras", safe_mode=False)
    """))
    rcfile = tmp_path / "pylintrc"
    rcfile.write_text("[MAIN]\n")
    output = io.StringIO()
    Run([str(source), f"--rcfile={rcfile}", "--persistent=n",
         "--load-plugins=lint_rules.pylint_plugin", "--disable=all",
         f"--enable={','.join(SYMBOLS)}", "--msg-template={path}:{line}:{symbol}"],
        reporter=TextReporter(output), exit=False)
    reported = sorted(line for line in output.getvalue().splitlines() if line.startswith(str(
        source)))
    assert reported == sorted(f"{source}:{line}:{symbol}" for line, symbol in [
        (6, "large-kernel"), (6, "bias-before-batchnorm"), (8, "dropout-before-batchnorm"),
        (10, "flatten-dense-head"), (13, "unsafe-model-load")])
