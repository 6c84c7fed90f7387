"""A one-line progress bar on a terminal, periodic log lines otherwise (CI logs, `docker logs`)."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

log = logging.getLogger(__name__)

BAR_WIDTH = 24
REDRAW_SECONDS = 0.2
LOG_LINES = 20  # on a non-terminal, about this many lines per run


class Progress:
    """Steps, both loss terms, it/s and the time left."""

    def __init__(
        self, total: int, enabled: bool = True, stream: TextIO | None = None, first: int = 0
    ) -> None:
        self.total = total
        self.first = first  # steps done before this process started (a resumed run)
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.tty = self.stream.isatty()
        self.every = max(1, total // LOG_LINES)
        self.start = time.perf_counter()
        self.drawn = 0.0

    def update(self, step: int, loss: float, diffusion: float, style: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        rate = self.rate(step)
        text = (
            f"step {step}/{self.total} | loss {loss:.4f} (diffusion {diffusion:.4f}, "
            f"style {style:.4f}) | {rate:.2f} it/s | {format_seconds((self.total - step) / rate)} left"
        )
        if self.tty and (now - self.drawn >= REDRAW_SECONDS or step == self.total):
            done = BAR_WIDTH * step // self.total
            self.stream.write(f"\r[{'#' * done}{'.' * (BAR_WIDTH - done)}] {text}\x1b[K")
            self.stream.flush()
            self.drawn = now
        elif not self.tty and (step % self.every == 0 or step == self.total):
            log.info("%s", text)

    def rate(self, step: int) -> float:
        """Steps per second since this process started."""
        return (step - self.first) / max(time.perf_counter() - self.start, 1e-9)

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def format_seconds(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
