"""Fixtures for tests that drive a real Docker engine (no mocks).

Without a daemon the folder is skipped with a reason on a developer machine, and fails in CI
(`CI=true`): CI must never pass by skipping. Every image a test builds is removed afterwards;
the base image is kept (it is what `python build.py base` makes, and takes half a minute).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testsupport import in_ci

from bakery import base, engine


@pytest.fixture(scope="session", autouse=True)
def engine_info() -> engine.EngineInfo:
    """The engine's versions; skip (developer machine) or fail (CI) when no daemon answers."""
    if not engine.daemon_answers():
        reason = (
            "no Docker daemon answers (DOCKER_HOST="
            f"{os.environ.get('DOCKER_HOST', '<unset>')}); "
            "start one with `sudo scripts/install-engine.sh`"
        )
        if in_ci():
            pytest.fail(f"CI needs a Docker engine: {reason}", pytrace=False)
        pytest.skip(reason)
    return engine.check_engine()  # a daemon without a usable buildx is a failure, not a skip


@pytest.fixture(scope="session")
def base_image() -> base.BaseResult:
    """`bakery/debian:bookworm`, made by bootstrap_base unless it already exists."""
    return base.bootstrap_base(base.BaseOptions())


@pytest.fixture
def unique() -> str:
    """A short random token for names, tags and markers that must not collide."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def forget_images() -> Iterator[Callable[[str], str]]:
    """Register images (ids or tags) to remove when the test ends; returns the ref."""
    refs: list[str] = []

    def register(ref: str) -> str:
        refs.append(ref)
        return ref

    yield register
    for ref in reversed(refs):
        engine.remove_image(ref)


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    """An empty build context directory."""
    context = tmp_path / "context"
    context.mkdir()
    return context
