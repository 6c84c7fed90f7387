"""Local pip sources are walked for their size only when they changed (issue 17, goal 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bakery.build import sizes


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    (folder / "torch").mkdir(parents=True)
    (folder / "a-1.0-py3-none-any.whl").write_bytes(b"x" * 100)
    (folder / "torch" / "torch-2.13.0.whl").write_bytes(b"y" * 50)
    return folder


def test_size_is_walked_once_while_nothing_changes(
    wheels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "sizes.json"
    assert sizes.remembered_folder_size(wheels, cache) == 150
    walks: list[Path] = []

    def walk(folder: Path) -> int:
        walks.append(folder)
        return -1

    monkeypatch.setattr(sizes, "folder_size", walk)
    assert sizes.remembered_folder_size(wheels, cache) == 150
    assert walks == []


@pytest.mark.parametrize("where", [".", "torch"], ids=["find-links", "index-project"])
def test_a_changed_folder_is_walked_again(wheels: Path, tmp_path: Path, where: str) -> None:
    cache = tmp_path / "sizes.json"
    assert sizes.remembered_folder_size(wheels, cache) == 150
    (wheels / where / "new-2.0-py3-none-any.whl").write_bytes(b"z" * 7)
    stat = (wheels / where).stat()
    # the same second on a coarse clock: move the folder's time explicitly, as adding a file does
    os.utime(wheels / where, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert sizes.remembered_folder_size(wheels, cache) == 157
