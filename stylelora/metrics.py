"""RUN/metrics.jsonl: one JSON object per line, flushed as it happens, for people and programs.

Events: `start` (steps, resumed_from), `step` (step, loss, diffusion, style, grad_norm, lr, it_s),
`validation` (step, heldout_style, images), `checkpoint` (step, path), `end`. `tail -f` or
`build.py logs` follow it; bakery's `status` reads the last `step` line. On resume, lines past
the checkpoint's step (written after it, before the kill) are dropped so the file tells one story.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

METRICS_FILE = "metrics.jsonl"


class MetricsLog:
    """Appends events to RUN/metrics.jsonl; a no-op on processes that do not write."""

    def __init__(self, run: Path, enabled: bool) -> None:
        self.path = run / METRICS_FILE
        self.stream: IO[str] | None = None
        if enabled:
            self.stream = self.path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        if self.stream is None:
            return
        self.stream.write(json.dumps({"event": event, **fields}, sort_keys=True) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every whole line of a metrics file (a line cut short by a kill is skipped)."""
    events = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def truncate_after(path: Path, step: int) -> None:
    """Keep only the events up to `step` (rewritten atomically)."""
    if not path.exists():
        return
    kept = [e for e in read_events(path) if int(e.get("step", 0)) <= step]
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in kept), "utf-8")
    os.replace(partial, path)
