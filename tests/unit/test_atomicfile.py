"""The one atomic, durable write helper: whole files or nothing, fsynced, no temporary left."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bakery import atomicfile


def test_write_atomic_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    atomicfile.write_atomic(target, "{}\n")
    atomicfile.write_atomic(target, b"[1]\n", mode=0o600)
    assert target.read_bytes() == b"[1]\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_write_atomic_fsyncs_the_file_and_then_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "tested.json"
    atomicfile.write_atomic(target, "{}")
    assert len(synced) == 2
    assert Path(synced[0]).name.startswith(".tested.json.")  # the data, before the rename
    assert synced[1] == str(tmp_path)  # the rename itself


def test_an_interrupted_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results.json"
    target.write_text("old", encoding="utf-8")

    def interrupted(src: object, dst: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomicfile.write_atomic(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_streaming_writer_commits_only_a_finished_block(tmp_path: Path) -> None:
    target = tmp_path / "load.sh"
    with atomicfile.atomic_writer(target, 0o755) as handle:
        handle.write(b"#!/bin/sh\n")
        assert not target.exists()  # nothing under the final name while writing
    assert target.read_bytes() == b"#!/bin/sh\n"
    assert target.stat().st_mode & 0o777 == 0o755

    def killed_midway() -> None:
        with atomicfile.atomic_writer(target) as handle:
            handle.write(b"half")
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        killed_midway()
    assert target.read_bytes() == b"#!/bin/sh\n"
    assert [p.name for p in tmp_path.iterdir()] == ["load.sh"]


def test_commit_without_overwrite_never_replaces_a_file(tmp_path: Path) -> None:
    target = tmp_path / "compose.yaml"
    target.write_text("mine", encoding="utf-8")
    with atomicfile.pending_file(target) as pending:
        pending.write(b"theirs")
        with pytest.raises(FileExistsError):
            pending.commit(overwrite=False)
    assert target.read_text(encoding="utf-8") == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["compose.yaml"]


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        (".manifest.json.ab_cd123.partial", True),
        ("manifest.json.partial", False),
        (".manifest.json.partial", False),
        (".manifest.json.abcdefgh.partial.x", False),
        (".other.json.abcdefgh.partial", False),
    ],
)
def test_temporary_names_are_recognised_exactly(candidate: str, expected: bool) -> None:
    assert atomicfile.is_temporary_of(candidate, "manifest.json") is expected
