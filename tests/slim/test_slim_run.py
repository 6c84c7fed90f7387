"""`python build.py run --slim`: the slim cpu image with a real host venv mounted read-only."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from support.slim import (
    CONTAINER_GID,
    CONTAINER_UID,
    build_py,
    last_json_line,
    owned_workspace,
    run_slim,
)

from bakery import engine
from bakery.errors import EXIT_DOCKER, EXIT_GUARD, EXIT_OK

pytestmark = pytest.mark.docker

SITE = "/opt/host-env/lib/python3.11/site-packages"
WHERE_IS_TORCH = (
    "import json, os, sys, torch; print(json.dumps({'file': torch.__file__, "
    "'version': torch.__version__, 'prefix': sys.prefix, "
    "'image_has_torch': os.path.exists(sys.prefix + '/lib/python3.11/site-packages/torch')}))"
)


def test_torch_is_imported_from_the_mounted_env(
    slim_image: str, host_venv: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    code = run_slim(host_venv, owned_workspace(tmp_path / "ws"), "python", "-c", WHERE_IS_TORCH)
    out, err = capfd.readouterr()
    assert code == EXIT_OK, err[-3000:]
    found = last_json_line(out)
    assert found["file"] == f"{SITE}/torch/__init__.py"
    assert found["version"] == "2.13.0+cpu"
    assert found["prefix"] == "/opt/venv"  # the image's own Python runs it
    assert found["image_has_torch"] is False


def test_host_env_is_mounted_read_only(
    slim_image: str, host_venv: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write = f"open('{SITE}/written-by-the-container', 'w')"
    code = run_slim(host_venv, owned_workspace(tmp_path / "ws"), "python", "-c", write)
    assert code != EXIT_OK
    assert "Read-only file system" in capfd.readouterr().err
    assert not (host_venv / "lib/python3.11/site-packages/written-by-the-container").exists()


def test_stylelora_smoke_passes_as_the_host_user(
    slim_image: str, host_venv: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    workspace = owned_workspace(tmp_path / "ws")
    code = run_slim(
        host_venv, workspace, "python", "-m", "stylelora", "smoke", "--output", "/workspace/run"
    )
    out, err = capfd.readouterr()
    assert code == EXIT_OK, err[-3000:]
    verdict = last_json_line(out)
    assert verdict["ok"] is True, verdict["checks"]
    assert verdict["versions"]["torch"] == "2.13.0+cpu"
    files = list((workspace / "run").rglob("*"))
    assert any(p.suffix == ".safetensors" for p in files), files
    for path in files:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (CONTAINER_UID, CONTAINER_GID), path


def test_extension_needing_a_newer_glibc_is_refused(
    slim_image: str, host_venv: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The real venv plus one wheel tagged manylinux_2_99: the image's glibc (getconf) is older."""
    env = tmp_path / "env"
    site = env / "lib/python3.11/site-packages"
    site.mkdir(parents=True)
    (env / "pyvenv.cfg").write_text((host_venv / "pyvenv.cfg").read_text())
    for entry in (host_venv / "lib/python3.11/site-packages").iterdir():
        (site / entry.name).symlink_to(entry)
    future = site / "future_ext-1.0.dist-info"
    future.mkdir()
    (future / "METADATA").write_text("Metadata-Version: 2.1\nName: future-ext\nVersion: 1.0\n")
    (future / "WHEEL").write_text("Wheel-Version: 1.0\nTag: cp311-cp311-manylinux_2_99_x86_64\n")
    assert run_slim(env, owned_workspace(tmp_path / "ws"), "true") == EXIT_GUARD
    err = capfd.readouterr().err
    assert "needs glibc 2.99 but the image has 2.36" in err, err
    assert "future_ext-1.0 (manylinux_2_99)" in err
    assert os.listdir(tmp_path / "ws") == []


def test_timeout_stops_and_removes_the_container(
    slim_image: str,
    host_venv: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    new_name: Callable[[], str],
) -> None:
    name = new_name()  # removed by the fixture too, should the check below fail
    code = build_py(
        "run", "--slim", "--host-env", str(host_venv), "--target", "cpu", "--name", name,
        "--workspace", str(owned_workspace(tmp_path / "ws")), "--timeout", "5", "--", "sleep", "120",
    )  # fmt: skip
    assert code == EXIT_DOCKER
    assert f"container {name} timed out after 5.0s and was removed" in capfd.readouterr().err
    assert not engine.container_exists(name)
