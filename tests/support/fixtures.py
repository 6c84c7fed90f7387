"""Fixtures every test folder may use (a pytest plugin: tests/conftest.py loads it).

Everything a fixture registers is removed when the test ends, pass or fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from support.dockercli import container_name, remove_containers


@pytest.fixture
def unique() -> str:
    """A short random token for names, tags and markers that must not collide."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def forget_images() -> Iterator[Callable[[str], str]]:
    """Register images (ids or tags) to remove when the test ends; returns the ref."""
    from bakery import engine  # noqa: PLC0415 - no Docker client library for tests that need none

    refs: list[str] = []

    def register(ref: str) -> str:
        refs.append(ref)
        return ref

    yield register
    for ref in reversed(refs):
        engine.remove_image(ref)


@pytest.fixture
def new_name() -> Iterator[Callable[[], str]]:
    """Unique container names; every one is force-removed when the test ends."""
    names: list[str] = []

    def make() -> str:
        names.append(container_name())
        return names[-1]

    yield make
    remove_containers(*names)
