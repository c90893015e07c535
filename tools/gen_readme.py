"""Regenerate the README sections and the setup.cfg lines that are derived from code.

``python tools/gen_readme.py`` rewrites, in README.md, the rule table (from the rules'
docstrings), its precision table (from the corpus test's reviewed tables,
``tests/data/corpus/expected``), the ``cnnkit-lint`` usage (from its argument parser), the configuration
example (``examples/config/pyproject.toml``), the JSON output description (from the JSON
Schema ``keras_cnnkit/schemas/lint-report.schema.json``) and the list of SARIF rules
checked (``tools/sarif_github_rules.py``); and setup.cfg's ``keras_cnnkit.lint_rules``
entry points (from the rule modules, :func:`lint_rules.builtin_rules`).  ``--check``
exits 1 when one is out of date (the test suite runs that check).
``--outputs`` also reruns every runnable block of README.md and docs/*.md
(``tools/readme_snippets.py``) and writes their ``<!-- output -->`` blocks (TensorFlow
needed, a minute or two; ``tests/test_readme_snippets.py`` compares them).
``--builders`` also rebuilds the builders table: it builds every model (TensorFlow needed,
about a minute) and takes params and MACs from the linter's cost model.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ["COLUMNS"] = "100"   # argparse wraps the usage text at the terminal width
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
SETUP_CFG = os.path.join(ROOT, "setup.cfg")
CONFIG_EXAMPLE = os.path.join(ROOT, "examples", "config", "pyproject.toml")
ENTRY_POINTS = ("# rules:start  generated from lint_rules/ by tools/gen_readme.py: do not edit",
                "# rules:end")
START, END = "<!-- rules:start -->", "<!-- rules:end -->"
BUILDERS = ("<!-- builders:start -->", "<!-- builders:end -->")
PRECISION = ("<!-- precision:start -->", "<!-- precision:end -->")
#: The corpus tables' sources, as the precision table's columns name them.
PRECISION_SOURCES = (("keras3", "keras.applications (Keras 3, 40)"),
                     ("tf_keras", "tf_keras (71)"),
                     ("extra", "keras-hub / kimm (12)"),
                     ("onnx", "torchvision / timm ONNX (40)"))
USAGE = ("<!-- usage:start -->", "<!-- usage:end -->")
CONFIG = ("<!-- config:start -->", "<!-- config:end -->")
JSON_SCHEMA = ("<!-- json-schema:start -->", "<!-- json-schema:end -->")
SARIF_RULES = ("<!-- sarif-rules:start -->", "<!-- sarif-rules:end -->")

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


def usage_text() -> str:
    """``cnnkit-lint``'s usage lines, as ``--help`` prints them."""
    from keras_cnnkit.lint.cli import build_parser

    return "```text\n" + build_parser().format_usage().strip() + "\n```"


def config_text() -> str:
    """The configuration example, verbatim from its (tested) file."""
    with open(CONFIG_EXAMPLE, encoding="utf-8") as handle:
        return "```toml\n" + handle.read().strip() + "\n```"


def _type_text(node: dict) -> str:
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    kinds = node.get("type", "object")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "array" in kinds and isinstance(node.get("items"), dict):
        items = node["items"]
        inner = "object" if "properties" in items or "$ref" in items else \
            items.get("type", "any")
        return f"array of {inner}"
    return " or ".join(kinds)


def schema_rows(schema: dict) -> list:
    """``(key path, type, description)`` of every key the schema describes, depth first."""
    defs = schema.get("$defs", {})

    def resolve(node: dict) -> dict:
        if "$ref" in node:
            target = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
            target.update({k: v for k, v in node.items() if k != "$ref"})
            return resolve(target)
        return node

    rows = []

    def walk(node: dict, path: str) -> None:
        required = set(node.get("required", ()))
        for key, sub in node.get("properties", {}).items():
            sub = resolve(sub)
            here = f"{path}.{key}" if path else key
            text = " ".join(sub.get("description", "").split())
            if key not in required and not text.startswith("Optional"):
                text = f"Optional. {text}".strip()
            rows.append((here, _type_text(sub), text.replace("|", "\\|")))
            if "properties" in sub:
                walk(sub, here)
            items = resolve(sub.get("items", {})) if isinstance(sub.get("items"), dict) else {}
            if "properties" in items:
                walk(items, f"{here}[]")

    walk(schema, "")
    return rows


def json_schema_text() -> str:
    """The README's JSON output table, from the shipped schema."""
    sys.path.insert(0, ROOT)
    from keras_cnnkit.lint.formatters import json_schema

    schema = json_schema()
    lines = [f"Schema version {schema['properties']['schema_version']['const']}. "
             + " ".join(schema.get("description", "").split()), "",
             "| key | type | meaning |", "|---|---|---|"]
    lines += [f"| `{path}` | {kind} | {text} |" for path, kind, text in schema_rows(schema)]
    return "\n".join(lines)


def sarif_rules_text() -> str:
    """The list of GitHub SARIF rules the tests check."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from sarif_github_rules import markdown_list

    return markdown_list()


def run_outputs(text: str, document: str) -> str:
    """``text`` (the document ``document``) with every ``<!-- output -->`` block replaced
    by what the runnable block before it prints (blocks run in order, in one scratch
    directory, as the test runs them)."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import readme_snippets

    blocks = readme_snippets.parse(document, text)
    replacements = []
    with tempfile.TemporaryDirectory() as scratch:
        env = readme_snippets.workspace(Path(scratch))
        for block in blocks:
            if block.runner is None:
                continue
            proc = readme_snippets.run(block, Path(scratch), env)
            if proc.returncode != block.exit:
                raise SystemExit(f"{block.where}: exit status {proc.returncode}, expected "
                                 f"{block.exit}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}")
            if block.output is not None:
                out = readme_snippets.normalise(proc.stdout)
                replacements.append((block.output.start, block.output.end,
                                     out + "\n" if out else ""))
    for start, end, body in reversed(replacements):
        text = text[:start] + body + text[end:]
    return text


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
    for markers, make in ((USAGE, usage_text), (CONFIG, config_text),
                          (JSON_SCHEMA, json_schema_text), (SARIF_RULES, sarif_rules_text)):
        text = _replace(text, markers, make())
    return _replace(text, BUILDERS, builders_table()) if builders else text


def main(argv=None) -> int:
    """Rewrite README.md and setup.cfg, or with ``--check`` report whether they are current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--builders", action="store_true", help="rebuild the builders table")
    parser.add_argument("--outputs", action="store_true",
                        help="rerun the README's and docs' blocks and write their outputs")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from lint_rules import entry_points_text

    def readme(text: str) -> str:
        text = render(text, builders=args.builders)
        return run_outputs(text, "README.md") if args.outputs else text

    targets = [(README, readme),
               (SETUP_CFG, lambda text: _replace(text, ENTRY_POINTS, entry_points_text()))]
    if args.outputs:
        docs = sorted(Path(ROOT, "docs").glob("*.md"))
        targets += [(str(doc), lambda text, doc=doc: run_outputs(text, f"docs/{doc.name}"))
                    for doc in docs]
    stale = []
    for path, make in targets:
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
