"""Training smoke suite: stylelora trains, saves and reloads inside the image, as a host user."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.dockercli import run_container
from support.images import ImageUnderTest, as_root

pytestmark = pytest.mark.docker

HOST_UID = 4321  # a dev container runs as the host user's ids; these are not the test runner's
HOST_GID = 4322


def test_smoke_run_as_host_user_writes_owned_readable_outputs(
    image: ImageUnderTest, tmp_path: Path
) -> None:
    if image.variant.flavour == "slim":
        pytest.skip("slim image: the smoke run needs the host environment (slim suite)")
    out = tmp_path / "out"
    out.mkdir()
    as_root(tmp_path, f"chown {HOST_UID}:{HOST_GID} out", image.ref)
    try:
        _check_smoke_outputs(image, out)
    finally:  # give the outputs back, so that an unprivileged runner can delete its tmp_path
        as_root(tmp_path, f"chown -R {os.getuid()}:{os.getgid()} out", image.ref)


def _check_smoke_outputs(image: ImageUnderTest, out: Path) -> None:
    result = run_container(
        "--network", "none", "--user", f"{HOST_UID}:{HOST_GID}",
        "-e", "HOME=/tmp", "-v", f"{out}:/out", image.ref,
        "python", "-m", "stylelora", "smoke", "--output", "/out/run",
        timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    verdict = json.loads(result.stdout.strip().splitlines()[-1])
    assert verdict["ok"] is True, verdict["checks"]
    files = [p for p in out.rglob("*")]
    assert any(p.suffix == ".safetensors" for p in files), files
    assert any(p.name == "run.json" for p in files), files
    for path in files:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (HOST_UID, HOST_GID), (
            f"{path} is owned by {st.st_uid}:{st.st_gid}"
        )
        assert st.st_mode & 0o400, f"{path} is not readable by its owner"
    assert not [p for p in files if p.lstat().st_uid == 0], "nothing may be written as root"
