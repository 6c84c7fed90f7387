"""Fixtures for tests that drive a real Docker engine (no mocks).

Without a daemon the folder is skipped with a reason on a developer machine, and fails in CI
(`CI=true`): CI must never pass by skipping. Every image a test builds is removed afterwards
(`forget_images`, from support.fixtures); the base image is kept (it is what
`python build.py base` makes, and takes half a minute).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.ci import require_daemon

from bakery import base, engine


@pytest.fixture(scope="session", autouse=True)
def engine_info() -> engine.EngineInfo:
    """The engine's versions; skip (developer machine) or fail (CI) when no daemon answers."""
    require_daemon()
    return engine.check_engine()  # a daemon without a usable buildx is a failure, not a skip


@pytest.fixture(scope="session")
def base_image() -> base.BaseResult:
    """`bakery/debian:bookworm`, made by bootstrap_base unless it already exists."""
    return base.bootstrap_base(base.BaseOptions())


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    """An empty build context directory."""
    context = tmp_path / "context"
    context.mkdir()
    return context
