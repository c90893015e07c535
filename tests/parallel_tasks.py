"""Lint tasks for the worker-pool tests: module-level (workers import them by name) and
light to import (a worker imports this module, not the test module)."""
import mmap
import os

from keras_cnnkit.lint.formatters import FileResult


def lint_or_crash(path: str) -> FileResult:
    """A lint task whose worker dies on files named ``crash*``."""
    if os.path.basename(path).startswith("crash"):
        os._exit(70)  # pylint: disable=protected-access
    return FileResult(path, error=f"linted {os.path.basename(path)}")


def reserve_3_gib(path: str) -> FileResult:
    """A lint task that maps 3 GiB of address space (untouched, so it costs no RAM)."""
    try:
        block = mmap.mmap(-1, 3 << 30)
    except (MemoryError, OSError):
        return FileResult(path, error="out of memory")
    block.close()
    return FileResult(path, error="mapped 3 GiB")
