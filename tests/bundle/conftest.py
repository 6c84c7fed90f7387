"""Fixtures for the bundle tests: the offline server, small synthetic images, saved bundles.

The build machine is the Docker daemon this process talks to by default; the offline server is
a second, isolated daemon (offline_daemon.py) started once per session and emptied before each
test that uses it. Without a daemon (or dockerd/zstd) the folder skips on a developer machine
and fails in CI.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bundles import (
    CHANGED_DOCKERFILE,
    SMALL_DOCKERFILE,
    SmallImages,
    build_image,
    run_main,
    write_small_context,
)
from support.ci import require_daemon, skip_or_fail
from support.offline_daemon import OfflineDaemon, OfflineDaemonError, offline_daemon

from bakery import base, engine


@pytest.fixture(scope="session", autouse=True)
def build_machine() -> None:
    """The default daemon must answer, and the tools bundles need must be there."""
    require_daemon()
    for tool in ("zstd", "dockerd", "unshare", "sha256sum"):
        if shutil.which(tool) is None:
            skip_or_fail(f"`{tool}` is not installed")


@pytest.fixture(scope="session")
def offline_server() -> Iterator[OfflineDaemon]:
    """One isolated daemon for the whole session (about a second to start and to stop)."""
    try:
        with offline_daemon() as daemon:
            yield daemon
    except OfflineDaemonError as exc:
        skip_or_fail(f"cannot start a second Docker daemon: {exc}")


@pytest.fixture
def server(offline_server: OfflineDaemon) -> OfflineDaemon:
    """The offline server, emptied: no image, no container."""
    offline_server.wipe()
    return offline_server


@pytest.fixture(scope="session")
def small_images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallImages]:
    made = base.bootstrap_base(base.BaseOptions())  # reuses bakery/debian:bookworm if it exists
    token = uuid.uuid4().hex[:10]
    a, b = f"bakery-bundle-test/small:a-{token}", f"bakery-bundle-test/small:b-{token}"
    context_a = tmp_path_factory.mktemp("small-a")
    write_small_context(context_a, "print('version 1')\n")
    a_id = build_image(context_a, SMALL_DOCKERFILE.format(base=made.tag), a)
    context_b = tmp_path_factory.mktemp("small-b")
    write_small_context(context_b, "print('version 2')\n")
    b_id = build_image(context_b, CHANGED_DOCKERFILE.format(parent=a), b)
    yield SmallImages(a, a_id, b, b_id)
    for ref in (b, a):
        engine.remove_image(ref)


@pytest.fixture(scope="session")
def small_bundle(small_images: SmallImages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full bundle of image A."""
    output = tmp_path_factory.mktemp("bundles") / "full-a"
    assert run_main(["save", "--image", small_images.a, "-o", str(output)]) == 0
    return output


@pytest.fixture(scope="session")
def small_delta(
    small_images: SmallImages, small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A delta bundle of image B against the full bundle of A."""
    output = tmp_path_factory.mktemp("bundles") / "delta-b"
    code = run_main(
        ["save", "--image", small_images.b, "-o", str(output), "--since", str(small_bundle)]
    )
    assert code == 0
    return output
