"""A minimal progress bar on stderr, silent when stderr is not a terminal."""
from __future__ import annotations

import sys
from typing import Optional, TextIO


class Progress:
    """``[#####.....] 5/10 label`` redrawn in place.

    Args:
        total: number of steps.
        stream: where to draw (default ``sys.stderr``).
        enabled: force on/off; ``None`` draws only when ``stream`` is a TTY.
        width: bar width in characters.
    """

    def __init__(self, total: int, stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = None, width: int = 24):
        self.total = max(1, int(total))
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.width = width
        self.done = 0

    def step(self, label: str = "") -> None:
        """Advance by one and redraw."""
        self.done = min(self.total, self.done + 1)
        self.draw(label)

    def draw(self, label: str = "") -> None:
        """Redraw the bar (no-op when disabled)."""
        if not self.enabled:
            return
        filled = self.width * self.done // self.total
        drawn = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{drawn}] {self.done}/{self.total} {label[:48]:<48}")
        self.stream.flush()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
