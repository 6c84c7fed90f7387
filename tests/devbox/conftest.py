"""Fixtures for the dev-container and doctor tests, against a real Docker engine (no mocks).

Without a daemon the folder is skipped with a reason on a developer machine and fails in CI
(`CI=true`). Every container a test creates has a unique name and is force-removed at the end
(the product never removes containers unless asked; the tests clean up after themselves), and
the small test image is removed after the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.ci import require_daemon
from support.devbox import MATRIX, TEST_UID, DevboxImage, build_test_image
from support.dockercli import docker

from bakery import base
from bakery.matrix import load_matrix


@pytest.fixture(scope="session", autouse=True)
def devbox_engine() -> None:
    require_daemon()


@pytest.fixture(scope="session")
def devbox_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevboxImage]:
    """The stand-in image, tagged as a CPU and a ROCm variant of the matrix under a private
    repository; removed at the end."""
    base.bootstrap_base(base.BaseOptions())  # reuses bakery/debian:bookworm when it exists
    variants = load_matrix(MATRIX).variants
    cpu = next(v for v in variants if v.accelerator == "cpu" and v.flavour == "full")
    rocm = next(v for v in variants if v.accelerator == "rocm" and v.flavour == "full")
    repository = f"bakery-devbox-test-{uuid.uuid4().hex[:8]}/bakery"
    refs = (cpu.ref(repository), rocm.ref(repository))
    build_test_image(tmp_path_factory.mktemp("devbox-image"), refs[0], cpu.id)
    docker("tag", refs[0], refs[1])
    try:
        yield DevboxImage(repository, cpu.id, rocm.id, refs)
    finally:
        docker("image", "rm", "--force", *refs, check=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A project folder owned by the test's non-root uid, as a user's checkout would be."""
    folder = tmp_path / "project"
    folder.mkdir()
    os.chown(folder, TEST_UID, TEST_UID)
    return folder


@pytest.fixture
def up_args(devbox_image: DevboxImage, workspace: Path) -> Callable[..., list[str]]:
    """`up` arguments for a container of the test image, run as the test uid."""

    def make(name: str, *extra: str, variant: str | None = None) -> list[str]:
        return [
            "up", "--matrix", str(MATRIX), "--repository", devbox_image.repository,
            "--variant", variant or devbox_image.cpu_variant, "--name", name,
            "--workspace", str(workspace), "--user", f"{TEST_UID}:{TEST_UID}",
            "--pip-cache", "none", "--hf-home", "none", *extra,
        ]  # fmt: skip

    return make
