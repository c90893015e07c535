"""Regenerate the README sections and the setup.cfg lines that are derived from code.

``python tools/gen_readme.py`` rewrites the README's rule table (from the rules'
docstrings), its precision table (from the corpus test's reviewed tables,
``tests/data/corpus/expected``) and setup.cfg's ``keras_cnnkit.lint_rules`` entry points
(from the rule modules, :func:`lint_rules.builtin_rules`); ``--check`` exits 1 when one
is out of date (the test suite runs that check).
``--builders`` also rebuilds the builders table: it builds every model (TensorFlow needed,
about a minute) and takes params and MACs from the linter's cost model.
"""
from __future__ import annotations

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SETUP_CFG = os.path.join(ROOT, "setup.cfg")
ENTRY_POINTS = ("# rules:start  generated from lint_rules/ by tools/gen_readme.py: do not edit",
                "# rules:end")
START, END = "<!-- rules:start -->", "<!-- rules:end -->"
BUILDERS = ("<!-- builders:start -->", "<!-- builders:end -->")
PRECISION = ("<!-- precision:start -->", "<!-- precision:end -->")
#: The corpus tables' sources, as the precision table's columns name them.
PRECISION_SOURCES = (("keras3", "keras.applications (Keras 3, 40)"),
                     ("tf_keras", "tf_keras (40 of 71 readable)"),
                     ("extra", "keras-hub / kimm (4)"),
                     ("onnx", "torchvision / timm ONNX (40)"))

#: builder → (keyword arguments, what it is checked against in tests/test_models_*.py).
BUILDER_ROWS = {
    "inception_v3": ({}, "= `keras.applications.InceptionV3`; its weights files load"),
    "densenet121": ({}, "= `DenseNet121`"),
    "densenet169": ({}, "= `DenseNet169`"),
    "densenet201": ({}, "= `DenseNet201`"),
    "mobilenet_v2": ({}, "= `MobileNetV2`, every alpha"),
    "mobilenet": ({}, "= `MobileNet`, every alpha"),
    "resnet50": ({}, "= `ResNet50`"),
    "resnet50_v2": ({}, "= `ResNet50V2`"),
    "vgg16": ({}, "= `VGG16`"),
    "xception": ({}, "= `Xception`"),
    "googlenet": ({}, "torchvision `googlenet` count, within 0.5%"),
    "shufflenet_v2_x1_0": ({}, "torchvision counts for 0.5×–2.0×, within 0.5%"),
    "se_resnet50": ({}, "SENet paper / timm `seresnet50` count, within 0.5%"),
    "alexnet": ({}, "torchvision `alexnet` count, within 0.5%"),
}


def first_reference(section: str) -> str:
    """The first item of a markdown list, its continuation lines joined."""
    item = []
    for line in section.splitlines():
        if line.lstrip().startswith(("- ", "* ")):
            if item:
                break
            item.append(line.lstrip()[2:].strip())
        elif item and line.strip():
            item.append(line.strip())
    return " ".join(item).replace("|", "\\|")


def rule_table() -> str:
    """The markdown rule table, from each rule's class attributes and docstring."""
    from keras_cnnkit.lint.registry import all_rules

    lines = ["| code | symbol | severity | fix | what it flags | reference |",
             "|---|---|---|---|---|---|"]
    for rule in all_rules():
        ref = first_reference(rule.docs().get("References", ""))
        lines.append(f"| `{rule.code}` | `{rule.symbol}` | {rule.severity} | "
                     f"{'yes' if rule.fixable else ''} | {rule.summary()} | {ref} |")
    return "\n".join(lines)


def precision_table() -> str:
    """Kept / reported findings per rule and corpus source, from the corpus test's tables
    (``tests/data/corpus/expected``)."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "corpus"))
    from expected import precision_counts
    from keras_cnnkit.lint.registry import all_rules

    counts = precision_counts()

    def cell(kept: int, reported: int) -> str:
        return f"{kept}/{reported} ({100 * kept / reported:.0f}%)" if reported else "–"

    lines = ["| rule | " + " | ".join(name for _, name in PRECISION_SOURCES) + " | all |",
             "|---|" + "---:|" * (len(PRECISION_SOURCES) + 1)]
    for rule in all_rules():
        per = counts.get(rule.symbol, {})
        cells = [cell(*per.get(source, (0, 0))) for source, _ in PRECISION_SOURCES]
        total = [sum(per.get(source, (0, 0))[i] for source, _ in PRECISION_SOURCES)
                 for i in (0, 1)]
        lines.append(f"| `{rule.code}` `{rule.symbol}` | " + " | ".join(cells)
                     + f" | {cell(*total)} |")
    return "\n".join(lines)


def builders_table() -> str:
    """The builders table: params (top, 1000 classes) and MACs at the default size."""
    from keras_cnnkit import lint
    from keras_cnnkit.models import create_model

    lines = ["| builder | params | MACs (input) | checked against |", "|---|---:|---:|---|"]
    for name, (kwargs, parity) in BUILDER_ROWS.items():
        model = create_model(name, weights=None, **kwargs)
        summary = lint(model, select=[]).summary
        size = model.inputs[0].shape[1]
        lines.append(f"| `{name}` | {model.count_params():,} | {summary.macs / 1e9:.3f} G "
                     f"({size}²) | {parity} |")
    return "\n".join(lines)


def _replace(text: str, markers: tuple, body: str) -> str:
    start, end = markers
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"no {start} ... {end} section")
    return pattern.sub(lambda _: f"{start}\n{body}\n{end}", text)


def render(text: str, builders: bool = False) -> str:
    """``text`` with the generated sections replaced (the builders table if asked)."""
    text = _replace(text, (START, END), rule_table())
    text = _replace(text, PRECISION, precision_table())
    return _replace(text, BUILDERS, builders_table()) if builders else text


def main(argv=None) -> int:
    """Rewrite README.md and setup.cfg, or with ``--check`` report whether they are current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--builders", action="store_true", help="rebuild the builders table")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from lint_rules import entry_points_text

    stale = []
    for path, make in ((README, lambda text: render(text, builders=args.builders)),
                       (SETUP_CFG, lambda text: _replace(text, ENTRY_POINTS,
                                                         entry_points_text()))):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        new = make(text)
        if new == text:
            continue
        stale.append(os.path.basename(path))
        if not args.check:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(new)
    if args.check and stale:
        print(f"{' and '.join(stale)} out of date: run python tools/gen_readme.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
