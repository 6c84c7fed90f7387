"""A save killed with SIGKILL never leaves a half-new bundle: the old one whole, or none."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from support.bundles import POLL_SECONDS, SmallImages, run_main, size_of, start_save
from support.wait import wait_until

from bakery import bundle
from bakery.errors import EXIT_BUNDLE
from bakery.ui import err_console

pytestmark = pytest.mark.docker

ARCHIVE = "images.tar.zst"


def partial_size(out: Path) -> int:
    """Size of the archive being written (bakery.atomicfile's temporary file), -1 if none."""
    found = [p for p in out.glob(".images.tar.zst.*.partial")] if out.is_dir() else []
    return max((size_of(p) for p in found), default=-1)


def _partial_started(out: Path, full_size: int) -> bool:
    return partial_size(out) > 0


def _partial_half_written(out: Path, full_size: int) -> bool:
    return partial_size(out) >= full_size // 2


def _partial_nearly_done(out: Path, full_size: int) -> bool:
    return partial_size(out) >= full_size * 9 // 10


# Each point is reached while the archive is being streamed (so the run must not have finished).
KILL_POINTS: dict[str, Callable[[Path, int], bool]] = {
    "first-compressed-bytes": _partial_started,
    "half-the-archive": _partial_half_written,
    "nine-tenths-of-the-archive": _partial_nearly_done,
}


def kill_at(point: str, out: Path, image: str, full_size: int) -> None:
    process = start_save(image, out)
    try:
        wait_until(
            lambda: KILL_POINTS[point](out, full_size) or process.poll() is not None,
            timeout=120,
            what=f"the save to reach {point}",
            interval=POLL_SECONDS,
        )
        assert process.poll() is None, f"the save finished before {point}: cannot kill it there"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.mark.parametrize("point", list(KILL_POINTS), ids=list(KILL_POINTS))
def test_save_killed_midway_leaves_the_old_bundle_whole(
    point: str, small_images: SmallImages, small_bundle: Path, tmp_path: Path
) -> None:
    """The old bundle is replaced only once the new archive is complete: killed before, it is
    untouched (and loads); only a temporary file is left, which the next save removes."""
    out = shutil.copytree(small_bundle, tmp_path / "bundle")  # a complete older bundle is there
    kill_at(point, out, small_images.a, size_of(small_bundle / ARCHIVE))
    left = sorted(p.name for p in out.iterdir())
    assert set(left) - {ARCHIVE, "load.sh", "manifest.json"} == {
        name for name in left if bundle.is_leftover(name)
    }, left
    for name in (ARCHIVE, "load.sh", "manifest.json"):
        assert (out / name).read_bytes() == (small_bundle / name).read_bytes(), name
    bundle.verify_bundle(bundle.read_bundle(out), err_console())


def test_save_killed_in_a_new_folder_leaves_no_bundle(
    small_images: SmallImages,
    small_bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "bundle"
    kill_at("half-the-archive", out, small_images.a, size_of(small_bundle / ARCHIVE))
    assert all(bundle.is_leftover(p.name) for p in out.iterdir())
    assert run_main(["load", str(out)]) == EXIT_BUNDLE
    assert "is not a complete bundle" in capsys.readouterr().err


def test_a_new_save_over_a_killed_one_is_complete(
    small_images: SmallImages, small_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    kill_at("first-compressed-bytes", out, small_images.a, size_of(small_bundle / ARCHIVE))
    assert run_main(["save", "--image", small_images.a, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [ARCHIVE, "load.sh", "manifest.json"]
    again = bundle.read_bundle(out).manifest
    first = bundle.read_bundle(small_bundle).manifest
    assert again.images[0].id == first.images[0].id
    assert again.archives[0].sha256 == first.archives[0].sha256  # same bytes: save is deterministic
