"""`python build.py compose`: a compose.yaml that Compose accepts and that runs the smoke."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.slim import CONTAINER_GID, CONTAINER_UID, build_py, docker_compose, owned_workspace

from bakery.errors import EXIT_OK

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def compose_file(
    slim_image: str, host_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """compose.yaml as bakery writes it."""
    folder = tmp_path_factory.mktemp("slim-compose")
    output = folder / "compose.yaml"
    code = build_py(
        "compose", "--slim", "--host-env", str(host_venv), "--target", "cpu",
        "--workspace", str(owned_workspace(folder / "ws")),
        "--user", f"{CONTAINER_UID}:{CONTAINER_GID}", "--output", str(output),
    )  # fmt: skip
    assert code == EXIT_OK
    return output


@pytest.fixture
def project(compose_file: Path) -> Iterator[str]:
    """A unique compose project name, brought down (containers, network) afterwards."""
    name = f"bakery-slim-test-{uuid.uuid4().hex[:10]}"
    yield name
    docker_compose(compose_file, "-p", name, "down", "--remove-orphans", "--timeout", "5")


def test_compose_config_accepts_it(compose_file: Path, host_venv: Path) -> None:
    result = docker_compose(compose_file, "config", "--format", "json", timeout=60)
    assert result.returncode == 0, result.stderr
    service = json.loads(result.stdout)["services"]["train"]
    host_env = next(v for v in service["volumes"] if v["target"] == "/opt/host-env")
    assert (host_env["source"], host_env["read_only"]) == (str(host_venv), True)
    assert service["environment"]["PYTHONPATH"] == "/opt/host-env/lib/python3.11/site-packages"
    assert service["user"] == f"{CONTAINER_UID}:{CONTAINER_GID}"
    assert service["command"] == ["python", "-m", "stylelora", "smoke"]


def test_compose_up_runs_the_smoke(compose_file: Path, project: str) -> None:
    result = docker_compose(
        compose_file, "-p", project, "up", "--abort-on-container-exit", "--exit-code-from", "train"
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    verdicts = [line for line in result.stdout.splitlines() if '"ok": true' in line]
    assert verdicts, result.stdout[-3000:]
    assert '"torch": "2.13.0+cpu"' in verdicts[-1]
