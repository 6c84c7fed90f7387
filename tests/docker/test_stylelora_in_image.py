"""The training code's tests inside the built cpu image, for hosts without torch (issue 14).

scripts/setup.sh never fetches torch; the cpu image has torch and the training stack. pytest
(pure Python) is lent to the container from the host, read-only, with the project's sources.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from support.ci import require_image
from support.dockercli import run_container

from bakery.matrix import load_matrix

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
VARIANT = "2.13.0-cpu-py3.11"
PYTEST_MODULES = ("pytest", "_pytest", "pluggy", "iniconfig", "py")
TIMEOUT = 1800.0


def _lend_pytest(folder: Path) -> Path:
    """Copy pytest and its pure-Python dependencies into `folder` (mounted into the container)."""
    for name in PYTEST_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, folder / origin.parent.name)
        else:
            shutil.copy2(origin, folder / origin.name)
    return folder


def _cpu_image() -> str:
    variant = next(v for v in load_matrix(REPO / "matrix.toml").variants if v.id == VARIANT)
    require_image(variant.image, f"python3 build.py --variant {VARIANT}")
    return variant.image


def test_stylelora_tests_pass_inside_the_cpu_image(tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("this host has torch: tests/unit/training ran on the host")
    image = _cpu_image()
    lent = _lend_pytest(tmp_path / "pytest")
    done = run_container(
        *("--network", "none"),
        *("-v", f"{REPO}:/src:ro", "-v", f"{lent}:/opt/pytest:ro", "-w", "/src"),
        *("-e", "PYTHONPATH=/opt/pytest", "-e", "PYTHONDONTWRITEBYTECODE=1"),
        *(image, "python", "-m", "pytest", "-p", "no:cacheprovider", "-q"),
        *("--rootdir=/src", "-c", "/src/pyproject.toml", "tests/unit/training"),
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
