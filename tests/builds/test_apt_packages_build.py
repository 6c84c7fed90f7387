"""matrix apt_packages end to end: a real BuildKit build installs them in the system layer and
leaves no apt cache in the image (the cache lives in a BuildKit cache mount).

Builds the slim cpu variant (no torch download) from the local Debian base, with `jq` added.
"""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from project_copy import BASE_MAP, CPU_VARIANT, copy_project
from testsupport import in_ci

from bakery.cli import main

pytestmark = [pytest.mark.docker]
VARIANT = f"{CPU_VARIANT}-slim"


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def image() -> Iterator[str]:
    if docker("info").returncode != 0:
        if in_ci():
            pytest.fail("CI needs a Docker engine")
        pytest.skip("no Docker daemon answers (sudo scripts/install-engine.sh)")
    if docker("image", "inspect", BASE_MAP.split("=")[1]).returncode != 0:
        assert main(["base"]) == 0
    ref = f"rocm-offline-test/apt-{uuid.uuid4().hex[:8]}:{VARIANT}"
    yield ref
    docker("rmi", ref)


def with_jq(text: str) -> str:
    """A top-level key must come before the first [table] header."""
    return re.sub(r"^\[project\]", 'apt_packages = ["jq"]\n\n[project]', text, count=1, flags=re.M)


def test_apt_packages_are_installed_without_leaving_the_apt_cache(
    image: str, tmp_path: Path
) -> None:
    project = copy_project(tmp_path / "project", with_jq)
    dockerfile = (project / "images" / VARIANT / "Dockerfile").read_text(encoding="utf-8")
    assert "procps tini \\\n       jq\n" in dockerfile
    repository = image.split(":", maxsplit=1)[0]
    code = main([
        "--matrix", str(project / "matrix.toml"), "--variant", VARIANT,
        "--base-map", BASE_MAP, "--repository", repository,
    ])  # fmt: skip
    assert code == 0
    probe = "dpkg-query -W -f '${Status}' jq; ls /var/cache/apt/archives/*.deb /var/lib/apt/lists/*_Packages* 2>/dev/null | wc -l"
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", image, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0].startswith("install ok installed")
    assert result.stdout.strip().endswith("0"), result.stdout
