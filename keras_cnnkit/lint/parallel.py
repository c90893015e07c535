"""``cnnkit-lint -j N``: lint many model files in parallel worker processes.

The per-file work is the command line's own (``cli.lint_path``, handed in as a picklable
callable); this module only schedules it.  The guarantees:

* **Same output.**  Workers return each file's :class:`~keras_cnnkit.lint.formatters.
  FileResult` (its findings, summary or one-line error); :func:`lint_paths` yields them
  in input order, and the parent prints errors and formats the report from them exactly
  as a serial run does, so stdout, stderr and the exit status are byte-for-byte the
  serial run's, in every output format.
* **Error isolation per file.**  A bad file is an error of that file (``lint_path``
  catches it in the worker).  A worker that dies (a crash in a C extension, the kernel's
  OOM killer, the memory limit hit outside Python) breaks the pool: the files it was
  linting are linted again, each alone in a fresh worker, so that only a file that
  kills its worker again is reported, as an error of that file; the others' results
  stand.
* **Bounded memory.**  Each worker limits its own address space with
  ``resource.setrlimit(RLIMIT_AS)`` (:func:`memory_limit`: an equal share of the
  machine's memory, at least :data:`MIN_MEMORY_LIMIT`; ``CNNKIT_LINT_WORKER_MEMORY_MB``
  overrides), so a huge or hostile file fails with "out of memory" instead of taking
  the machine; and a worker is replaced after :data:`MAX_TASKS_PER_CHILD` files, so
  nothing accumulates.
* **No hung workers.**  Workers are started with ``spawn`` (no inherited locks or
  threads), ignore Ctrl-C (the parent handles it and terminates them), and are joined
  before :func:`lint_paths` returns.

``-j 1``, or a single file, lints in-process as before; ``-j 0`` means one worker per
CPU available to this process.  Larger files are handed out first, so that one big
model does not finish last on its own.
"""
from __future__ import annotations

import argparse
import os
import pickle
import signal
from typing import Callable, Iterator, Optional, Sequence

from keras_cnnkit.errors import ConfigError
from keras_cnnkit.lint.formatters import FileResult

#: Files a worker lints before it is replaced by a fresh process.
MAX_TASKS_PER_CHILD = 64
#: The smallest per-worker address-space limit: Python, NumPy and h5py map a few hundred
#: MiB before linting anything.
MIN_MEMORY_LIMIT = 1 << 30
#: Environment variable overriding the per-worker memory limit, in MiB (0: no limit).
MEMORY_ENV = "CNNKIT_LINT_WORKER_MEMORY_MB"

_LINT_ONE: Optional[Callable] = None
_STARTED = None


