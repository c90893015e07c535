"""Regenerate the README sections that are derived from code (the rule table).

Run ``python tools/gen_readme.py`` after changing a rule's docstring; ``--check`` exits 1
when README.md is out of date (the test suite runs that check).
"""
from __future__ import annotations

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
START, END = "<!-- rules:start -->", "<!-- rules:end -->"


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


def render(text: str) -> str:
    """``text`` with the rule table between the markers replaced."""
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} ... {END} section")
    return pattern.sub(lambda _: f"{START}\n{rule_table()}\n{END}", text)


def main(argv=None) -> int:
    """Rewrite README.md, or with ``--check`` report whether it is current."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    with open(README, encoding="utf-8") as fh:
        text = fh.read()
    new = render(text)
    if args.check:
        if new != text:
            print("README.md is out of date: run python tools/gen_readme.py", file=sys.stderr)
            return 1
        return 0
    with open(README, "w", encoding="utf-8") as fh:
        fh.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
