"""A throwaway copy of the project (what a build needs) for tests that change its inputs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CPU_VARIANT = "2.13.0-cpu-py3.11"
BASE_MAP = "docker.io/library/debian:bookworm-slim=bakery/debian:bookworm"


def copy_project(dest: Path, edit_matrix: Callable[[str], str] | None = None) -> Path:
    """Copy matrix, template, build inputs and the training code; re-render images/."""
    from bakery.cli import main  # noqa: PLC0415 - keeps import light for collection

    dest.mkdir(parents=True, exist_ok=True)
    for name in ("matrix.toml", "Dockerfile.in", ".dockerignore"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "stylelora", dest / "stylelora", ignore=shutil.ignore_patterns("__pycache__")
    )
    (dest / "bakery" / "data").mkdir(parents=True)
    shutil.copy(ROOT / "bakery" / "probe.py", dest / "bakery" / "probe.py")
    shutil.copy(ROOT / "bakery" / "data" / "with-build-secrets", dest / "bakery" / "data")
    if edit_matrix is not None:
        matrix = dest / "matrix.toml"
        matrix.write_text(edit_matrix(matrix.read_text(encoding="utf-8")), encoding="utf-8")
    code = main(
        [
            "generate",
            "--matrix",
            str(dest / "matrix.toml"),
            "--template",
            str(dest / "Dockerfile.in"),
        ]
    )
    if code != 0:
        raise AssertionError(f"generate failed in the project copy ({code})")
    return dest
