"""The benchmark harness: samples, medians, ratios, interleaving, machine facts, result files.

Every comparison is between a *baseline* (what users do today) and *bakery*. The ratio is always
reported as ``baseline / bakery`` of a lower-is-better metric (seconds, bytes, steps re-run), so a
ratio above 1 means bakery is better and 2.0 means "the baseline takes twice as much". Each
metric record carries that sentence in its ``ratio_meaning`` field so the JSON stands alone.

Side-by-side repetitions are interleaved (baseline, bakery, baseline, bakery, …) so that slow drift
on a shared machine (other builds, page cache, thermal) lands on both sides equally.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bakery.atomicfile import write_atomic

SCHEMA = "bakery-bench/1"
BASELINE = "baseline"
BAKERY = "bakery"
SIDES = (BASELINE, BAKERY)
RATIO_MEANING = "baseline / bakery of a lower-is-better metric: above 1 means bakery is better"

STATUS_OK = "ok"
STATUS_PENDING = "pending"  # the feature it measures is not available yet
STATUS_SKIPPED = "skipped"  # an input is missing on this machine (e.g. an image not built)
STATUS_FAILED = "failed"  # the benchmark itself broke; `reason` says how


def median(values: Sequence[float]) -> float:
    """The median; for an even count the mean of the two middle values. Needs one value."""
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def ratio(baseline: float, bakery: float) -> float | None:
    """``baseline / bakery`` (above 1: bakery is better); None when undefined.

    0 / 0 is 1.0 (both sides did no work); x / 0 with x > 0 is undefined (None) rather than
    infinite, so a report never claims an infinite speed-up.
    """
    if bakery == 0:
        return 1.0 if baseline == 0 else None
    return baseline / bakery


def interleave(sides: Sequence[str], repetitions: int) -> list[tuple[int, str]]:
    """The run order ``[(0, a), (0, b), (1, a), (1, b), …]``: every side once per repetition."""
    if repetitions < 0:
        raise ValueError(f"repetitions must be >= 0, not {repetitions}")
    return [(rep, side) for rep in range(repetitions) for side in sides]


@dataclass(frozen=True)
class Sample:
    """One observation of a metric on one side, with whatever else was seen then."""

    value: float
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Series:
    """The samples of one metric on one side."""

    label: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def values(self) -> list[float]:
        return [s.value for s in self.samples]

    @property
    def median(self) -> float | None:
        return median(self.values) if self.samples else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "samples": [_finite(v) for v in self.values],
            "median": _finite(self.median),
            "min": _finite(min(self.values)) if self.samples else None,
            "max": _finite(max(self.values)) if self.samples else None,
            "extra": [dict(s.extra) for s in self.samples if s.extra],
        }


@dataclass
class Comparison:
    """One lower-is-better metric measured on both sides; the ratio is baseline / bakery."""

    name: str
    unit: str
    baseline: Series
    bakery: Series
    note: str = ""

    def side(self, side: str) -> Series:
        """The series of BASELINE or BAKERY."""
        if side not in SIDES:
            raise ValueError(f"side must be {BASELINE!r} or {BAKERY!r}, not {side!r}")
        return self.bakery if side == BAKERY else self.baseline

    @property
    def ratio(self) -> float | None:
        b, k = self.baseline.median, self.bakery.median
        if b is None or k is None:
            return None
        return ratio(b, k)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "better": "lower",
            BASELINE: self.baseline.to_json(),
            BAKERY: self.bakery.to_json(),
            "ratio": _finite(self.ratio),
            "ratio_meaning": RATIO_MEANING,
            "note": self.note,
        }


@dataclass
class Value:
    """A one-sided figure (a size, a breakdown item) reported as measured."""

    name: str
    value: float
    unit: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": _finite(self.value),
            "unit": self.unit,
            "note": self.note,
        }


@dataclass
class BenchResult:
    """What one benchmark reports: its status, method, comparisons and plain values."""

    name: str
    title: str
    status: str = STATUS_OK
    reason: str = ""
    method: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    values: list[Value] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def compare(
        self, name: str, unit: str, baseline: str, bakery: str, note: str = ""
    ) -> Comparison:
        """Add an empty comparison whose series are labelled `baseline` and `bakery`."""
        comparison = Comparison(name, unit, Series(baseline), Series(bakery), note)
        self.comparisons.append(comparison)
        return comparison

    def add_value(self, name: str, value: float, unit: str, note: str = "") -> None:
        self.values.append(Value(name, value, unit, note))

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "method": self.method,
            "params": self.params,
            "comparisons": [c.to_json() for c in self.comparisons],
            "values": [v.to_json() for v in self.values],
            "notes": self.notes,
            "seconds": round(self.seconds, 1),
        }


def run_interleaved(
    sides: Mapping[str, Callable[[int], None]], repetitions: int, log: Callable[[str], None]
) -> None:
    """Call each side's function once per repetition, sides alternating (see `interleave`)."""
    for rep, side in interleave(list(sides), repetitions):
        log(f"  repetition {rep + 1}/{repetitions}: {side}")
        sides[side](rep)


