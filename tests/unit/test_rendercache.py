"""`generate --check`'s record of the last full check (bakery.rendercache): it answers only when
nothing rendering reads and nothing under images/ changed, so it can never hide drift."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from bakery import rendercache
from bakery.cli import main

ROOT = Path(__file__).resolve().parents[2]
BAKE = "docker-bake.json"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("matrix.toml", "Dockerfile.in", BAKE):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "images", tmp_path / "images")
    return tmp_path


def check(project: Path, *extra: str) -> int:
    template = str(project / "Dockerfile.in")
    return main(
        [
            "generate",
            "--matrix",
            str(project / "matrix.toml"),
            "--check",
            "--template",
            template,
            *extra,
        ]
    )


def count(project: Path) -> int | None:
    return rendercache.checked_count(
        project, project / "matrix.toml", project / "Dockerfile.in", BAKE
    )


def test_a_full_check_in_sync_is_remembered_and_reused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert count(project) is None
    assert check(project) == 0
    assert count(project) == 38
    capsys.readouterr()
    assert check(project) == 0
    assert "nothing they are rendered from changed" in capsys.readouterr().err


def test_a_hand_edit_after_the_record_is_still_drift(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(project) == 0
    target = project / "images" / "2.13.0-cpu-py3.11" / "Dockerfile"
    target.write_text(target.read_text(encoding="utf-8") + "RUN echo hand-edit\n", encoding="utf-8")
    assert count(project) is None
    assert check(project) == 1
    assert "2.13.0-cpu-py3.11/Dockerfile: differs from a fresh render" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["matrix.toml", "Dockerfile.in"])
def test_a_changed_input_renders_again(name: str, project: Path) -> None:
    assert check(project) == 0
    with (project / name).open("a", encoding="utf-8") as handle:
        handle.write("\n# a comment changes nothing rendered, but the input changed\n")
    assert count(project) is None


def test_a_new_file_under_images_is_a_change(project: Path) -> None:
    assert check(project) == 0
    (project / "images" / "stray.txt").write_text("x", encoding="utf-8")
    assert count(project) is None
    assert check(project) == 1  # the full check names it


def test_another_jinja2_renders_again(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check(project) == 0
    monkeypatch.setattr(rendercache, "_jinja2_fact", lambda: "jinja2: another build")
    assert count(project) is None


def test_no_cache_always_renders(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(project) == 0
    capsys.readouterr()
    assert check(project, "--no-cache") == 0
    assert "nothing they are rendered from changed" not in capsys.readouterr().err


def test_a_fifo_as_matrix_is_never_opened_by_the_cache(tmp_path: Path) -> None:
    fifo = tmp_path / "matrix.toml"
    os.mkfifo(fifo)
    result: list[int | None] = []
    worker = threading.Thread(
        target=lambda: result.append(
            rendercache.checked_count(tmp_path, fifo, ROOT / "Dockerfile.in", BAKE)
        ),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=10)
    assert result == [None], "the cache blocked on a FIFO or answered for it"


def test_a_damaged_record_is_a_miss(project: Path) -> None:
    assert check(project) == 0
    (project / rendercache.RECORD).write_text("{damaged", encoding="utf-8")
    assert count(project) is None
    assert check(project) == 0
    assert count(project) == 38
