"""7. `enter` latency vs a raw `docker exec` into the same running container.

One dev container is created with `python build.py up` from the cpu image (workspace: an empty
scratch folder; host pip and Hugging Face caches not mounted). Then, interleaved:

- bakery:   `python build.py enter --name N -- true` (the whole command: Python start-up, bakery's
            imports, inspecting the container, exec as the workspace user in the workspace)
- baseline: `docker exec N true`

and, as a reference for the part of bakery's time that is Python start-up and imports,
`python build.py --version` (reported as a plain value). Wall time of the process, stdin not a
terminal. The container is removed at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import tools
from bench.harness import (
    BAKERY,
    BASELINE,
    STATUS_PENDING,
    STATUS_SKIPPED,
    BenchResult,
    Sample,
    median,
)
from bench.harness import run_interleaved as interleaved
from bench.tools import CPU_VARIANT, Context

NAME = "enter"
TITLE = "`enter` latency vs raw `docker exec`"
STARTUP = "cli start-up"


def timed_run(command: list[str], cwd: Path | None = None) -> float:
    started = time.monotonic()
    tools.run(command, cwd=cwd, timeout=300)
    return time.monotonic() - started


def run(ctx: Context) -> BenchResult:
    reps = ctx.reps(quick=5, full=20)
    result = BenchResult(NAME, TITLE, method=__doc__ or "")
    from bakery.cli import all_commands  # noqa: PLC0415

    if "enter" not in all_commands() or "up" not in all_commands():
        result.status = STATUS_PENDING
        result.reason = "pending devbox support (`python build.py up`/`enter`)"
        return result
    from bench.compression import cpu_image  # noqa: PLC0415

    if tools.image_facts(cpu_image(ctx)) is None:
        result.status = STATUS_SKIPPED
        result.reason = f"{cpu_image(ctx)} is not built here"
        return result
    name = ctx.name("enter")
    workspace = ctx.work / "enter-workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    workspace.chmod(0o777)
    ctx.on_cleanup(f"container {name}", lambda: tools.remove_container(name))
    up = tools.bakery_command(
        "up", "--matrix", str(ctx.root / "matrix.toml"), "--name", name,
        "--variant", CPU_VARIANT, "--workspace", str(workspace),
        "--pip-cache", "none", "--hf-home", "none",
    )  # fmt: skip
    result.add_value("up (create and start)", timed_run(up, cwd=workspace), "s", "once")
    result.params = {"container": name, "image": cpu_image(ctx), "repetitions": reps}
    c = result.compare(
        "latency of `true`", "s", "docker exec N true", "build.py enter --name N -- true"
    )
    startup: list[float] = []
    enter = tools.bakery_command("enter", "--name", name, "--", "true")

    def baseline(rep: int) -> None:
        c.baseline.samples.append(Sample(timed_run(["docker", "exec", name, "true"])))

    def bakery(rep: int) -> None:
        c.bakery.samples.append(Sample(timed_run(enter, cwd=workspace)))

    def cli(rep: int) -> None:
        startup.append(timed_run(tools.bakery_command("--version")))

    timed_run(["docker", "exec", name, "true"])  # one untimed exec of each first
    timed_run(enter, cwd=workspace)
    interleaved({BASELINE: baseline, BAKERY: bakery, STARTUP: cli}, reps, ctx.log)
    result.add_value(
        "python build.py --version (median)", median(startup), "s",
        "Python start-up + bakery's imports: the floor under any bakery command",
    )  # fmt: skip
    _startup_comparisons(ctx, result, reps)
    own = (c.bakery.median or 0.0) - median(startup) - (c.baseline.median or 0.0)
    result.add_value(
        "enter minus start-up minus docker exec (medians)", own, "s",
        "what `enter` itself adds: inspecting the container, choosing user and workdir",
    )  # fmt: skip
    return result


# Issue 17, goal 1: commands that do not talk to Docker start within 3x a bare interpreter.
STARTUP_COMMANDS = (("--help",), ("list",), ("generate", "--check"))


def _startup_comparisons(ctx: Context, result: BenchResult, reps: int) -> None:
    """`build.py --help`, `list`, `generate --check` against `python3 -c pass`, interleaved."""
    bare = [sys.executable, "-c", "pass"]
    for args in STARTUP_COMMANDS:
        c = result.compare(
            f"start-up: build.py {' '.join(args)}", "s", "python3 -c pass",
            f"build.py {' '.join(args)}", "goal: bakery within 3x (a ratio of at least 0.33)",
        )  # fmt: skip
        command = tools.bakery_command(*args)
        sides = {
            BASELINE: _timed_into(c.baseline.samples, bare),
            BAKERY: _timed_into(c.bakery.samples, command, cwd=ctx.root),
        }
        interleaved(sides, reps, ctx.log)


def _timed_into(
    samples: list[Sample], command: list[str], cwd: Path | None = None
) -> Callable[[int], None]:
    """One side of an interleaved comparison: time `command`, append the sample."""

    def side(_rep: int) -> None:
        samples.append(Sample(timed_run(command, cwd=cwd)))

    return side
