"""Host environments that cannot work are refused before anything starts.

Each refusal is run with DOCKER_HOST pointing at a socket nobody listens on: a docker call of
any kind would end in exit 4 (no engine), so exit 5 with the reason proves the guard decided
before Docker was asked for anything — no container could have started. The control case, a
good environment, gets past the guards and does reach for Docker (exit 4).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.slim import build_py, refused_before_docker, run_slim

from bakery import slim
from bakery.errors import EXIT_ENGINE_MISSING, EXIT_GUARD, EXIT_USAGE


def test_good_env_passes_the_guards_and_reaches_docker(
    host_venv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused_before_docker(monkeypatch)
    assert run_slim(host_venv, tmp_path, "true") == EXIT_ENGINE_MISSING
    assert "no Docker daemon answers" in capsys.readouterr().err


def test_env_of_another_python_is_refused(
    other_python_venv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A real venv made by another interpreter (its pyvenv.cfg and lib/python3.X say so)."""
    refused_before_docker(monkeypatch)
    other = slim.env_python(other_python_venv)[0]
    assert run_slim(other_python_venv, tmp_path, "true") == EXIT_GUARD
    err = capsys.readouterr().err
    assert f"its Python is {other}" in err
    assert "but the image's is 3.11" in err
    assert "nothing was started" in err


def test_env_without_torch_is_refused(
    empty_venv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused_before_docker(monkeypatch)
    assert run_slim(empty_venv, tmp_path, "true") == EXIT_GUARD
    assert "it has no torch" in capsys.readouterr().err


def test_cpu_torch_is_refused_for_cuda(
    host_venv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused_before_docker(monkeypatch)
    assert run_slim(host_venv, tmp_path, "true", target="cuda") == EXIT_GUARD
    err = capsys.readouterr().err
    assert "torch 2.13.0+cpu is a CPU-only build, but the cuda image needs a CUDA build" in err
    assert "it has no torchvision" in err


def test_cpu_torch_is_refused_for_rocm(
    host_venv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused_before_docker(monkeypatch)
    assert run_slim(host_venv, tmp_path, "true", target="rocm") == EXIT_GUARD
    err = capsys.readouterr().err
    assert (
        "torch 2.13.0+cpu is a CPU-only build, but the rocm image needs the ROCm 6.3 build (+rocm6.3)"
        in err
    )


def test_missing_path_is_a_usage_error_naming_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    refused_before_docker(monkeypatch)
    assert run_slim(tmp_path / "no-such-env", tmp_path, "true") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--host-env" in err
    assert "no such folder" in err


def test_compose_refuses_and_writes_nothing(
    empty_venv: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    refused_before_docker(monkeypatch)
    output = tmp_path / "compose.yaml"
    argv = ["--slim", "--host-env", str(empty_venv), "--target", "cpu", "--output", str(output)]
    assert build_py("compose", *argv) == EXIT_GUARD
    assert "it has no torch" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
