"""Interpreter sources: a variant off the base's Python needs uv's download, a mirror or a folder.

The "network closed" case is real: the download URL is pointed at a loopback port nothing listens
on, so bakery's own reachability check fails the way it does in an air-gapped lab.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bakery import build, interpreters
from bakery.cli import main

ROOT = Path(__file__).resolve().parents[2]
MATRIX = str(ROOT / "matrix.toml")
PY312 = "2.9.1-rocm6.3-py3.12"
ARCHIVE = "20250115/cpython-3.12.8+20250115-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"


@pytest.fixture
def closed_network(monkeypatch: pytest.MonkeyPatch) -> str:
    with socket.socket() as s:  # a free port, closed again: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/releases"
    monkeypatch.setattr(interpreters, "DOWNLOAD_URL", url)
    return url


def dry_run(*extra: str) -> int:
    return main(
        [
            "--matrix",
            MATRIX,
            "--variant",
            PY312,
            "--dry-run",
            "--no-host-pip",
            "--torch-source",
            "index",
            *extra,
        ]
    )


def test_interpreter_download_refused_at_plan_time_when_unreachable(
    closed_network: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert dry_run() == 2
    err = capsys.readouterr().err
    assert "need a Python interpreter download (3.12" in err
    assert PY312 in err
    assert f"{closed_network} (python-build-standalone" in err
    assert "--python-mirror URL|DIR" in err
    assert "--python 3.11" in err
    assert "Traceback" not in err


def test_base_python_variant_needs_no_interpreter(
    closed_network: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--matrix",
            MATRIX,
            "--variant",
            "2.9.1-rocm6.3-py3.11",
            "--dry-run",
            "--torch-source",
            "index",
        ]
    )
    assert code == 0
    assert "every selected variant uses its base image's Python" in capsys.readouterr().err


def test_folder_without_the_interpreter_is_refused_naming_where_it_looked(
    closed_network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "20250115").mkdir()
    assert dry_run("--python-mirror", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"--python-mirror {tmp_path} has no interpreter for Python 3.12" in err
    assert f"{tmp_path}/*/cpython-3.12.*-x86_64-unknown-linux-gnu*.tar.*" in err


def test_missing_folder_is_refused(closed_network: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert dry_run("--python-mirror", "/nonexistent/pbs") == 2
    assert "is neither a URL nor a folder" in capsys.readouterr().err


def test_folder_with_the_interpreter_is_planned(
    closed_network: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ARCHIVE).parent.mkdir(parents=True)
    (tmp_path / ARCHIVE).write_bytes(b"")
    assert dry_run("--python-mirror", str(tmp_path)) == 0
    assert f"interpreters 3.12: from the folder {tmp_path}" in capsys.readouterr().err


def test_mirror_url_is_planned_without_showing_credentials(
    closed_network: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://user:s3cr3t@mirror.example/pbs"
    assert dry_run("--python-mirror", url) == 0
    err = capsys.readouterr().err
    assert "interpreters 3.12: from the mirror (secret 'python-mirror')" in err
    assert "s3cr3t" not in err


def test_mirror_travels_as_a_secret_and_a_folder_as_a_context(tmp_path: Path) -> None:
    assert interpreters.mirror_secret("https://m/pbs") == "https://m/pbs"
    assert interpreters.mirror_context("https://m/pbs") is None
    assert interpreters.mirror_secret(str(tmp_path)) == "file:///mnt/python-mirror"
    assert interpreters.mirror_context(str(tmp_path)) == tmp_path.resolve()
    options = build.BuildOptions(root=ROOT)
    with build.build_secrets(options, None, "https://user:tok@m/pbs") as secrets:
        by_id = {s.id: s for s in secrets}
        assert by_id["python-mirror"].src.read_text(encoding="utf-8") == "https://user:tok@m/pbs"


def test_no_dockerfile_takes_the_mirror_as_an_arg() -> None:
    for dockerfile in (ROOT / "images").glob("*/Dockerfile"):
        text = dockerfile.read_text(encoding="utf-8")
        assert "ARG UV_PYTHON_INSTALL_MIRROR" not in text, dockerfile
