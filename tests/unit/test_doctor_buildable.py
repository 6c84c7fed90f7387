"""doctor answers per variant whether this host can build it, and from which sources."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bakery import build, doctor, interpreters
from bakery.build import plan
from bakery.matrix import load_matrix
from bakery.pipsources import PipSources

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {v.id: v for v in load_matrix(ROOT / "matrix.toml").variants}
WHEELS = (
    "torch-2.9.1+rocm6.3-cp311-cp311-manylinux_2_28_x86_64.whl",
    "torchvision-0.24.1+rocm6.3-cp311-cp311-manylinux_2_28_x86_64.whl",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch index and GitHub do not answer (a closed loopback port for GitHub)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(interpreters, "DOWNLOAD_URL", f"http://127.0.0.1:{port}/releases")
    monkeypatch.setattr(plan, "index_reachable", lambda url, ca: False)


def check(variant: str, folder: Path) -> doctor.Check:
    options = build.BuildOptions(root=ROOT, pip=PipSources(find_links=(str(folder),)))
    return doctor.check_buildable([VARIANTS[variant]], options)[0]


def test_buildable_from_local_wheels(tmp_path: Path) -> None:
    for name in WHEELS:
        (tmp_path / name).write_bytes(b"")
    result = check("2.9.1-rocm6.3-py3.11", tmp_path)
    assert result.status == doctor.OK, result.detail
    assert result.check == "buildable 2.9.1-rocm6.3-py3.11"
    assert "torch from local" in result.detail
    assert str(tmp_path) in result.detail
    assert "base image's Python" in result.detail


def test_missing_wheel_makes_it_unbuildable(tmp_path: Path) -> None:
    (tmp_path / WHEELS[0]).write_bytes(b"")
    result = check("2.9.1-rocm6.3-py3.11", tmp_path)
    assert result.status == doctor.WARN
    assert "not buildable here" in result.detail
    assert "torchvision-0.24.1+rocm6.3-cp311" in result.detail


def test_interpreter_download_makes_it_unbuildable(tmp_path: Path) -> None:
    result = check("2.9.1-rocm6.3-py3.12", tmp_path)
    assert result.status == doctor.WARN
    assert "interpreter download" in result.detail
    assert "--python-mirror" in result.fix
