"""`doctor` against the real engine of this (GPU-less) machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.devbox import MATRIX, make_char_device

from bakery.cli import main

pytestmark = pytest.mark.docker

STATUSES = {"ok", "warn", "fail", "skip"}


def doctor(capfd: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, dict[str, str]]]:
    capfd.readouterr()
    code = main(["doctor", "--json", "--matrix", str(MATRIX), *extra])
    checks: list[dict[str, str]] = json.loads(capfd.readouterr().out)
    assert all(set(c) == {"check", "status", "detail", "fix"} for c in checks)
    assert {c["status"] for c in checks} <= STATUSES
    return code, {c["check"]: c for c in checks}


def test_doctor_on_a_machine_without_gpu(capfd: pytest.CaptureFixture[str]) -> None:
    code, checks = doctor(capfd)
    assert checks["docker daemon"]["status"] == "ok"
    assert "Docker " in checks["docker daemon"]["detail"]
    assert checks["buildx"]["status"] == "ok"
    assert checks["gpu"]["status"] == "warn"
    assert "no GPU" in checks["gpu"]["detail"]
    for gpu_only in ("rocm devices", "nvidia runtime", "nvidia in a container", "cgroups"):
        assert checks[gpu_only]["status"] == "skip", gpu_only
    assert code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)
    assert all(c["fix"] for c in checks.values() if c["status"] == "fail")


def test_doctor_exits_1_when_no_daemon_answers(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    code, checks = doctor(capfd)
    assert code == 1
    assert checks["docker daemon"]["status"] == "fail"
    assert "install-engine.sh" in checks["docker daemon"]["fix"]
    assert checks["buildx"]["status"] == "skip"


def test_doctor_fails_on_a_selected_image_that_is_not_here(
    capfd: pytest.CaptureFixture[str],
) -> None:
    code, checks = doctor(capfd, "--target", "cpu", "--repository", "bakery-doctor-test/none")
    images = [c for name, c in checks.items() if name.startswith("image ")]
    assert images
    assert {c["status"] for c in images} == {"fail"}
    assert all(c["fix"].startswith("python build.py --variant ") for c in images)
    assert code == 1


def test_doctor_sees_simulated_amd_nodes_and_their_groups(
    capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dev = tmp_path / "dev"
    make_char_device(dev / "kfd", 4242)
    make_char_device(dev / "dri" / "renderD128", 4243)
    _, checks = doctor(capfd, "--dev-root", str(dev))
    assert checks["gpu"]["status"] == "ok"
    assert "AMD" in checks["gpu"]["detail"]
    assert checks["rocm devices"]["status"] in ("ok", "warn")
    assert "--group-add 4242 4243" in checks["rocm devices"]["detail"]
