"""A Ctrl+C that lands while a build process starts still stops that process (no Docker needed).

`subprocess.Popen` waits for its child to exec; a KeyboardInterrupt raised there (or right after
it returns) used to escape with the child alive in its own session, where no terminal Ctrl+C
reaches it: the build went on and tagged its image after "interrupted". The Ctrl+C is simulated
at exactly that moment by a Popen that raises SIGINT once the real child exists.
"""

from __future__ import annotations

import io
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from bakery import engine
from bakery.engine import builds


@pytest.fixture
def default_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """The processes the patched Popen made; any still running at the end is killed."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_ctrl_c_while_the_build_process_starts_stops_it(
    monkeypatch: pytest.MonkeyPatch,
    default_sigint: None,
    started: list[subprocess.Popen[str]],
) -> None:
    real_popen = subprocess.Popen

    def popen_then_ctrl_c(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        started.append(real_popen(*args, **kwargs))
        signal.raise_signal(signal.SIGINT)  # Ctrl+C before Popen has returned
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen_then_ctrl_c)  # engine calls subprocess.Popen
    with pytest.raises(KeyboardInterrupt):
        builds._stream_build(  # the process-handling core of build_image
            ["sh", "-c", "exec sleep 97"], engine.BuildLog(), io.StringIO(), None
        )
    [process] = started
    try:
        code = process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("the child outlived the interrupt")
    assert code == -signal.SIGINT  # stopped by the forwarded Ctrl+C


def test_sigint_handler_is_restored_after_a_build_starts(default_sigint: None) -> None:
    code = builds._stream_build(["sh", "-c", "echo done"], engine.BuildLog(), io.StringIO(), None)
    assert code == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
