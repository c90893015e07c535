"""The package's import direction: downward only, as setup.cfg's import-linter contracts
say and the README's package diagram draws."""
import configparser
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _layers() -> list:
    """setup.cfg's layers, top to bottom, each a set of module names."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"), encoding="utf-8")
    text = parser["importlinter:contract:layers"]["layers"]
    return [{m.strip() for m in line.split("|")} for line in text.splitlines() if line.strip()]


def test_imports_point_downward_only():
    """import-linter, run on this checkout: every contract in setup.cfg is kept."""
    pytest.importorskip("importlinter")
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='setup.cfg', no_cache=True))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "2 kept, 0 broken" in proc.stdout


def test_a_reversed_import_breaks_the_contract(tmp_path):
    """The check has teeth: the report layer importing the benchmark (the old
    ``lint → bench`` edge) is reported as broken."""
    pytest.importorskip("importlinter")
    probe = tmp_path / "src"
    for package in ("keras_cnnkit", "lint_rules"):
        shutil.copytree(os.path.join(ROOT, package), probe / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "setup.cfg"), probe)
    report = probe / "keras_cnnkit" / "lint" / "report.py"
    report.write_text(report.read_text(encoding="utf-8")
                      + "\nfrom keras_cnnkit.bench import harness as _upward\n",
                      encoding="utf-8")
    code = ("import sys; from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename='setup.cfg', no_cache=True))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=probe, capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(probe)})
    assert proc.returncode == 1
    assert "keras_cnnkit.lint.report -> keras_cnnkit.bench.harness" in proc.stdout


def test_readme_diagram_has_the_contract_layers():
    """The README's layer table lists setup.cfg's layers, in the same order."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    block = readme.split("<!-- layers:start -->")[1].split("<!-- layers:end -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| ")][1:]
    cells = [re.split(r"(?<!\\)\|", row)[1] for row in rows]   # "\|" inside a cell
    drawn = [set(re.findall(r"`([a-z_.]+)`", cell)) for cell in cells]
    assert drawn == _layers()
