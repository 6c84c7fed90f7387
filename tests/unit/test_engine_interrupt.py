"""A Ctrl+C that lands while a build process starts still stops that process (no Docker needed).

`subprocess.Popen` waits for its child to exec; a KeyboardInterrupt raised there (or right after
it returns) used to escape with the child alive in its own session, where no terminal Ctrl+C
reaches it: the build went on and tagged its image after "interrupted". The Ctrl+C is simulated
at exactly that moment by a Popen that raises SIGINT once the real child exists.
"""

from __future__ import annotations

import io
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bakery import engine


def pids_running(fragment: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline:
            found.append(int(entry.name))
    return found


def wait_gone(fragment: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pids_running(fragment):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # poll interval of a deadline-bound wait
    return True


@pytest.fixture
def default_sigint() -> Iterator[None]:
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def sleeper() -> Iterator[str]:
    """A unique sleep command line; any leftover process is killed at the end."""
    text = f"sleep 97.{secrets.randbelow(10**6):06d}"
    yield text
    for pid in pids_running(text):
        os.kill(pid, signal.SIGKILL)


def test_ctrl_c_while_the_build_process_starts_stops_it(
    monkeypatch: pytest.MonkeyPatch, default_sigint: None, sleeper: str
) -> None:
    real_popen = subprocess.Popen

    def popen_then_ctrl_c(*args: Any, **kwargs: Any) -> subprocess.Popen[str]:
        process: subprocess.Popen[str] = real_popen(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # Ctrl+C before Popen has returned
        return process

    monkeypatch.setattr(subprocess, "Popen", popen_then_ctrl_c)  # engine calls subprocess.Popen
    with pytest.raises(KeyboardInterrupt):
        engine._stream_build(  # the process-handling core of build_image
            ["sh", "-c", f"exec {sleeper}"], engine.BuildLog(), io.StringIO(), None
        )
    assert wait_gone(sleeper, 20), "the child outlived the interrupt"


def test_sigint_handler_is_restored_after_a_build_starts(
    default_sigint: None, sleeper: str
) -> None:
    code = engine._stream_build(["sh", "-c", "echo done"], engine.BuildLog(), io.StringIO(), None)
    assert code == 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