def _finite(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, 6)


# ---------------------------------------------------------------------------------------------
# Machine facts


def _command_output(command: Sequence[str], timeout: float = 30) -> str:
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def memory_bytes(meminfo: str) -> int | None:
    """MemTotal from /proc/meminfo text, in bytes."""
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# The commands measured run as a default Python runs them: with its bytecode cache. A machine
# that sets PYTHONDONTWRITEBYTECODE (this one's sandbox does) recompiles every bakery module on
# every start; `python -m bench` removes the setting for the commands it runs and says so here.
PYTHON_BYTECODE_NOTE = "on (PYTHONDONTWRITEBYTECODE removed for the measured commands)"


def default_python_environment() -> None:
    """Measure what a user's default Python does: bytecode cached (see PYTHON_BYTECODE_NOTE)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def machine_info(root: Path) -> dict[str, Any]:
    """Cores, memory, kernel, load, Docker/buildx versions and the bakery commit measured."""
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
    except OSError:
        meminfo = ""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    git = ["git", "-C", str(root)]
    return {
        "hostname": platform.node(),
        "cores": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_bytes": memory_bytes(meminfo),
        "kernel": platform.release(),
        "os": _os_release(),
        "python": sys.version.split()[0],
        "python_bytecode_cache": PYTHON_BYTECODE_NOTE,
        "docker_server": _command_output(["docker", "version", "--format", "{{.Server.Version}}"]),
        "docker_client": _command_output(["docker", "version", "--format", "{{.Client.Version}}"]),
        "buildx": _command_output(["docker", "buildx", "version"]),
        "storage_driver": _command_output(["docker", "info", "--format", "{{.Driver}}"]),
        "zstd": _command_output(["zstd", "--version"]),
        "gzip": next(iter(_command_output(["gzip", "--version"]).splitlines()), ""),
        "load_average": load_average(),
        "bakery_commit": _command_output([*git, "rev-parse", "HEAD"]),
        "bakery_worktree_dirty": bool(_command_output([*git, "status", "--porcelain"])),
    }


def _os_release() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return ""


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Result files


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """All or nothing (bakery.atomicfile: temporary file, fsync, os.replace, fsync of the folder)."""
    write_atomic(path, data)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """`data` as indented JSON, written atomically (see write_bytes_atomic)."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


PARTIAL_SUFFIX = ".partial.json"


def partial_path(output: Path) -> Path:
    """Where a run keeps its results until it is complete: `<name>.partial.json` beside them."""
    return output.with_name(output.name.removesuffix(".json") + PARTIAL_SUFFIX)


def save_progress(output: Path, data: Mapping[str, Any]) -> Path:
    """After each benchmark: the results so far go to the partial file, never to `output`."""
    partial = partial_path(output)
    write_json_atomic(partial, data)
    return partial


def publish_results(output: Path, data: Mapping[str, Any]) -> None:
    """A complete run: replace `output` atomically, then drop the partial file."""
    write_json_atomic(output, data)
    partial_path(output).unlink(missing_ok=True)


def run_is_complete(data: Mapping[str, Any], names: Sequence[str]) -> bool:
    """Every requested benchmark reported, and none of them failed."""
    found = data.get("benchmarks", {})
    return all(n in found and found[n].get("status") != STATUS_FAILED for n in names)


def read_results(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a {SCHEMA} result file")
    return data
