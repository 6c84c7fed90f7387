"""build.py runs from a fresh shell: it re-executes itself in the project's `.venv` (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _project_copy(tmp_path: Path) -> Path:
    """build.py and the bakery package, as in a clone (no .venv yet)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "build.py").write_text((REPO / "build.py").read_text(encoding="utf-8"))
    (project / "bakery").symlink_to(REPO / "bakery")
    return project


def _run_without_site(project: Path) -> subprocess.CompletedProcess[str]:
    """`python -S`: the interpreter sees no site-packages, like a system python3 without deps."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BAKERY_REEXECUTED")}
    return subprocess.run(
        [sys.executable, "-S", str(project / "build.py"), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
        cwd=project,
    )


def test_without_dependencies_or_venv_it_says_to_run_the_setup(tmp_path: Path) -> None:
    done = _run_without_site(_project_copy(tmp_path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "run scripts/setup.sh" in done.stderr
    assert "No module named" in done.stderr


def test_without_dependencies_it_reexecutes_in_the_project_venv(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    bin_dir = project / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    # Stands in for a venv's interpreter: runs this interpreter (which has the dependencies) by
    # its own path, so that a venv's interpreter stays one (a symlink would lose its pyvenv.cfg).
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    done = _run_without_site(project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bakery ")
