"""The pylint plugin takes its thresholds from the model linter's rules, and a pylint
option changes them."""
import io
import textwrap

from pylint.lint import Run
from pylint.reporters.text import TextReporter

from lint_rules.large_kernel import LargeKernel
from lint_rules.pylint_plugin import KerasModelChecker

SOURCE = textwrap.dedent("""\
    import keras
    from keras import layers
    x = keras.Input((32, 32, 64))
    y = layers.Conv2D(64, 5, padding="same", use_bias=False)(x)
    z = layers.Conv2D(64, 7, padding="same", use_bias=False)(y)
    """)


def _large_kernel_lines(tmp_path, *options) -> list:
    source = tmp_path / "model.py"
    source.write_text(SOURCE)
    rcfile = tmp_path / "empty.cfg"
    rcfile.write_text("")
    output = io.StringIO()
    Run([str(source), f"--rcfile={rcfile}", "--persistent=n",
         "--load-plugins=lint_rules.pylint_plugin", "--disable=all",
         "--enable=large-kernel", "--msg-template={line}", *options],
        reporter=TextReporter(output), exit=False)
    return sorted(int(line) for line in output.getvalue().splitlines() if line.isdigit())


def test_the_default_threshold_is_the_rules():
    option = dict(KerasModelChecker.options)["large-kernel-min-size"]
    assert option["default"] == LargeKernel.MIN_KERNEL == LargeKernel().min_kernel == 5


def test_the_threshold_is_a_pylint_option(tmp_path):
    # 5×5 and 7×7 convs 64→64: both save (25 vs 18, 49 vs 27 weights per channel pair)
    assert _large_kernel_lines(tmp_path) == [4, 5]
    assert _large_kernel_lines(tmp_path, "--large-kernel-min-size=7") == [5]
    assert _large_kernel_lines(tmp_path, "--large-kernel-min-size=9") == []
