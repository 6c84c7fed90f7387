"""Fixtures for the publish tests: registries, a private Docker config, a project with images.

Without a Docker daemon the Docker-backed tests skip on a developer machine and fail in CI
(`CI=true`). Every registry, image tag and temporary Docker config a test makes is removed
afterwards; nothing touches the machine's own ~/.docker.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.ci import require_daemon, require_image
from support.dockercli import BASE_TAG
from support.registry import (
    CPU_FULL,
    CPU_SLIM,
    USER,
    Project,
    Registry,
    SmallImages,
    build_small_image,
    write_project,
)

from bakery import engine


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Skip (developer machine) or fail (CI) when no Docker daemon answers."""
    require_daemon()
    engine.check_engine()
    require_image(BASE_TAG, "python build.py base")


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, private DOCKER_CONFIG: logins land here, never in ~/.docker."""
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("BAKERY_REGISTRY_USER", raising=False)
    monkeypatch.delenv("BAKERY_REGISTRY_PASSWORD", raising=False)
    return config


@pytest.fixture
def password() -> str:
    """A distinctive password, easy to find if it leaks anywhere."""
    return f"pw-{secrets.token_hex(12)}"


@pytest.fixture
def start_registry(
    docker_engine: None, tmp_path: Path, password: str
) -> Iterator[Callable[[], Registry]]:
    """Start registries on free ports (htpasswd user `publisher`); all removed at the end."""
    started: list[Registry] = []

    def start() -> Registry:
        registry = Registry(tmp_path / f"registry-{len(started)}", password)
        started.append(registry)
        registry.start()
        return registry

    yield start
    for registry in started:
        registry.remove()


@pytest.fixture
def registry(start_registry: Callable[[], Registry]) -> Registry:
    return start_registry()


@pytest.fixture
def env_credentials(monkeypatch: pytest.MonkeyPatch, password: str, docker_config: Path) -> str:
    """BAKERY_REGISTRY_USER/PASSWORD set to the registry's user; returns the password."""
    monkeypatch.setenv("BAKERY_REGISTRY_USER", USER)
    monkeypatch.setenv("BAKERY_REGISTRY_PASSWORD", password)
    return password


@pytest.fixture(scope="session")
def small_images(
    docker_engine: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SmallImages]:
    """Two tiny, distinct images tagged as the cpu target's full and slim variants."""
    repository = f"bakery-publish-{uuid.uuid4().hex[:10]}/bakery"
    context = tmp_path_factory.mktemp("small-images")
    ids = {
        vid: build_small_image(f"{repository}:{vid}", vid, context / vid)
        for vid in (CPU_FULL, CPU_SLIM)
    }
    yield SmallImages(repository, ids)
    for vid in ids:
        engine.remove_image(f"{repository}:{vid}")


@pytest.fixture
def project(tmp_path: Path, small_images: SmallImages, docker_config: Path) -> Project:
    """A project root with the real matrix whose repository is the small images' one."""
    root = tmp_path / "project"
    return Project(root, write_project(root, small_images.repository), small_images.repository)
