"""Ctrl+C during `build`: builds run in worker threads, yet the interrupt stops them, untagged.

KeyboardInterrupt reaches only the main thread, which waits on the workers' futures. Before
engine.cancel_builds the workers' docker processes (in their own sessions) went on, and
ThreadPoolExecutor's exit waited for every build, then tagged the images.
"""

from __future__ import annotations

import io
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from support.engine_tests import ctrl_c_when, pids_running, write_dockerfile
from support.wait import wait_until

from bakery import base, build, engine
from bakery.matrix import load_matrix

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own Ctrl+C handler, whatever this process inherited (see test_engine_docker)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def sleeper_steps(root: Path, unique: str, count: int) -> tuple[list[build.BuildStep], str]:
    """`count` build steps of a tiny Dockerfile whose RUN logs a marker, then sleeps."""
    sleeper = f"sleep 110.{secrets.randbelow(10**6):06d}"
    write_dockerfile(root, f"FROM {{BASE}}\nRUN echo started-{unique}; exec {sleeper}\n")
    variants = load_matrix(ROOT / "matrix.toml").variants[:count]
    steps = [
        build.BuildStep(
            variant=v,
            dockerfile=Path("Dockerfile"),
            image=f"trust-input-interrupt:{unique}-{i}",
            torch_source="pypi",
            torch_source_reason="test",
            build_args={},
            base_context=None,
            log_path=root.parent / "logs" / f"{i}.log",
        )
        for i, v in enumerate(variants)
    ]
    return steps, sleeper


def marker_logged(log: Path, unique: str) -> bool:
    """The RUN's own output reached the build log: the step is running."""
    return log.is_file() and f"started-{unique}" in log.read_text(errors="replace")


def test_ctrl_c_stops_builds_in_worker_threads_and_tags_nothing(
    base_image: base.BaseResult, build_dir: Path, unique: str, default_sigint: None
) -> None:
    steps, sleeper = sleeper_steps(build_dir, unique, count=2)
    options = build.BuildOptions(root=build_dir, jobs=1)  # the second build is still queued

    def running() -> bool:  # Ctrl+C once the first RUN runs: marker logged, its sleep exists
        return marker_logged(steps[0].log_path, unique) and bool(pids_running(sleeper))

    with ctrl_c_when(running) as sent, pytest.raises(KeyboardInterrupt):
        build.run_builds(steps, options, Console(file=io.StringIO()))
    assert sent == [True], "the RUN never started, so the interrupt proved nothing"
    wait_until(lambda: not pids_running(sleeper), 20, "the cancelled RUN to disappear")
    assert not steps[1].log_path.exists(), "a queued build started after Ctrl+C"
    for step in steps:
        assert engine.inspect_image(step.image) is None, f"{step.image} was tagged"
