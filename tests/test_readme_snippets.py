"""Every ``python`` and ``bash`` block of README.md and docs/*.md runs, as a reader would.

The blocks of one document run in order, in one scratch directory that holds a copy of
``examples/`` (see ``tools/readme_snippets.py``): a later block may use a file an earlier
one wrote (``m.keras``).  A block ends with the exit status it is marked with (0 unless
``<!-- exit: N -->``); its ``<!-- output -->`` block, if any, is exactly what it prints
(regenerate with ``python tools/gen_readme.py --outputs``).  Blocks marked
``<!-- notest: REASON -->`` are not run, and every such mark carries a reason.
"""
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import readme_snippets  # noqa: E402  pylint: disable=wrong-import-position,import-error

DOCUMENTS = [d for d in readme_snippets.DOCUMENTS
             if any(b.runner for b in readme_snippets.parse(d))]
#: TensorFlow's start-up lines, which our commands keep off stderr (Python blocks import
#: Keras themselves, as a user's script does, and are not held to it).
TF_STARTUP = re.compile(r"oneDNN|cudart_stub|absl::InitializeLog|cpu_feature_guard|cuInit")


def test_every_code_block_is_run_or_says_why_not():
    """A python/bash block is run unless marked notest with a reason; the README's two
    opening commands are the runnable first and the marked test command."""
    blocks = readme_snippets.all_blocks()
    code = [b for b in blocks if b.lang in readme_snippets.RUNNABLE and not b.is_output]
    assert code, "no blocks found"
    for block in code:
        assert block.runner or block.notest, block.where
    skipped = [b for b in code if b.notest]
    # the test suite, tox, an excerpt; docs/distribution.md's JAX example (run as written
    # by tox -e jax-dist), its tf.distribute fragment and its GPU benchmark command
    assert len(skipped) <= 6, [b.where for b in skipped]
    first, second = [b for b in blocks if b.document == "README.md"][:2]
    assert first.runner == "bash" and first.exit == 1
    assert readme_snippets.command(first) == "cnnkit-lint examples/models/inefficient_cnn.h5"
    assert second.notest and "pytest" in second.code


@pytest.mark.parametrize("document", DOCUMENTS)
def test_document_blocks_run(document, tmp_path):
    """Each runnable block of ``document`` exits as marked and prints its output block."""
    env = readme_snippets.workspace(tmp_path)
    for block in readme_snippets.parse(document):
        if block.runner is None:
            continue
        proc = readme_snippets.run(block, tmp_path, env)
        assert proc.returncode == block.exit, (
            f"{block.where}: exit status {proc.returncode}, expected {block.exit}\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        if block.runner == "bash":
            assert not TF_STARTUP.search(proc.stderr), f"{block.where}: {proc.stderr[-2000:]}"
        if block.output is not None:
            assert readme_snippets.normalise(proc.stdout) == \
                readme_snippets.normalise(block.output.code), (
                    f"{block.where}: output differs from {block.output.where}; run "
                    "python tools/gen_readme.py --outputs")
