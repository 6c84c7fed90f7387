"""A save killed with SIGKILL at any point never leaves something that looks like a bundle."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from bundle_support import SmallImages, run_main, size_of, start_save, wait_until

from bakery import bundle
from bakery.errors import EXIT_BUNDLE

pytestmark = pytest.mark.docker

ARCHIVE = "images.tar.zst"
PARTIAL = "images.tar.zst.partial"


def _old_manifest_gone(out: Path, full_size: int) -> bool:
    return not (out / "manifest.json").exists()


def _partial_started(out: Path, full_size: int) -> bool:
    return size_of(out / PARTIAL) > 0


def _partial_half_written(out: Path, full_size: int) -> bool:
    return size_of(out / PARTIAL) >= full_size // 2


def _partial_nearly_done(out: Path, full_size: int) -> bool:
    return size_of(out / PARTIAL) >= full_size * 9 // 10


# Each point is reached while the archive is being streamed (so the run must not have finished).
KILL_POINTS: dict[str, Callable[[Path, int], bool]] = {
    "old-manifest-just-removed": _old_manifest_gone,
    "first-compressed-bytes": _partial_started,
    "half-the-archive": _partial_half_written,
    "nine-tenths-of-the-archive": _partial_nearly_done,
}


@pytest.mark.parametrize("point", list(KILL_POINTS), ids=list(KILL_POINTS))
def test_save_killed_midway_leaves_no_bundle(
    point: str,
    small_images: SmallImages,
    small_bundle: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = shutil.copytree(small_bundle, tmp_path / "bundle")  # a complete older bundle is there
    full_size = size_of(small_bundle / ARCHIVE)
    process = start_save(small_images.a, out)
    try:
        wait_until(
            lambda: KILL_POINTS[point](out, full_size) or process.poll() is not None,
            timeout=120,
            what=f"the save to reach {point}",
        )
        assert process.poll() is None, f"the save finished before {point}: cannot kill it there"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    left = sorted(p.name for p in out.iterdir())
    assert "manifest.json" not in left, left  # the manifest is what makes a bundle
    if point == "old-manifest-just-removed":
        # Killed while the old bundle was being cleared: what is left of it is the old files,
        # unchanged (never a half-written new one), and without a manifest it is no bundle.
        for name in set(left) - {PARTIAL}:
            assert (out / name).read_bytes() == (small_bundle / name).read_bytes(), name
    else:
        assert set(left) <= {PARTIAL}, left  # no final archive, no load.sh
    assert run_main(["load", str(out)]) == EXIT_BUNDLE
    assert "is not a complete bundle" in capsys.readouterr().err


def test_a_new_save_over_a_killed_one_is_complete(
    small_images: SmallImages, small_bundle: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bundle"
    process = start_save(small_images.a, out)
    try:
        wait_until(
            lambda: size_of(out / PARTIAL) > 0 or process.poll() is not None, 120, "a partial file"
        )
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert run_main(["save", "--image", small_images.a, "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [ARCHIVE, "load.sh", "manifest.json"]
    again = bundle.read_bundle(out).manifest
    first = bundle.read_bundle(small_bundle).manifest
    assert again.images[0].id == first.images[0].id
    assert again.archives[0].sha256 == first.archives[0].sha256  # same bytes: save is deterministic
