"""Progress bars on stderr for the long-running commands (``rich.progress``).

One helper for every command and example that runs long: ``cnnkit-lint --benchmark``
and ``--fix``, ``cnnkit-export``, the examples' training loops, and any later mode::

    from keras_cnnkit.progress import Progress

    with Progress(len(items), "benchmark") as meter:
        for item in items:
            meter.step(str(item))      # step `item` begins; the ones before are done
            work(item)

A bar is drawn only where a person watches: when its stream (default ``sys.stderr``) is
a terminal and nobody asked for quiet (:func:`set_quiet`, which the commands' ``-q``
calls).  Off a terminal (CI logs, pipes, files) nothing is written at all, so output
that is parsed stays clean; stdout is never written.  Drawing is ``rich``'s (a Keras
dependency, so it is always installed); it is imported only when a bar is drawn.
"""
from __future__ import annotations

import io
import os
import sys
from typing import Optional, TextIO

_QUIET = False


def set_quiet(quiet: bool = True) -> None:
    """Turn every progress bar of this process off (``-q``) or back on."""
    global _QUIET  # pylint: disable=global-statement
    _QUIET = bool(quiet)


def is_interactive(stream: Optional[TextIO] = None) -> bool:
    """Whether a bar would be drawn on ``stream`` (default stderr): a terminal, not quiet."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return not _QUIET and bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """A bar of ``total`` steps named ``description``, with the current step's label.

    Args:
        total: number of steps (at least 1).
        description: what the whole bar is about (``"benchmark"``).
        stream: where to draw (default ``sys.stderr``).
        enabled: force drawing on or off; ``None`` draws only where
            :func:`is_interactive` says so.

    :meth:`step` begins a step and counts the steps before it as done; :meth:`advance`
    adds a fraction of one (a training batch); :meth:`close` (or leaving the ``with``
    block) completes the bar.  Disabled, every method is a no-op but the counting.
    """

    def __init__(self, total: int, description: str = "", stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = None):
        self.total = max(1, int(total))
        self.description = description
        self.stream = sys.stderr if stream is None else stream
        self.enabled = is_interactive(self.stream) if enabled is None else bool(enabled)
        self.done = 0.0
        self.started = 0
        self._bar = None
        self._task = None
        self._own: Optional[TextIO] = None

    def __enter__(self) -> "Progress":
        self._start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(completed=exc_type is None)

    def _start(self) -> None:
        if not self.enabled or self._bar is not None:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, TextColumn,
                                   TimeElapsedColumn)
        from rich.progress import Progress as RichProgress

        console = Console(file=self._terminal(), force_terminal=True, highlight=False)
        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("{task.fields[label]}"), console=console,
                                 refresh_per_second=4, redirect_stdout=False)
        self._task = self._bar.add_task(self.description, total=self.total, label="")
        self._bar.start()

    def _terminal(self) -> TextIO:
        """Where the bar is drawn: for the process's stderr, a duplicate of its file
        descriptor, so that :func:`keras_cnnkit.console.import_keras` (which points
        descriptor 2 at a file while TensorFlow loads, to filter its start-up lines)
        does not capture the bar's redraws."""
        try:
            if self.stream is sys.stderr and self.stream.fileno() == 2:
                encoding = getattr(self.stream, "encoding", None) or "utf-8"
                self._own = os.fdopen(os.dup(2), "w", encoding=encoding, errors="replace")
                return self._own
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            pass
        return self.stream

    def _draw(self, label: Optional[str] = None) -> None:
        self._start()
        if self._bar is None:
            return
        fields = {} if label is None else {"label": label[:60]}
        self._bar.update(self._task, completed=min(self.done, self.total), **fields)

    def step(self, label: str = "") -> None:
        """Step ``label`` begins: the steps begun before it count as done."""
        self.done = float(self.started)
        self.started = min(self.total, self.started + 1)
        self._draw(label)

    def advance(self, amount: float = 1.0, label: Optional[str] = None) -> None:
        """Count ``amount`` more of a step as done (fractions for batches of an epoch)."""
        self.done = min(float(self.total), self.done + amount)
        self._draw(label)

    def close(self, completed: bool = True) -> None:
        """Finish the bar's line: complete (``completed``), or left where an error
        stopped it."""
        if completed:
            self.done = float(self.total)
        if self._bar is not None:
            if completed:
                self._bar.update(self._task, completed=self.total, label="done")
            self._bar.stop()
            self._bar = None
        if self._own is not None:
            self._own.close()
            self._own = None

    def keras_callback(self, epochs: int):
        """A ``keras.callbacks.Callback`` that moves this bar by one step per ``fit``:
        each of its ``epochs`` epochs is ``1/epochs`` of a step, advanced batch by
        batch.  Imports Keras (only for the callback's base class)."""
        import keras

        owner = self

        class _FitProgress(keras.callbacks.Callback):
            """Advances the bar as training batches end."""

            def __init__(self):
                super().__init__()
                self.share = 1.0 / max(1, epochs)

            def on_epoch_begin(self, epoch, logs=None):  # pylint: disable=unused-argument
                """Show the epoch."""
                owner.advance(0.0, f"epoch {epoch + 1}/{epochs}")

            def on_train_batch_end(self, batch, logs=None):  # pylint: disable=unused-argument
                """One batch of an epoch done."""
                steps = (self.params or {}).get("steps") or 1
                owner.advance(self.share / steps)

        return _FitProgress()
