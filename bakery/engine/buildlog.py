"""What a plain BuildKit progress log (`--progress plain`) says, read line by line as it arrives.

The steps a build ran or took from the cache, the failing step's output and error, and the
names shown while a build runs. Pure parsing: nothing here runs docker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_VERTEX_LINE = re.compile(r"^#(\d+) (.*)$")
_STEP_NAME = re.compile(r"^\[(?:[^\]]* )?\d+/\d+\] (?P<instruction>\S+)")
_OUTPUT_LINE = re.compile(r"^\d+\.\d+ (.*)$")
_STATUS = re.compile(r"^(DONE|CACHED|ERROR|CANCELED)\b:?\s*(.*)$")


@dataclass
class _Vertex:
    name: str
    status: str = ""
    error: str = ""
    output: list[str] = field(default_factory=list)

    @property
    def is_step(self) -> bool:
        match = _STEP_NAME.match(self.name)
        return match is not None and match.group("instruction").upper() != "FROM"


@dataclass
class BuildLog:
    """What a plain BuildKit progress log says, read line by line as it arrives."""

    vertices: dict[int, _Vertex] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # top-level "ERROR: ..." lines

    def feed(self, line: str) -> str | None:
        """Take one log line; return a step name when a new Dockerfile step starts."""
        match = _VERTEX_LINE.match(line)
        if match is None:
            if line.startswith("ERROR:"):
                self.errors.append(line)
            return None
        number, rest = int(match.group(1)), match.group(2)
        vertex = self.vertices.get(number)
        if vertex is None:
            self.vertices[number] = vertex = _Vertex(name=rest)
            return rest if vertex.is_step else None
        if rest == vertex.name:
            return None
        status = _STATUS.match(rest)
        if status is not None:
            vertex.status = status.group(1)
            vertex.error = status.group(2) if vertex.status == "ERROR" else vertex.error
            return None
        output = _OUTPUT_LINE.match(rest)
        if output is not None:
            vertex.output.append(output.group(1))
        return None

    def steps(self) -> list[_Vertex]:
        return [vertex for vertex in self.vertices.values() if vertex.is_step]

    def failed(self) -> _Vertex | None:
        return next((v for v in self.vertices.values() if v.status == "ERROR"), None)


@dataclass(frozen=True)
class BuildOutcome:
    image_id: str
    steps_total: int  # Dockerfile steps (`#N [stage 3/9] RUN ...`), FROM lines excluded
    steps_cached: int
    steps_run: tuple[str, ...]  # names of the steps that executed, e.g. "[2/3] RUN make"
    seconds: float
    log_path: Path


def short_step_name(name: str, width: int = 72) -> str:
    """One line of at most `width` characters for a live progress display."""
    flat = " ".join(name.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def summarize_build(log: BuildLog, image_id: str, seconds: float, path: Path) -> BuildOutcome:
    steps = log.steps()
    return BuildOutcome(
        image_id=image_id,
        steps_total=len(steps),
        steps_cached=sum(1 for step in steps if step.status == "CACHED"),
        steps_run=tuple(step.name for step in steps if step.status == "DONE"),
        seconds=seconds,
        log_path=path,
    )
