"""`enter`'s fast path against a real dev container: the same `docker exec` as the slow path,
no Docker client library imported, and nothing done when the container is not running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from support.devbox import ROOT, inspect

from bakery import devbox
from bakery.cli import main

pytestmark = pytest.mark.docker

UpArgs = Callable[..., list[str]]

# Runs the real entry point, build.py, with os.execvp replaced by a recorder: prints what would
# be exec'd and which of bakery's modules and Docker libraries had been imported by then.
FAST = """\
import json, os, runpy, sys
def record(file, argv):
    loaded = [m for m in ("python_on_whales", "pydantic") if m in sys.modules]
    bakery = sorted(m for m in sys.modules if m.startswith("bakery"))
    print(json.dumps({"argv": argv, "loaded": loaded, "bakery": bakery}))
    sys.stdout.flush()
    os._exit(0)
os.execvp = record
sys.argv = ["build.py", *sys.argv[1:]]
runpy.run_path("build.py", run_name="__main__")
"""


def fast_path(argv: Sequence[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", FAST, *argv],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def slow_path_argv(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The command the in-process slow path really runs (it runs, too)."""
    ran: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(command: list[str], **kwargs: Any) -> Any:
        if "exec" in command:
            ran.append(list(command))
        return real_run(command, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording_run)  # bakery.engine.run: exec_interactive's
    assert main(argv) == 0
    assert len(ran) == 1, ran
    return ran[0]


def test_fast_path_execs_what_the_slow_path_runs_without_a_docker_library(
    new_name: Callable[[], str], up_args: UpArgs, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    argv = ["enter", "--name", name, "--", "sh", "-c", "exit 0"]
    fast = fast_path(argv)
    monkeypatch.chdir(ROOT)
    assert fast["argv"] == slow_path_argv(argv, monkeypatch)
    assert fast["loaded"] == []
    assert "bakery.cli" not in fast["bakery"]


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """What the fast path would exec (os.execvp recorded instead of replacing the test)."""
    recorded: list[list[str]] = []
    monkeypatch.setattr(os, "execvp", lambda file, argv: recorded.append(list(argv)))
    return recorded


def test_fast_path_leaves_the_shell_to_the_slow_path(
    new_name: Callable[[], str], up_args: UpArgs, execs: list[list[str]]
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    devbox.enter_fast(["--name", name])
    assert execs == []
    devbox.enter_fast(["--name", name, "--", "true"])  # the same container, with a command
    assert len(execs) == 1


def test_fast_path_leaves_a_stopped_container_to_the_slow_path(
    new_name: Callable[[], str], up_args: UpArgs, execs: list[list[str]]
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    assert main(["stop", "--name", name]) == 0
    devbox.enter_fast(["--name", name, "--", "true"])
    assert execs == []
    assert inspect(name)["State"]["Status"] == "exited", "the fast path must not start it"


def test_fast_path_leaves_a_missing_container_to_the_slow_path(
    new_name: Callable[[], str], execs: list[list[str]]
) -> None:
    devbox.enter_fast(["--name", new_name(), "--", "true"])
    assert execs == []
