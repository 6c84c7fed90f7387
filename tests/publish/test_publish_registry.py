"""push / promote against a real registry: docker-registry (distribution 2.8) on 127.0.0.1 with
htpasswd authentication, a private DOCKER_CONFIG, and small images on the local Debian base.

Docker allows plain HTTP to registries on 127.0.0.0/8, and distribution serves htpasswd auth
over plain HTTP, so no TLS is needed here (both checked by these tests actually logging in).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.registry import (
    CPU_FULL,
    CPU_SLIM,
    USER,
    Project,
    Registry,
    SmallImages,
    files_containing,
    mark_tested,
    registry_tags,
)

from bakery import cli, engine, publish
from bakery.cli import publish as publish_cli
from bakery.errors import EXIT_DOCKER, EXIT_OK, EXIT_USAGE, DockerError

pytestmark = pytest.mark.docker

CPU_TAGS = [CPU_FULL, "2.13.0-cpu", "cpu", CPU_SLIM, "2.13.0-cpu-slim", "cpu-slim"]
FAST_RETRIES = ["--retries", "2", "--retry-delay", "0.05"]


def push_argv(project: Project, registry: Registry, *extra: str) -> list[str]:
    return [
        "push", "--matrix", str(project.matrix), "--target", "cpu",
        "--registry", f"{registry.host}/lab", "--report", str(project.report),
        *FAST_RETRIES, *extra,
    ]  # fmt: skip


def read_report(project: Project) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(project.report.read_text(encoding="utf-8"))
    return report


def by_tag(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["tag"]: entry for entry in report["tags"]}


def test_push_logs_in_pushes_every_tag_and_verifies_digests(
    project: Project,
    registry: Registry,
    env_credentials: str,
    small_images: SmallImages,
    capfd: pytest.CaptureFixture[str],
) -> None:
    mark_tested(project.matrix, [CPU_FULL, CPU_SLIM])

    assert cli.main(push_argv(project, registry)) == EXIT_OK

    out, err = capfd.readouterr()
    assert f"logged in to {registry.host} as {USER}" in err
    assert f"logged out of {registry.host}" in err
    stored = json.loads((Path(os.environ["DOCKER_CONFIG"]) / "config.json").read_text())
    assert registry.host not in stored.get("auths", {}), "no token is left after publishing"
    engine.login_registry(registry.host, USER, env_credentials)  # to read it back here
    assert registry_tags(registry, env_credentials, "lab/bakery") == sorted(CPU_TAGS)
    report = read_report(project)
    assert report["complete"] is True
    entries = by_tag(report)
    assert list(entries) == CPU_TAGS  # full tag first, then the moving tags
    for tag, entry in entries.items():
        served = engine.registry_manifest(f"{registry.host}/lab/bakery:{tag}")
        assert entry["status"] == "pushed"
        assert entry["digest"] == served.digest  # what the registry serves, recomputed here
        assert served.document()["config"]["digest"] == small_images.ids[entry["variant"]]
        assert entry["size"] > 10_000_000  # the base layer, compressed
    assert "6/6 tags published" in out


def test_push_uses_the_docker_credential_store_without_env_variables(
    project: Project, registry: Registry, password: str, docker_config: Path
) -> None:
    mark_tested(project.matrix, [CPU_FULL, CPU_SLIM])
    engine.login_registry(registry.host, USER, password)  # as `docker login` would

    assert cli.main([*push_argv(project, registry), "--variant", CPU_FULL]) == EXIT_OK

    assert registry_tags(registry, password, "lab/bakery") == sorted(CPU_TAGS[:3])
    assert registry.host in (docker_config / "config.json").read_text(encoding="utf-8")


def test_wrong_password_is_a_clear_error_and_pushes_nothing(
    project: Project,
    registry: Registry,
    password: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    mark_tested(project.matrix, [CPU_FULL, CPU_SLIM])
    monkeypatch.setenv("BAKERY_REGISTRY_USER", USER)
    monkeypatch.setenv("BAKERY_REGISTRY_PASSWORD", "not-" + password)

    assert cli.main(push_argv(project, registry)) == EXIT_DOCKER

    _, err = capfd.readouterr()
    assert f"could not log in to {registry.host} as {USER}" in err
    assert "401 Unauthorized" in err
    assert "BAKERY_REGISTRY_PASSWORD" in err  # the fix names what to check
    assert "retrying in" not in err  # an authentication failure is not retried
    assert registry_tags(registry, password, "lab/bakery") == []


def test_push_without_credentials_names_the_tag_and_the_registry_message(
    project: Project, registry: Registry, password: str, capfd: pytest.CaptureFixture[str]
) -> None:
    mark_tested(project.matrix, [CPU_FULL, CPU_SLIM])

    assert cli.main(push_argv(project, registry)) == EXIT_DOCKER

    _, err = capfd.readouterr()
    assert f"{registry.host}/lab/bakery:{CPU_FULL}: no basic auth credentials" in err
    assert "docker login" in err
    assert by_tag(read_report(project))[CPU_FULL]["status"] == "failed"


def test_an_untested_image_is_refused_and_nothing_is_pushed(
    project: Project,
    registry: Registry,
    env_credentials: str,
    small_images: SmallImages,
    capfd: pytest.CaptureFixture[str],
) -> None:
    mark_tested(project.matrix, [CPU_FULL])  # the slim image never passed

    assert cli.main(push_argv(project, registry)) == EXIT_USAGE

    _, err = capfd.readouterr()
    slim_id = small_images.ids[CPU_SLIM].removeprefix("sha256:")[:12]
    assert "refusing to publish 1 image(s) that did not pass the tests" in err
    assert f"{CPU_SLIM} ({slim_id})" in err
    assert "--untested" in err
    assert registry_tags(registry, env_credentials, "lab/bakery") == []


def test_untested_overrides_the_refusal_and_says_so(
    project: Project,
    registry: Registry,
    env_credentials: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert cli.main([*push_argv(project, registry), "--untested"]) == EXIT_OK

    _, err = capfd.readouterr()
    assert "publishing 2 UNTESTED image(s) because --untested was given" in err
    report = read_report(project)
    assert all(entry["tested"] is False for entry in report["tags"])
    assert registry_tags(registry, env_credentials, "lab/bakery") == sorted(CPU_TAGS)


def test_registry_stopped_mid_run_retries_then_names_the_tag_and_reports_what_made_it(
    project: Project,
    registry: Registry,
    env_credentials: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    mark_tested(project.matrix, [CPU_FULL, CPU_SLIM])
    args = cli.build_parser().parse_args(push_argv(project, registry))
    verified: list[str] = []

    def stop_registry_after_first_tag(record: publish.TagRecord) -> None:
        verified.append(record.tag)
        registry.stop()

    with pytest.raises(DockerError) as caught:
        publish_cli.cmd_push(args, on_tag_verified=stop_registry_after_first_tag)

    message = caught.value.render()
    failed_ref = f"{registry.host}/lab/bakery:2.13.0-cpu"
    assert message.startswith(f"{failed_ref}: ")
    assert "connection refused" in message
    assert "after 3 attempt(s)" in message
    assert f"1 of 6 tag(s) made it ({CPU_FULL})" in message
    _, err = capfd.readouterr()
    assert err.count(f"push {failed_ref}: attempt") == 2  # two retries, then the final error
    entries = by_tag(read_report(project))
    assert read_report(project)["complete"] is False
    assert verified == [CPU_FULL]
    assert entries[CPU_FULL]["status"] == "pushed"
    assert entries[CPU_FULL]["digest"].startswith("sha256:")
    assert entries["2.13.0-cpu"]["status"] == "failed"
    assert entries["2.13.0-cpu"]["attempts"] == 3
    assert "connection refused" in entries["2.13.0-cpu"]["error"]
    assert [entries[t]["status"] for t in CPU_TAGS[2:]] == ["not-attempted"] * 4


def test_promote_copies_the_tested_digests_with_every_tag(
    project: Project,
    start_registry: Callable[[], Registry],
    env_credentials: str,
    small_images: SmallImages,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staging, release = start_registry(), start_registry()
    mark_tested(project.matrix, [CPU_FULL, CPU_SLIM])
    assert cli.main(push_argv(project, staging)) == EXIT_OK
    pushed = by_tag(read_report(project))
    promote_report = project.root / "promote.json"
    monkeypatch.setenv("BAKERY_REGISTRY_PASSWORD", env_credentials)  # each run takes it once

    code = cli.main([
        "promote", "--matrix", str(project.matrix), "--target", "cpu",
        "--from", f"{staging.host}/lab", "--to", f"{release.host}/team",
        "--push-report", str(project.report), "--report", str(promote_report), *FAST_RETRIES,
    ])  # fmt: skip

    assert code == EXIT_OK
    engine.login_registry(release.host, USER, env_credentials)  # bakery logged out: read it back
    assert registry_tags(release, env_credentials, "team/bakery") == sorted(CPU_TAGS)
    promoted = {e["tag"]: e for e in json.loads(promote_report.read_text())["tags"]}
    for tag, entry in promoted.items():
        tested_digest = pushed[entry["variant"]]["digest"]
        assert entry["image_digest"] == tested_digest
        copy = engine.registry_manifest(f"{release.host}/team/bakery@{tested_digest}")
        assert copy.digest == tested_digest  # the same bytes, not a rebuild or a re-push
        assert copy.document()["config"]["digest"] == small_images.ids[entry["variant"]]
        served = engine.registry_manifest(f"{release.host}/team/bakery:{tag}")
        assert served.digest == entry["digest"]
        assert served.digest == tested_digest, f"{tag}: the promoted tag serves the tested digest"


def test_promote_without_reports_refuses_images_that_were_not_tested_here(
    project: Project,
    start_registry: Callable[[], Registry],
    env_credentials: str,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    staging, release = start_registry(), start_registry()
    assert cli.main([*push_argv(project, staging), "--untested"]) == EXIT_OK
    mark_tested(project.matrix, [CPU_FULL])
    engine.login_registry(staging.host, USER, env_credentials)  # from here on: the store
    engine.login_registry(release.host, USER, env_credentials)
    monkeypatch.delenv("BAKERY_REGISTRY_USER")
    promote = [
        "promote", "--matrix", str(project.matrix), "--target", "cpu",
        "--from", f"{staging.host}/lab", "--to", f"{release.host}/team", *FAST_RETRIES,
        "--report", str(project.root / "promote.json"),
    ]  # fmt: skip

    assert cli.main(promote) == EXIT_USAGE
    _, err = capfd.readouterr()
    assert f"did not pass the tests: {CPU_SLIM}" in err
    assert registry_tags(release, env_credentials, "team/bakery") == []

    assert cli.main([*promote, "--variant", CPU_FULL]) == EXIT_OK
    assert registry_tags(release, env_credentials, "team/bakery") == sorted(CPU_TAGS[:3])


def test_the_password_never_appears_in_output_logs_or_reports(
    project: Project,
    start_registry: Callable[[], Registry],
    env_credentials: str,
    docker_config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Success, a failed login and a registry that dies, all with --debug logging."""
    caplog.set_level(logging.DEBUG)
    mark_tested(project.matrix, [CPU_FULL, CPU_SLIM])
    good, dead = start_registry(), start_registry()
    dead.stop()

    assert cli.main([*push_argv(project, good), "--debug"]) == EXIT_OK
    monkeypatch.setenv("BAKERY_REGISTRY_PASSWORD", env_credentials)
    assert cli.main([*push_argv(project, dead), "--debug"]) == EXIT_DOCKER
    monkeypatch.setenv("BAKERY_REGISTRY_PASSWORD", env_credentials + "-wrong")
    assert cli.main([*push_argv(project, good), "--debug"]) == EXIT_DOCKER

    out, err = capfd.readouterr()
    assert "logged in to" in err  # the runs did talk to the registries
    for text in (out, err, caplog.text):
        assert env_credentials not in text
    assert files_containing(project.root, env_credentials) == []  # reports, test state
    assert "BAKERY_REGISTRY_PASSWORD" not in os.environ  # so no child process saw it


def test_push_from_a_checkout_adds_immutable_commit_and_version_tags(
    project: Project, registry: Registry, env_credentials: str, small_images: SmallImages
) -> None:
    import subprocess  # noqa: PLC0415

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(project.root), *args], check=True,
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        return done.stdout.strip()

    git("init", "-q")
    git("add", project.matrix.name)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "release")
    git("tag", "v1.4.0")
    short = git("rev-parse", "HEAD")[:7]
    mark_tested(project.matrix, [CPU_FULL, CPU_SLIM])

    assert cli.main([*push_argv(project, registry), "--variant", CPU_FULL]) == EXIT_OK

    engine.login_registry(registry.host, USER, env_credentials)  # bakery logged out
    tags = registry_tags(registry, env_credentials, "lab/bakery")
    assert f"{CPU_FULL}-{short}" in tags
    assert f"{CPU_FULL}-v1.4.0" in tags
    full = engine.registry_manifest(f"{registry.host}/lab/bakery:{CPU_FULL}")
    pinned = engine.registry_manifest(f"{registry.host}/lab/bakery:{CPU_FULL}-{short}")
    assert pinned.digest == full.digest
