"""matrix apt_packages end to end: a real BuildKit build installs them in the system layer and
leaves no apt cache in the image (the cache lives in a BuildKit cache mount).

Builds the slim cpu variant (no torch download) from the local Debian base, with `jq` added.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ci import require_daemon
from support.dockercli import docker, run_container
from support.project_copy import BASE_MAP, CPU_VARIANT, copy_project

from bakery.cli import main

pytestmark = [pytest.mark.docker]
VARIANT = f"{CPU_VARIANT}-slim"


@pytest.fixture
def image() -> Iterator[str]:
    require_daemon()
    if docker("image", "inspect", BASE_MAP.split("=")[1], check=False).returncode != 0:
        assert main(["base"]) == 0
    ref = f"rocm-offline-test/apt-{uuid.uuid4().hex[:8]}:{VARIANT}"
    yield ref
    docker("rmi", ref, check=False)


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
    result = run_container(
        "--network", "none", "--entrypoint", "sh", image, "-c", probe, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0].startswith("install ok installed")
    assert result.stdout.strip().endswith("0"), result.stdout
