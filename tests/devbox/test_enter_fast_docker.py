"""`enter`'s fast path against a real dev container: the same `docker exec` as the slow path,
no Docker client library imported, and nothing done when the container is not running."""

from __future__ import annotations

import json
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

# Runs the real entry point with os.execvp replaced by a recorder: prints what would be exec'd.
FAST = """\
import json, os, sys
def record(file, argv):
    loaded = [m for m in ("python_on_whales", "pydantic") if m in sys.modules]
    print(json.dumps({"argv": argv, "loaded": loaded}))
    sys.stdout.flush()
    os._exit(0)
os.execvp = record
from bakery.cli import main
sys.exit(main(sys.argv[1:], exec_enter=True))
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


def test_fast_path_leaves_the_shell_to_the_slow_path(
    new_name: Callable[[], str], up_args: UpArgs
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    assert devbox.enter_fast(["--name", name]) is None


def test_fast_path_leaves_a_stopped_container_to_the_slow_path(
    new_name: Callable[[], str], up_args: UpArgs
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    assert main(["stop", "--name", name]) == 0
    assert devbox.enter_fast(["--name", name, "--", "true"]) is None
    assert inspect(name)["State"]["Status"] == "exited", "the fast path must not start it"


def test_fast_path_leaves_a_missing_container_to_the_slow_path(
    new_name: Callable[[], str],
) -> None:
    assert devbox.enter_fast(["--name", new_name(), "--", "true"]) is None
