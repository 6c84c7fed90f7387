"""Helpers for the slim tests (tests/slim)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bakery import cli

ROOT = Path(__file__).resolve().parents[2]
NO_DAEMON = "unix:///nonexistent/bakery-slim-test.sock"
CONTAINER_UID = 4321  # a non-root user that is not the image's own: as a host user would be
CONTAINER_GID = 4322
RUN_SECONDS = 600


def build_py(command: str, *argv: str) -> int:
    """`python build.py COMMAND --matrix <project's> ARGV`, in-process."""
    return cli.main([command, "--matrix", str(ROOT / "matrix.toml"), *argv])


def run_slim(env: Path, workspace: Path, *command: str, target: str = "cpu") -> int:
    """`python build.py run --slim` as the test user, bounded by a timeout."""
    return build_py(
        "run", "--slim", "--host-env", str(env), "--target", target, "--workspace", str(workspace),
        "--user", f"{CONTAINER_UID}:{CONTAINER_GID}", "--timeout", str(RUN_SECONDS), "--", *command,
    )  # fmt: skip


def owned_workspace(path: Path) -> Path:
    """A workspace folder owned by the container user, as a host user's own folder would be."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, CONTAINER_UID, CONTAINER_GID)
    return path


def last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            value: dict[str, Any] = json.loads(line)
            return value
    raise AssertionError(f"no JSON line in the output:\n{text[-3000:]}")


def docker_compose(
    compose_file: Path, *args: str, timeout: float = RUN_SECONDS
) -> subprocess.CompletedProcess[str]:
    """`docker compose -f FILE ARGS` as a user types it (the CLI, not bakery's engine)."""
    return subprocess.run(
        ["docker", "compose", "-f", str(compose_file), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def refused_before_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point docker at a socket nobody listens on: any docker call would end in exit 4."""
    monkeypatch.setenv("DOCKER_HOST", NO_DAEMON)
