"""build.py runs from a fresh shell: it re-executes itself in the project's `.venv` (issue 14)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

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


def _load_entry() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_entry", REPO / "build.py")
    assert spec is not None
    assert spec.loader is not None
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    return entry


def test_build_py_looks_for_every_dependency_before_it_runs_bakery() -> None:
    """bakery.cli imports its dependencies lazily, so importing it no longer proves they are
    there: build.py must look for each one, or a python without them would not reach .venv."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    needed = {
        re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].lower().replace("_", "-")
        for spec in project["dependencies"]
        if "python_version <" not in spec  # tomli, for Pythons bakery does not run on here
    }
    provides = importlib.metadata.packages_distributions()
    probed = {
        dist.lower().replace("_", "-")
        for name in _load_entry().DEPENDENCIES
        for dist in provides[name]
    }
    assert needed - probed == set()


def test_the_reexecution_mark_is_not_inherited_by_what_bakery_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # found by the workflow replay: after a re-execution into .venv, `python build.py job` run by
    # the training-resume image test inherited the mark, could not re-execute, and exited 2
    entry = _load_entry()
    monkeypatch.setenv(entry.REEXEC_MARK, "1")  # as in the re-executed process
    entry._in_project_venv()  # bakery's dependencies are importable here
    assert entry.REEXEC_MARK not in os.environ
