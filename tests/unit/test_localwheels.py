"""The plan checks local pip sources for each variant's exact torch stack before any build."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakery.build import plan
from bakery.cli import main
from bakery.localwheels import Need, matches, missing_wheels
from bakery.pipsources import PipSources

ROOT = Path(__file__).resolve().parents[2]
MATRIX = str(ROOT / "matrix.toml")
ROCM = "2.9.1-rocm6.3-py3.11"
TORCH = "torch-2.9.1+rocm6.3-cp311-cp311-manylinux_2_28_x86_64.whl"
VISION = "torchvision-0.24.1+rocm6.3-cp311-cp311-manylinux_2_28_x86_64.whl"
NEED = Need(ROCM, "torch", "2.9.1+rocm6.3", "3.11")

ROWS = [
    (TORCH, True),
    ("torch-2.9.1+rocm6.3-cp312-cp312-manylinux_2_28_x86_64.whl", False),  # other Python
    ("torch-2.9.1+cu128-cp311-cp311-manylinux_2_28_x86_64.whl", False),  # other build
    ("torch-2.9.1-cp311-cp311-manylinux_2_28_x86_64.whl", False),  # no local label
    ("torch-2.9.10+rocm6.3-cp311-cp311-manylinux_2_28_x86_64.whl", False),
    ("torch-2.9.1+rocm6.3-cp311-cp311-manylinux_2_28_aarch64.whl", False),
    ("torch-2.9.1+rocm6.3-cp311-cp311-linux_x86_64.whl", True),
    ("torch-2.9.1+rocm6.3-cp39-abi3-manylinux_2_28_x86_64.whl", True),
    ("torch-2.9.1+rocm6.3-1-cp311-cp311-manylinux_2_28_x86_64.whl", True),  # build tag
    ("torch-2.9.1+rocm6.3-cp311-cp311-win_amd64.whl", False),
    ("not-a-wheel.whl", False),
]


@pytest.mark.parametrize(("filename", "ok"), ROWS, ids=[r[0] for r in ROWS])
def test_wheel_matching(filename: str, ok: bool) -> None:
    assert matches(filename, NEED) is ok


def test_find_links_and_local_index_are_both_read(tmp_path: Path) -> None:
    links = tmp_path / "wheels"
    links.mkdir()
    (links / TORCH).write_bytes(b"")
    page = tmp_path / "idx" / "simple" / "torchvision" / "index.html"
    page.parent.mkdir(parents=True)
    page.write_text(f'<a href="../../files/{VISION}#sha256=00">{VISION}</a>', encoding="utf-8")
    sources = PipSources(
        extra_index_urls=(f"file://{tmp_path}/idx/simple",), find_links=(str(links),)
    )
    vision = Need(ROCM, "torchvision", "0.24.1+rocm6.3", "3.11")
    assert missing_wheels([NEED, vision], sources) == []
    assert missing_wheels([NEED, vision], PipSources(find_links=(str(links),))) == [vision]


def dry_run(*extra: str) -> int:
    return main(["--matrix", MATRIX, "--variant", ROCM, "--dry-run", "--no-host-pip", *extra])


def test_local_source_refused_naming_missing_files_and_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / TORCH).write_bytes(b"")
    assert dry_run("--torch-source", "local", "--find-links", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "lack 1 wheel(s)" in err
    assert f"{ROCM}: torchvision-0.24.1+rocm6.3-cp311" in err
    assert f"looked in {tmp_path}" in err
    assert "Traceback" not in err


def test_local_source_with_every_wheel_is_planned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / TORCH).write_bytes(b"")
    (tmp_path / VISION).write_bytes(b"")
    assert dry_run("--torch-source", "local", "--find-links", str(tmp_path)) == 0
    assert "torch from local" in capsys.readouterr().err


def test_auto_falling_back_to_local_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(plan, "index_reachable", lambda url, ca: False)
    assert dry_run("--find-links", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "torch-2.9.1+rocm6.3-cp311" in err
    assert "torchvision-0.24.1+rocm6.3-cp311" in err
