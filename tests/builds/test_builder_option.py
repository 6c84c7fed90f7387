"""--builder and --cache-to against the real buildx: checked before anything is built."""

from __future__ import annotations

import pytest
from support.ci import require_daemon
from support.project_copy import BASE_MAP, ROOT

from bakery.cli import main
from bakery.errors import EXIT_USAGE

pytestmark = [pytest.mark.docker]
SLIM = "2.13.0-cpu-py3.11-slim"


@pytest.fixture(autouse=True)
def daemon() -> None:
    require_daemon()


def dry_run(*extra: str) -> int:
    return main(["--matrix", str(ROOT / "matrix.toml"), "--variant", SLIM, "--base-map", BASE_MAP,
                 "--no-host-pip", "--dry-run", *extra])  # fmt: skip


def test_an_unknown_builder_is_named_with_the_fix(capsys: pytest.CaptureFixture[str]) -> None:
    assert dry_run("--builder", "scaleout-no-such-builder") == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--builder 'scaleout-no-such-builder': no such buildx builder" in err
    assert "docker buildx ls" in err
    assert "Traceback" not in err


def test_registry_cache_export_on_the_daemon_builder_is_refused_before_building(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = dry_run("--builder", "default", "--cache-to", "type=registry,ref=127.0.0.1:5000/c:x")
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "uses the docker driver, which can export only inline cache" in err
    assert "build plan" not in err, "refused before the plan, so before any build"


def test_the_plan_names_the_builder_and_its_driver(capsys: pytest.CaptureFixture[str]) -> None:
    assert dry_run("--builder", "default", "--cache-to", "type=inline") == 0
    err = capsys.readouterr().err
    assert "builder default (docker driver): images land in the local daemon directly" in err
    assert "cache to type=inline" in err
