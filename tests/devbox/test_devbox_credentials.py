"""Proxy and index credentials reach `enter` and `job`, but never the container's config."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.dockercli import docker
from support.wait import wait_until

from bakery.cli import main

pytestmark = pytest.mark.docker

UpArgs = Callable[..., list[str]]
PROXY_SECRET = f"pr0xy-{uuid.uuid4().hex}"
INDEX_SECRET = f"idx-{uuid.uuid4().hex}"
PROXY = f"http://alice:{PROXY_SECRET}@proxy.internal:3128"
INDEX = f"https://pypi.internal/simple?token={INDEX_SECRET}"


@pytest.fixture
def name(new_name: Callable[[], str]) -> str:
    """A unique container name, force-removed when the test ends (support.fixtures)."""
    return new_name()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("PIP_INDEX_URL", INDEX)
    monkeypatch.setenv("HF_ENDPOINT", "http://hf-mirror.internal")  # no credential: stored


def test_credentials_stay_out_of_the_config_but_reach_enter_and_job(
    name: str,
    up_args: UpArgs,
    workspace: Path,
    credentials: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert main(up_args(name)) == 0
    assert "HTTPS_PROXY, PIP_INDEX_URL hold credentials" in capfd.readouterr().err
    config = docker("container", "inspect", name).stdout
    assert PROXY_SECRET not in config
    assert INDEX_SECRET not in config
    assert "HF_ENDPOINT=http://hf-mirror.internal" in config  # the check can see stored settings

    assert (
        main(["enter", "--name", name, "--", "sh", "-c", 'echo "$HTTPS_PROXY|$PIP_INDEX_URL"']) == 0
    )
    assert capfd.readouterr().out.strip() == f"{PROXY}|{INDEX}"

    assert main(["job", "--name", name, "--", "sh", "-c", 'echo "$HTTPS_PROXY"']) == 0
    job_id = capfd.readouterr().out.strip()
    jobs = workspace / ".bakery" / "jobs" / name
    wait_until((jobs / f"{job_id}.exit").exists, 30, f"job {job_id} to finish")
    assert (jobs / f"{job_id}.log").read_text(encoding="utf-8").strip() == PROXY
    assert PROXY_SECRET not in docker("container", "inspect", name).stdout
