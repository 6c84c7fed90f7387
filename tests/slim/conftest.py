"""Fixtures for the slim runs: real host environments (venvs) and the slim cpu image.

The main host environment is a real virtual environment with the image's Python, torch
2.13.0+cpu (the local wheel pip is configured with) and the matrix's application stack for that
Python: 1 to 3 minutes and 1.3 GB. It is kept between sessions under the temporary folder
(`$BAKERY_TEST_CACHE`, default <tmp>/bakery-test-cache), keyed by the interpreter and the exact
pins, marked complete only when pip succeeded; caches for other pins are removed. The other
environments are real too: an empty venv (no torch) and one made by another Python interpreter.

Tests that start containers ask for `slim_image`: without a daemon they skip with a reason on a
developer machine and fail in CI (`CI=true`); so does an image that is not built (the reason
names the command that builds it).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.ci import require_daemon, require_image

from bakery.matrix import Variant, load_matrix

ROOT = Path(__file__).resolve().parents[2]
SLIM_ID = "2.13.0-cpu-py3.11-slim"
FULL_ID = "2.13.0-cpu-py3.11"
VENV_SECONDS = 900


@pytest.fixture(scope="session")
def slim_variant() -> Variant:
    return next(v for v in load_matrix(ROOT / "matrix.toml").variants if v.id == SLIM_ID)


@pytest.fixture(scope="session")
def slim_image(slim_variant: Variant) -> str:
    """The slim cpu image's reference; skip (or fail in CI) when it cannot be used here."""
    require_daemon()
    require_image(slim_variant.image, f"python build.py --variant {SLIM_ID}")
    return slim_variant.image


def find_python(version: str) -> str | None:
    """A working interpreter for Python `version` ("3.12"): on PATH or under pyenv."""
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/*/bin/python{version}")))
    candidates.append(f"/usr/bin/python{version}")
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys, venv; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def make_venv(python: str, dest: Path, packages: list[str]) -> Path:
    with_pip = [] if packages else ["--without-pip"]
    subprocess.run([python, "-m", "venv", *with_pip, str(dest)], check=True, timeout=120)
    if packages:
        subprocess.run(
            [str(dest / "bin" / "python"), "-m", "pip", "install", "--quiet", *packages],
            check=True, timeout=VENV_SECONDS,
        )  # fmt: skip
    return dest


def cached_venv(python: str, packages: list[str]) -> Path:
    """make_venv, kept between sessions: reused only when marked complete for the same key."""
    cache = Path(
        os.environ.get("BAKERY_TEST_CACHE") or Path(tempfile.gettempdir()) / "bakery-test-cache"
    )
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256("\n".join([os.path.realpath(python), *packages]).encode()).hexdigest()[:16]
    venv, done = cache / f"slim-venv-{key}", cache / f"slim-venv-{key}.complete"
    with (cache / "slim-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session making the same venv: wait for it
        for stale in cache.glob("slim-venv-*"):
            if stale not in (venv, done):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        if not done.exists():
            shutil.rmtree(venv, ignore_errors=True)  # a half-made one from an interrupted run
            make_venv(python, venv, packages)
            done.write_text("\n".join(packages) + "\n")
    return venv


@pytest.fixture(scope="session")
def host_venv(slim_variant: Variant) -> Path:
    """A working torch environment on the host: the image's Python, torch, the stack."""
    python = find_python(slim_variant.python)
    if python is None:
        pytest.skip(f"no Python {slim_variant.python} interpreter on this machine")
    packages = [f"torch=={slim_variant.torch}+{slim_variant.index.local}"]
    packages += [f"{name}=={version}" for name, version in slim_variant.stack]
    return cached_venv(python, packages)


@pytest.fixture(scope="session")
def empty_venv(tmp_path_factory: pytest.TempPathFactory, slim_variant: Variant) -> Path:
    """A real venv of the right Python without torch."""
    python = find_python(slim_variant.python)
    if python is None:
        pytest.skip(f"no Python {slim_variant.python} interpreter on this machine")
    return make_venv(python, tmp_path_factory.mktemp("slim-empty") / "venv", [])


@pytest.fixture(scope="session")
def other_python_venv(tmp_path_factory: pytest.TempPathFactory, slim_variant: Variant) -> Path:
    """A real venv made by another Python interpreter (3.12, 3.13 or 3.10, whichever exists)."""
    for version in ("3.12", "3.13", "3.10"):
        python = find_python(version) if version != slim_variant.python else None
        if python is not None:
            return make_venv(python, tmp_path_factory.mktemp("slim-other") / "venv", [])
    pytest.skip("no Python interpreter other than the image's on this machine")
