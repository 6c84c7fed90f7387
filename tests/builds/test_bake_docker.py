"""docker-bake.json with plain `docker buildx bake`: its --print equals bakery's own plan, and it
builds the cpu slim variant here.

The committed file plus the host override bakery writes (`--bake-file`) must describe exactly
the builds bakery runs: same Dockerfile, build args, named contexts, secrets and tags.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.ci import require_daemon
from support.project_copy import BASE_MAP, copy_project

from bakery import engine
from bakery.bake import BAKE_FILE, target_name
from bakery.build import BuildOptions, build_secrets, build_spec, plan_builds
from bakery.cli import main
from bakery.matrix import Selection, load_matrix, select_variants
from bakery.pipsources import sources_from_flags

pytestmark = [pytest.mark.docker]
SLIM = "2.13.0-cpu-py3.11-slim"


def run(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )


@pytest.fixture(scope="module")
def daemon() -> None:
    require_daemon()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = copy_project(tmp_path / "project")
    assert (project / BAKE_FILE).is_file(), "generate writes the bake file"
    return project


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    """A find-links folder holding the exact torch wheel file the cpu variant needs.

    Only its name is read: `--print` builds nothing, and the plan refuses local sources that
    lack the variant's wheels before any bake file is written.
    """
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    return folder


def bake_print(project: Path, override: Path, group: str) -> dict[str, Any]:
    done = run("docker", "buildx", "bake", "-f", BAKE_FILE, "-f", str(override), "--print", group,
               cwd=project)  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed: dict[str, Any] = json.loads(done.stdout)
    return printed


def flags(argv: list[str], name: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == name]


def as_pairs(values: list[str]) -> dict[str, str]:
    return dict(value.split("=", 1) for value in values)


def secret_sources(entries: list[str]) -> dict[str, str]:
    fields = [as_pairs(entry.split(",")) for entry in entries]
    return {f["id"]: f.get("src", "env:" + f.get("env", "")) for f in fields}


def bakery_plan(project: Path, wheels: Path, ca: Path) -> list[tuple[str, list[str], str]]:
    """(target name, `docker buildx build` argv, image) for each cpu variant, as bakery builds."""
    options = BuildOptions(root=project, pip=sources_from_flags(None, [], [str(wheels)]),
                           ca_cert=ca, base_map=dict([BASE_MAP.split("=", 1)]),
                           torch_source="local", repository="scaleout-bake/plan")  # fmt: skip
    variants = select_variants(load_matrix(project / "matrix.toml"), Selection(targets=("cpu",)))
    plan = []
    for step in plan_builds(variants, options):
        with build_secrets(options) as secrets:
            spec = build_spec(step, options, secrets)
            argv = engine.build_command(spec, project / "metadata.json")
        plan.append((target_name(step.variant.id), argv, step.image))
    return plan


def test_bake_print_equals_bakery_plan(daemon: None, project: Path, wheels: Path) -> None:
    ca = project / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", encoding="utf-8")
    override = project / ".bakery" / "host.json"
    code = main(["--matrix", str(project / "matrix.toml"), "--target", "cpu", "--base-map", BASE_MAP,
                 "--find-links", str(wheels), "--ca-cert", str(ca), "--torch-source", "local",
                 "--repository", "scaleout-bake/plan", "--bake-file", str(override)])  # fmt: skip
    assert code == 0
    printed = bake_print(project, override, "cpu")["target"]
    plan = bakery_plan(project, wheels, ca)
    assert sorted(printed) == sorted(name for name, _, _ in plan)
    for name, argv, image in plan:
        target = printed[name]
        assert project / target["dockerfile"] == Path(flags(argv, "--file")[0]), name
        assert target.get("args", {}) == as_pairs(flags(argv, "--build-arg")), name
        assert target.get("contexts", {}) == as_pairs(flags(argv, "--build-context")), name
        assert target["tags"] == [image], name
        assert target.get("labels", {}) == as_pairs(flags(argv, "--label")), name
        ours = secret_sources(flags(argv, "--secret"))
        baked = secret_sources(target["secret"])
        assert set(ours) <= set(baked), name
        assert baked["ca"] == ours["ca"] == str(ca)
        pipconf = Path(baked["pipconf"]).read_text(encoding="utf-8")
        assert "/mnt/pip-local-0" in pipconf, "the find-links folder is rewritten to its mount"


def test_bake_print_without_override_is_the_plain_dockerfile(daemon: None, project: Path) -> None:
    """The committed file alone is machine-independent: no local paths, no mapped base."""
    printed = bake_print(project, project / BAKE_FILE, "cpu")["target"]
    for target in printed.values():
        assert "contexts" not in target
        assert all(
            s.endswith(("src=/dev/null", "env=BAKERY_TORCH_INDEX_URL")) for s in target["secret"]
        )


@pytest.fixture
def repository() -> Iterator[str]:
    name = f"scaleout-bake-{uuid.uuid4().hex[:8]}"
    yield name
    engine.remove_image(f"{name}:{SLIM}")


def test_plain_bake_builds_the_cpu_slim_variant(
    daemon: None, project: Path, repository: str
) -> None:
    from bakery import base  # noqa: PLC0415

    base.bootstrap_base(base.BaseOptions())  # the local Debian base the plan maps to
    for argv in (["init", "-q"], ["add", "matrix.toml"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):  # fmt: skip
        subprocess.run(
            ["git", "-C", str(project), *argv], check=True, capture_output=True, timeout=30
        )
    override = project / ".bakery" / "host.json"
    code = main(["--matrix", str(project / "matrix.toml"), "--variant", SLIM, "--base-map", BASE_MAP,
                 "--no-host-pip", "--repository", repository, "--bake-file", str(override)])  # fmt: skip
    assert code == 0
    done = run("docker", "buildx", "bake", "--progress", "plain", "-f", BAKE_FILE,
               "-f", str(override), target_name(SLIM), cwd=project)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    info = engine.inspect_image(f"{repository}:{SLIM}")
    assert info is not None, "bake loaded the image into the daemon under bakery's tag"
    assert info.labels["io.bakery.variant"] == SLIM
    revision = run("git", "rev-parse", "HEAD", cwd=project).stdout.strip()
    assert info.labels["org.opencontainers.image.revision"] == revision, "OCI labels via bake too"
    assert info.labels["org.opencontainers.image.created"].endswith("Z")
    result = engine.run_container(f"{repository}:{SLIM}", ["python", "-c", "import sys; print(sys.version_info[:2])"], timeout=120)  # fmt: skip
    assert result.stdout.strip() == "(3, 11)"
