"""scripts/workflow-steps.py: the replay of the workflow follows the file (issue 14)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "workflow-steps.py"
PUBLISH = (
    "github.event_name == 'push' && (github.ref == format('refs/heads/{0}', "
    "github.event.repository.default_branch) || startsWith(github.ref, 'refs/tags/'))"
)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workflow_steps", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _github(event: str, ref: str) -> dict[str, Any]:
    return {
        "github": {
            "event_name": event,
            "ref": ref,
            "event": {"repository": {"default_branch": "main"}},
        }
    }


@pytest.mark.parametrize(
    ("event", "ref", "expected"),
    [
        pytest.param("push", "refs/heads/main", True, id="push-main"),
        pytest.param("push", "refs/tags/v1", True, id="push-tag"),
        pytest.param("push", "refs/heads/topic", False, id="push-branch"),
        pytest.param("pull_request", "refs/heads/main", False, id="pull-request"),
    ],
)
def test_the_publish_expression_is_evaluated_like_github(
    event: str, ref: str, expected: bool
) -> None:
    assert _script().evaluate(PUBLISH, _github(event, ref)) is expected


@pytest.mark.parametrize(
    ("step_if", "failed", "expected"),
    [
        pytest.param(None, False, True, id="no-if"),
        pytest.param(None, True, False, id="after-a-failure"),
        pytest.param("${{ always() }}", True, True, id="always-after-a-failure"),
        pytest.param("${{ !matrix.variant.gpu_runner }}", False, True, id="hosted-runner"),
        pytest.param("${{ matrix.variant.gpu_runner }}", False, False, id="gpu-only-step"),
        pytest.param("${{ needs.plan.outputs.publish == 'true' }}", False, False, id="no-publish"),
    ],
)
def test_step_conditions(step_if: str | None, failed: bool, expected: bool) -> None:
    context = {"matrix": {"variant": {"gpu_runner": False}}, "needs": {"plan": {"outputs": {}}}}
    assert _script().condition(step_if, context, failed) is expected


def test_jobs_run_in_needs_order() -> None:
    jobs = {"publish": {"needs": ["plan", "build"]}, "build": {"needs": "plan"}, "plan": {}}
    assert _script().job_order(jobs) == ["plan", "build", "publish"]


def test_dry_run_follows_the_file_and_logs_out_last(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--root", str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    jobs = [
        line for line in done.stdout.splitlines() if line.startswith("== job") and ":" not in line
    ]
    assert jobs == ["== job plan", "== job checks", "== job build-test (2.13.0-cpu-py3.11)"]
    build_test = done.stdout.split("== job build-test")[1]
    assert build_test.rstrip().splitlines()[-1] == 'docker logout "$REGISTRY"'


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the refusal to run as root")
def test_it_refuses_to_run_as_root() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "non-root user with passwordless sudo" in done.stderr


@pytest.mark.parametrize(
    ("environ", "actor", "token"),
    [
        pytest.param({}, "", "", id="anonymous-local-registry"),
        pytest.param({"BAKERY_REGISTRY_USER": "u"}, "", "", id="user-without-password"),
        pytest.param(
            {"BAKERY_REGISTRY_USER": "u", "BAKERY_REGISTRY_PASSWORD": "p"}, "u", "p", id="both"
        ),
    ],
)
def test_the_registry_user_and_token_go_together(
    environ: dict[str, str], actor: str, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bakery refuses a user without a password: an anonymous local registry must get neither
    monkeypatch.delenv("BAKERY_REGISTRY_USER", raising=False)
    monkeypatch.delenv("BAKERY_REGISTRY_PASSWORD", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    script = _script()
    context = script.Replay(script.parse_args(["--root", str(REPO)]), REPO).base_context()
    assert (context["github"]["actor"], context["secrets"]["GITHUB_TOKEN"]) == (actor, token)


def test_repository_variables_reach_the_plan(tmp_path: Path) -> None:
    # --var BAKERY_GPU_RUNNERS=cpu: the replay host is a self-hosted cpu runner (docker driver)
    script = _script()
    options = script.parse_args(["--root", str(REPO), "--var", "BAKERY_GPU_RUNNERS=cpu"])
    context = script.Replay(options, REPO).base_context()
    assert script.substitute("${{ vars.BAKERY_GPU_RUNNERS }}", context) == "cpu"


def test_a_variable_that_is_not_name_value_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--var", "BAKERY_GPU_RUNNERS"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "'BAKERY_GPU_RUNNERS' is not NAME=VALUE" in done.stderr


def test_a_dry_run_as_a_self_hosted_runner_shows_its_steps() -> None:
    selection = ["--jobs", "build-test", "--variant", "2.13.0-cpu-py3.11"]
    self_hosted = ["--var", "BAKERY_GPU_RUNNERS=cpu"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--dry-run", "--root", str(REPO), *selection, *self_hosted],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "-- keep BuildKit's cache bounded\n" in done.stdout  # the self-hosted step runs
    assert "-- a BuildKit builder that can export cache (docker-container driver): skipped" in (
        done.stdout
    )


def test_each_job_gets_a_python_of_its_own(tmp_path: Path) -> None:
    # GitHub gives each job a fresh runner: bakery pip-installed by the plan job must not be
    # importable in build-test, where build.py must re-execute itself in setup.sh's .venv
    script = _script()
    plan = script._setup_python_venv(tmp_path, "plan")
    build = script._setup_python_venv(tmp_path, "build-test (2.13.0-cpu-py3.11)")
    assert plan != build
    assert (plan / "python").exists()
    assert (build / "python").exists()
