"""The client and buildx versions check_engine remembers: reused while the binaries are the same
files, asked again when one changes (no Docker needed: the docker commands are recorded)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from bakery.atomicfile import read_keyed, write_keyed
from bakery.engine import daemon


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[list[str]]:
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir()
    docker.write_text("#!/bin/sh\n")
    monkeypatch.setattr(daemon, "_docker_command", lambda: [str(docker)])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "config"))
    calls: list[list[str]] = []

    def run_cli(args: Sequence[str], what: str, timeout: float = 0) -> str:
        calls.append(list(args))
        return "28.2.2\n" if args[0] == "version" else "github.com/docker/buildx v0.13.1 x\n"

    monkeypatch.setattr(daemon, "_run_cli", run_cli)
    return calls


def test_versions_are_asked_once_while_the_binaries_stay_the_same(asked: list[list[str]]) -> None:
    assert daemon._client_versions() == ("28.2.2", "github.com/docker/buildx v0.13.1 x\n")
    assert daemon._client_versions() == ("28.2.2", "github.com/docker/buildx v0.13.1 x\n")
    assert [a[0] for a in asked] == ["version", "buildx"]


def test_a_changed_docker_binary_asks_again(asked: list[list[str]], tmp_path: Path) -> None:
    daemon._client_versions()
    docker = tmp_path / "bin" / "docker"
    docker.write_text("#!/bin/sh\n# upgraded\n")
    daemon._client_versions()
    assert len(asked) == 4


def test_a_new_buildx_plugin_asks_again(asked: list[list[str]], tmp_path: Path) -> None:
    daemon._client_versions()
    plugin = tmp_path / "config" / "cli-plugins" / "docker-buildx"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("new")
    daemon._client_versions()
    assert len(asked) == 4


def test_a_damaged_cache_is_recomputed(asked: list[list[str]], tmp_path: Path) -> None:
    daemon._client_versions()
    cache = tmp_path / "cache" / "bakery" / "engine-versions.json"
    cache.write_text("{not json")
    assert daemon._client_versions()[0] == "28.2.2"
    assert len(asked) == 4


def test_a_keyed_cache_answers_only_its_key(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    assert write_keyed(path, "k1", {"a": 1})
    assert read_keyed(path, "k1") == {"a": 1}
    assert read_keyed(path, "k2") is None
    assert read_keyed(tmp_path / "missing.json", "k1") is None
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert write_keyed(blocker / "c.json", "k", 1) is False  # unwritable: logged, not raised
