"""Real builds through bakery's CLI: cache reuse after a code change, no leaked secrets, and
each kind of bad input turned into a clear error.

These need the cpu image's layers in the BuildKit cache: CI builds the image first
(scripts/check.sh); on a developer machine the fixture builds it when missing.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.ci import require_daemon
from support.dockercli import docker
from support.project_copy import BASE_MAP, CPU_VARIANT, ROOT, copy_project

from bakery.cli import main

pytestmark = [pytest.mark.docker, pytest.mark.slow]  # builds the cpu image when missing


@pytest.fixture(scope="module")
def cpu_image_built() -> str:
    """The real cpu variant, built with bakery (cached after the first time)."""
    require_daemon()
    code = main(
        ["--matrix", str(ROOT / "matrix.toml"), "--variant", CPU_VARIANT, "--bootstrap-base"]
    )
    assert code == 0, "the cpu variant must build"
    return CPU_VARIANT


def touch_training_code(project: Path) -> None:
    target = project / "stylelora" / "__init__.py"
    target.write_text(
        target.read_text(encoding="utf-8") + f"\n# touched by a test {uuid.uuid4().hex}\n",
        encoding="utf-8",
    )


def test_code_change_rebuilds_only_the_code_layer_and_leaks_no_secret(
    cpu_image_built: str,
    tmp_path: Path,
    forget_images: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = copy_project(tmp_path / "project")
    touch_training_code(project)
    ca_marker, token_marker = f"FAKE-CA-{uuid.uuid4().hex}", f"hf_FAKE{uuid.uuid4().hex}"
    fake_ca = tmp_path / "fake-ca.pem"
    fake_ca.write_text(
        f"-----BEGIN CERTIFICATE-----\n{ca_marker}\n-----END CERTIFICATE-----\n", encoding="utf-8"
    )
    monkeypatch.setenv("HF_TOKEN", token_marker)
    repository = f"bakery-test/rebuild-{uuid.uuid4().hex[:8]}"
    forget_images(f"{repository}:{cpu_image_built}")
    capsys.readouterr()
    code = main(["--matrix", str(project / "matrix.toml"), "--variant", cpu_image_built, "--base-map", BASE_MAP,
                 "--repository", repository, "--ca-cert", str(fake_ca), "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    [result] = json.loads(captured.out)
    assert result["steps_run"], "the touched training code must be copied again"
    # Only the code layer and the metadata-only steps after it (WORKDIR) ran again.
    code_layer = [i for i, step in enumerate(result["steps_run"]) if "COPY stylelora" in step]
    assert code_layer == [0], result["steps_run"]
    assert all(
        step.split("] ", 1)[1].split()[0] in ("COPY", "WORKDIR") for step in result["steps_run"]
    ), result["steps_run"]
    assert result["steps_cached"] == result["steps_total"] - len(result["steps_run"])
    assert result["steps_cached"] >= 8, result
    for marker in (ca_marker, token_marker):
        assert marker not in captured.out + captured.err
    assert_absent_from_image(f"{repository}:{cpu_image_built}", [ca_marker, token_marker], tmp_path)


def assert_absent_from_image(ref: str, markers: list[str], tmp_path: Path) -> None:
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref).stdout
    inspect = docker("image", "inspect", ref).stdout
    archive = tmp_path / "image.tar"
    assert docker("save", "-o", str(archive), ref, timeout=600, check=False).returncode == 0
    extract = tmp_path / "layers"
    extract.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(extract)], check=True, timeout=600)
    for marker in markers:
        assert marker not in history, f"{marker} in docker history"
        assert marker not in inspect, f"{marker} in image config/labels"
        found = subprocess.run(["grep", "-rl", "--binary-files=text", "-a", marker, str(extract)], capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
        assert found.stdout == "", f"{marker} found in {found.stdout}"
        for layer in extract.rglob("*.tar"):
            inner = subprocess.run(
                ["tar", "-xOf", str(layer)], capture_output=True, timeout=600, check=False
            )
            assert marker.encode() not in inner.stdout, f"{marker} inside layer {layer.name}"


def test_unreachable_base_without_mapping_is_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_daemon()
    project = copy_project(tmp_path / "project")
    code = main(["--matrix", str(project / "matrix.toml"), "--variant", CPU_VARIANT, "--no-host-pip",
                 "--torch-source", "index", "--repository", "bakery-test/nobase"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3, err[-2000:]
    assert "docker.io/library/debian:bookworm-slim" in err
    assert "--base-map" in err
    assert "python build.py base" in err


def test_stopped_daemon_says_what_to_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")
    code = main(["--matrix", str(ROOT / "matrix.toml"), "--variant", CPU_VARIANT, "--no-host-pip",
                 "--torch-source", "index", "--base-map", BASE_MAP])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 4, err
    assert "install-engine.sh" in err or "start" in err
    assert "Traceback" not in err


def test_failing_pip_step_reports_pip_and_the_log(
    cpu_image_built: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def break_stack(text: str) -> str:
        return text.replace('diffusers = "0.42.1"', 'diffusers = "0.0.0"', 1)

    project = copy_project(tmp_path / "project", break_stack)
    code = main(["--matrix", str(project / "matrix.toml"), "--variant", cpu_image_built, "--base-map", BASE_MAP,
                 "--repository", "bakery-test/badpip"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3, err[-2000:]
    assert "diffusers==0.0.0" in err
    assert "full log:" in err
    log = next(
        line.split("full log: ", 1)[1].split()[0]
        for line in err.splitlines()
        if "full log: " in line
    )
    assert Path(log.rstrip(";")).is_file()
    assert (
        docker("image", "inspect", f"bakery-test/badpip:{cpu_image_built}", check=False).returncode
        != 0
    ), "nothing is tagged"


def test_jobs_builds_several_variants_at_once(
    cpu_image_built: str, forget_images: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    repository = f"bakery-test/jobs-{uuid.uuid4().hex[:8]}"
    variants = [cpu_image_built, f"{cpu_image_built}-slim"]
    for variant in variants:
        forget_images(f"{repository}:{variant}")
    capsys.readouterr()
    code = main(["--matrix", str(ROOT / "matrix.toml"), *(a for v in variants for a in ("--variant", v)),
                 "--jobs", "2", "--bootstrap-base", "--repository", repository, "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    results = json.loads(captured.out)
    assert sorted(r["variant"] for r in results) == sorted(variants)
    for r in results:
        assert docker("image", "inspect", r["image"], check=False).returncode == 0, (
            f"{r['image']} was not tagged"
        )