def jobs_argument(text: str) -> int:
    """``-j/--jobs`` values for argparse: a non-negative integer."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def worker_count(jobs: int, n_paths: int) -> int:
    """Workers for ``-j jobs`` over ``n_paths`` files (``0``: one per CPU)."""
    return max(1, min(jobs or cpu_count(), n_paths))


def memory_limit(workers: int) -> Optional[int]:
    """The address-space limit per worker in bytes, or ``None`` for none.

    ``CNNKIT_LINT_WORKER_MEMORY_MB`` if set (``0``: no limit); else the physical
    memory divided among the workers, at least :data:`MIN_MEMORY_LIMIT`.  ``None``
    where the platform cannot limit it (no ``resource`` module).
    """
    try:
        import resource  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    except ImportError:
        return None
    override = os.environ.get(MEMORY_ENV, "").strip()
    if override:
        if not override.isdigit():
            raise ConfigError(MEMORY_ENV, f"not a number of MiB: {override!r}")
        return int(override) << 20 or None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return max(MIN_MEMORY_LIMIT, total // workers)


def _init_worker(lint_one: bytes, limit: Optional[int], started) -> None:
    """Worker set-up: ignore Ctrl-C, one BLAS thread, the memory limit, the lint task."""
    global _LINT_ONE, _STARTED  # pylint: disable=global-statement
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Each worker is one of N processes: threaded BLAS pools would oversubscribe the
    # CPUs and reserve address space per thread.  Set before NumPy is imported.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if limit is not None:
        import resource  # pylint: disable=import-outside-toplevel

        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    _LINT_ONE = pickle.loads(lint_one)
    _STARTED = started


def _lint_task(index: int, path: str):
    """Run in a worker: report the start of file ``index``, then lint it."""
    _STARTED.put(index)  # written to the pipe before linting begins
    return _LINT_ONE(path)


def _limit_text(limit: Optional[int]) -> str:
    return f"the {limit >> 20} MiB per-worker memory limit" if limit else "the memory"


def _died(path: str, limit: Optional[int]) -> FileResult:
    return FileResult(path, error="the worker process linting this file died (crashed or "
                                  f"was killed; it may need more than {_limit_text(limit)}, "
                                  f"see {MEMORY_ENV})")


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class _Pool:
    """A spawn ``ProcessPoolExecutor`` running the lint task; it records which files
    its workers started, to tell after a crash which file may be at fault."""

    def __init__(self, workers: int, lint_one: bytes, limit: Optional[int]):
        import multiprocessing  # pylint: disable=import-outside-toplevel
        from concurrent.futures import ProcessPoolExecutor  # pylint: disable=import-outside-toplevel

        context = multiprocessing.get_context("spawn")
        self.workers = workers
        self._started = context.SimpleQueue()
        self._begun: set = set()
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(lint_one, limit, self._started),
            max_tasks_per_child=MAX_TASKS_PER_CHILD)

    def run(self, paths: Sequence[str], indices: list) -> Iterator:
        """``(index, result)`` for ``indices`` as they finish; ``result`` is ``None``
        for the files lost with a dead worker (see :meth:`started`).

        At most one file per worker is submitted at a time: with a backlog queued,
        ``ProcessPoolExecutor`` deadlocks once a worker retires at
        ``max_tasks_per_child`` (CPython gh-115634, Python 3.11 to 3.15b3).
        """
        from concurrent.futures import FIRST_COMPLETED, wait  # pylint: disable=import-outside-toplevel
        from concurrent.futures.process import BrokenProcessPool  # pylint: disable=import-outside-toplevel

        queue = list(reversed(indices))
        futures: dict = {}
        while queue or futures:
            while queue and len(futures) < self.workers:
                i = queue.pop()
                try:
                    futures[self.executor.submit(_lint_task, i, paths[i])] = i
                except BrokenProcessPool:
                    yield i, None
            if not futures:
                continue
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            self._drain()  # at most one start per worker since the last completion
            for future in done:
                i = futures.pop(future)
                try:
                    yield i, future.result()
                except BrokenProcessPool:
                    yield i, None

    def _drain(self) -> None:
        while not self._started.empty():
            self._begun.add(self._started.get())

    def started(self) -> set:
        """The indices of the files the workers began."""
        self._drain()
        return set(self._begun)

    def close(self, abort: bool = False) -> None:
        """Join the workers; with ``abort`` (Ctrl-C, an error) terminate them first."""
        if abort:
            # ProcessPoolExecutor has no public way to stop running tasks before 3.14.
            processes = getattr(self.executor, "_processes", None) or {}
            for process in list(processes.values()):
                process.terminate()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self._started.close()


def lint_paths(paths: Sequence[str], lint_one: Callable, jobs: int) -> Iterator:
    """Lint ``paths`` with ``lint_one(path) -> result`` in ``jobs`` worker processes.

    Args:
        paths: the files, in the order the results are yielded.
        lint_one: a picklable callable (a module-level function or a
            ``functools.partial`` of one) returning the file's
            :class:`~keras_cnnkit.lint.formatters.FileResult`, its own errors included.
        jobs: the number of workers; ``0`` for one per CPU, ``1`` to lint in-process.

    Yields:
        One result per path, in input order.

    Raises:
        ConfigError: the worker processes die before linting anything (a memory
            limit too small for Python to start, say).
    """
    workers = worker_count(jobs, len(paths))
    if workers == 1:
        for path in paths:
            yield lint_one(path)
        return
    task = pickle.dumps(lint_one)
    limit = memory_limit(workers)
    results: dict = {}
    next_out = 0
    # Larger files first, so that a big model does not run last on its own.
    pending = sorted(range(len(paths)), key=lambda i: -_size(paths[i]))
    while pending:
        lost, pool = [], _Pool(min(workers, len(pending)), task, limit)
        try:
            for i, result in pool.run(paths, pending):
                if result is None:
                    lost.append(i)
                    continue
                results[i] = result
                while next_out in results:
                    yield results.pop(next_out)
                    next_out += 1
            started = pool.started()
        except BaseException:
            pool.close(abort=True)
            raise
        pool.close()
        if lost and len(lost) == len(pending) and not started:
            raise ConfigError("--jobs", "the worker processes died before linting any file "
                                        f"(is {_limit_text(limit)} too small? see "
                                        f"{MEMORY_ENV})")
        # A dead worker fails every unfinished file: those it never began go to the
        # next pool; each begun one is linted alone, to find the one at fault.
        pending = [i for i in lost if i not in started]
        for i in (i for i in lost if i in started):
            alone = _Pool(1, task, limit)
            try:
                [(_, result)] = list(alone.run(paths, [i]))
            except BaseException:
                alone.close(abort=True)
                raise
            alone.close()
            results[i] = result if result is not None else _died(paths[i], limit)
        while next_out in results:
            yield results.pop(next_out)
            next_out += 1
