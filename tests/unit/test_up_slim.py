"""`up --slim --host-env DIR`: a persistent slim dev container, with run --slim's guards.

Everything here is decided before Docker is touched; the image lookup is the only seam.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.slim_env import make_env

from bakery import devbox
from bakery.cli import build_parser
from bakery.cli import devbox as devbox_cli
from bakery.errors import GuardError, UsageError

ROOT = Path(__file__).resolve().parents[2]
SLIM = "2.13.0-cpu-py3.11-slim"


def up(tmp_path: Path, *extra: str) -> devbox.UpOptions:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    args = build_parser().parse_args([
        "up", "--matrix", str(ROOT / "matrix.toml"), "--target", "cpu",
        "--workspace", str(workspace), "--user", "4321:4322", "--pip-cache", "none",
        "--hf-home", "none", "--dev-root", str(tmp_path), *extra,
    ])  # fmt: skip
    return devbox.up_options(devbox_cli.up_request(args))


@pytest.fixture(autouse=True)
def images_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devbox.options, "_image_exists", lambda ref: True)


def test_slim_up_mounts_the_host_env_read_only_on_pythonpath(tmp_path: Path) -> None:
    env = make_env(tmp_path / "env")
    env.chmod(0o755)
    for path in env.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    opts = up(tmp_path, "--slim", "--host-env", str(env), "--env", "A=1")
    assert opts.variant.id == SLIM
    assert devbox.DataMount(env.resolve(), "/opt/host-env", "ro") in opts.data
    spec = devbox.container_spec(opts)
    assert spec.env["PYTHONPATH"] == "/opt/host-env/lib/python3.11/site-packages"
    assert spec.env["A"] == "1"
    assert spec.shm_size == "8g"


def test_slim_up_refuses_an_env_without_the_stack(tmp_path: Path) -> None:
    env = make_env(tmp_path / "env", stack=False)
    with pytest.raises(GuardError) as info:
        up(tmp_path, "--slim", "--host-env", str(env))
    assert "lacks the variant's stack package(s)" in info.value.render()


def test_slim_needs_host_env_and_host_env_needs_slim(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="needs --host-env"):
        up(tmp_path, "--slim")
    with pytest.raises(UsageError, match="is for slim images"):
        up(tmp_path, "--host-env", str(tmp_path))
