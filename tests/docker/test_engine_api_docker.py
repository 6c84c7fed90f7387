"""bakery.engine.api against the real daemon: its socket answers are what the docker commands
report, so the shortcut (issue 17) changes no result, and a daemon it does not serve falls back."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from support.dockercli import BASE_TAG

from bakery import engine
from bakery.engine import api, containers, daemon, images

pytestmark = pytest.mark.docker


REAL_RUN = subprocess.run  # the recorder below replaces subprocess.run for everyone


def cli_json(*args: str) -> object:
    done = REAL_RUN(["docker", *args], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)


@pytest.fixture
def no_cli_needed(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Records every docker command the engine starts (the socket path should start none)."""
    ran: list[list[str]] = []

    def recording(command: list[str], **kwargs: object) -> object:
        ran.append(list(command))
        return REAL_RUN(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", recording)  # engine.client runs docker with it
    return ran


def test_an_image_read_over_the_socket_is_what_docker_image_inspect_says(
    no_cli_needed: list[list[str]],
) -> None:
    over_socket = engine.inspect_image(BASE_TAG)
    assert no_cli_needed == []
    raw = cli_json("image", "inspect", BASE_TAG)
    assert isinstance(raw, list)
    assert over_socket == images._image_info(raw[0])


def test_a_daemon_answers_over_the_socket_without_a_process(
    no_cli_needed: list[list[str]],
) -> None:
    assert engine.daemon_answers(timeout=5)
    assert no_cli_needed == []


def test_without_a_docker_cli_no_daemon_answers_though_the_socket_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As before the shortcut: `docker version` cannot answer when there is no docker to run."""
    assert api.get_json("/version") is not None  # the socket itself answers
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not engine.daemon_answers(timeout=5)


def test_a_missing_image_is_none_either_way() -> None:
    assert api.image("bakery-test/no-such-image:x") is None
    assert engine.inspect_image("bakery-test/no-such-image:x") is None


def test_tagging_over_the_socket_tags(no_cli_needed: list[list[str]]) -> None:
    tag = f"bakery-test/api-tag-{uuid.uuid4().hex[:8]}:t"
    base_id = cli_json("image", "inspect", "--format", "{{json .Id}}", BASE_TAG)
    try:
        engine.tag_image(str(base_id), tag)
        assert no_cli_needed == []
        assert cli_json("image", "inspect", "--format", "{{json .Id}}", tag) == base_id
    finally:
        REAL_RUN(["docker", "image", "rm", tag], capture_output=True, check=False)


def test_a_container_read_over_the_socket_is_what_docker_inspect_says() -> None:
    name = f"bakery-test-api-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "create", "--name", name, "--label", "io.bakery.test=1", BASE_TAG, "true"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    try:
        raw = cli_json("container", "inspect", name)
        assert isinstance(raw, list)
        assert engine.inspect_container(name) == containers._container_info(raw[0])
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def test_the_versions_over_the_socket_are_the_cli_ones(
    engine_info: engine.EngineInfo, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert engine.check_engine() == daemon._check_engine_cli()


def test_a_daemon_the_socket_path_does_not_serve_takes_the_cli(
    monkeypatch: pytest.MonkeyPatch, no_cli_needed: list[list[str]]
) -> None:
    monkeypatch.setenv("DOCKER_CONTEXT", "default")  # a named context: the CLI decides
    assert engine.inspect_image(BASE_TAG) is not None
    assert any("inspect" in command for command in no_cli_needed)


def test_image_sizes_over_the_socket_are_the_clis(
    monkeypatch: pytest.MonkeyPatch, no_cli_needed: list[list[str]]
) -> None:
    refs = [BASE_TAG, "bakery-test/no-such-image:x"]
    over_socket = engine.image_sizes(refs)
    assert no_cli_needed == []
    assert over_socket[BASE_TAG]
    assert over_socket["bakery-test/no-such-image:x"] is None
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert engine.image_sizes(refs) == over_socket
    assert no_cli_needed, "with a named context the CLI answers"
