"""The README stays true: its generated rule table and its test command match the code."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as fh:
        return fh.read()


def test_rule_table_is_generated_from_the_rule_docstrings():
    """``tools/gen_readme.py --check`` passes: nobody edited the table by hand."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_readme.py"),
                           "--check"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_ci_runs_the_readme_test_command():
    """Every command of ``.ci/run`` appears verbatim in the README, the README's test
    command (its second code block) first."""
    lines = [line.strip() for line in _read(".ci", "run").splitlines()
             if line.strip() and not line.lstrip().startswith(("#", "set ", "cd ", "export "))]
    readme = _read("README.md")
    assert all(line in readme for line in lines)
    assert lines[0] == readme.split("```bash\n")[2].split("```")[0].strip()


def test_readme_opens_with_the_two_commands():
    """The first two code blocks are the install-and-lint and install-and-test commands."""
    blocks = _read("README.md").split("```bash\n")[1:3]
    first, second = (block.split("```")[0].strip() for block in blocks)
    assert "cnnkit-lint examples/models/" in first and "pip install" in first
    assert "pytest" in second and "pip install" in second
