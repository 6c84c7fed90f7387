"""bakery.publish without Docker: moving tags on the real matrix, retries, credentials, checks."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bakery import cli, engine, publish, testrun
from bakery.cli import publish as publish_cli
from bakery.errors import BakeryError, ConfigError, DockerError, GuardError, UsageError
from bakery.matrix import load_matrix

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "matrix.toml"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
CONFIG = "sha256:" + "c" * 64


def real_moving_tags() -> dict[str, str]:
    matrix = load_matrix(MATRIX)
    return publish.moving_tags(matrix.variants, publish.default_pythons(MATRIX))


# ---------------------------------------------------------------------------------------------
# Moving tags


def test_default_python_is_the_newest_in_each_targets_list() -> None:
    assert publish.default_pythons(MATRIX) == {"rocm": "3.12", "cuda": "3.12", "cpu": "3.11"}


@pytest.mark.parametrize(
    ("tag", "variant"),
    [
        ("rocm6.3", "2.9.1-rocm6.3-py3.12"),
        ("rocm6.3-slim", "2.9.1-rocm6.3-py3.12-slim"),
        ("2.9.1-rocm6.3", "2.9.1-rocm6.3-py3.12"),
        ("2.7.1-rocm6.3", "2.7.1-rocm6.3-py3.12"),
        ("2.8.0-rocm6.3-slim", "2.8.0-rocm6.3-py3.12-slim"),
        ("cuda12.8", "2.9.1-cuda12.8-py3.12"),
        ("2.7.1-cuda12.8", "2.7.1-cuda12.8-py3.12"),
        ("cuda12.8-slim", "2.9.1-cuda12.8-py3.12-slim"),
        ("cpu", "2.13.0-cpu-py3.11"),
        ("2.13.0-cpu", "2.13.0-cpu-py3.11"),
        ("cpu-slim", "2.13.0-cpu-py3.11-slim"),
    ],
    ids=str,
)
def test_moving_tags_on_the_real_matrix(tag: str, variant: str) -> None:
    assert real_moving_tags()[tag] == variant


def test_every_moving_tag_points_at_a_variant_and_never_shadows_a_full_tag() -> None:
    matrix = load_matrix(MATRIX)
    ids = {v.id for v in matrix.variants}
    tags = real_moving_tags()
    assert set(tags.values()) <= ids
    assert not set(tags) & {v.tag for v in matrix.variants}
    # per target and flavour: one accelerator tag plus one per torch version
    assert len(tags) == 2 * (1 + 3) + 2 * (1 + 3) + 2 * (1 + 1)


def test_a_variant_gets_its_full_tag_first_then_the_moving_ones() -> None:
    v = next(v for v in load_matrix(MATRIX).variants if v.id == "2.9.1-rocm6.3-py3.12")
    other = next(v for v in load_matrix(MATRIX).variants if v.id == "2.9.1-rocm6.3-py3.10")
    tags = real_moving_tags()
    assert publish.tags_for(v, tags) == ("2.9.1-rocm6.3-py3.12", "2.9.1-rocm6.3", "rocm6.3")
    assert publish.tags_for(other, tags) == ("2.9.1-rocm6.3-py3.10",)


SYNTHETIC = """
[project]
repository = "ghcr.io/example-lab/bakery"
user = "trainer"
uid = 1000
gid = 1000

[targets.cuda]
index = "cu128"
base = "bakery/debian:bookworm"
base_python = "3.11"
torch = TORCH
python = PYTHON
companions = ["torchvision"]
gpu_archs = ["sm_90"]
flavours = ["full"]

[[stack]]
python = ">=3.9"
packages = { safetensors = "0.7.0" }
"""


def synthetic_tags(tmp_path: Path, torch: str, python: str, extra: str = "") -> dict[str, str]:
    path = tmp_path / "matrix.toml"
    text = SYNTHETIC.replace("TORCH", torch).replace("PYTHON", python)
    path.write_text(text + extra, encoding="utf-8")
    matrix = load_matrix(path)
    return publish.moving_tags(matrix.variants, publish.default_pythons(path))


def test_torch_versions_sort_as_versions_not_as_text(tmp_path: Path) -> None:
    tags = synthetic_tags(tmp_path, '["2.8.0", "2.10.0"]', '["3.10", "3.12"]')
    assert tags["cuda12.8"] == "2.10.0-cuda12.8-py3.12"  # "2.8.0" > "2.10.0" as text


def test_python_versions_sort_as_versions_not_as_text(tmp_path: Path) -> None:
    tags = synthetic_tags(tmp_path, '["2.7.1", "2.8.0"]', '["3.9", "3.12"]')
    assert tags["cuda12.8"] == "2.8.0-cuda12.8-py3.12"  # "3.9" > "3.12" as text
    assert tags["2.7.1-cuda12.8"] == "2.7.1-cuda12.8-py3.12"


def test_a_torch_without_the_default_python_gets_no_moving_tag(tmp_path: Path) -> None:
    include = '[[include]]\ntarget = "cuda"\ntorch = "2.11.0"\npython = "3.13"\n'
    tags = synthetic_tags(tmp_path, '["2.8.0", "2.10.0"]', '["3.10", "3.12"]', include)
    assert tags["cuda12.8"] == "2.10.0-cuda12.8-py3.12"  # not 2.11.0: it lacks Python 3.12
    assert "2.11.0-cuda12.8" not in tags  # an [[include]] does not move the default Python


def test_two_targets_claiming_one_moving_tag_are_a_config_error(tmp_path: Path) -> None:
    second = SYNTHETIC.split("[targets.cuda]")[1].split("[[stack]]", maxsplit=1)[0]
    second = second.replace("TORCH", '["2.7.1"]').replace("PYTHON", '["3.12"]')
    with pytest.raises(ConfigError) as caught:
        synthetic_tags(tmp_path, '["2.8.0"]', '["3.12"]', f"\n[targets.cuda-lite]{second}")
    assert "moving tag 'cuda12.8' would point at both" in caught.value.render()


# ---------------------------------------------------------------------------------------------
# Retries


@pytest.mark.parametrize(
    ("stderr", "transient"),
    [
        ('Get "http://127.0.0.1:5000/v2/": dial tcp: connect: connection refused', True),
        ("received unexpected HTTP status: 503 Service Unavailable", True),
        ("net/http: TLS handshake timeout", True),
        ("toomanyrequests: too many requests", True),
        ("read tcp 10.0.0.1:443: connection reset by peer", True),
        ("unexpected EOF", True),
        ("unauthorized: authentication required", False),
        ("denied: requested access to the resource is denied", False),
        ("no basic auth credentials", False),
        ("manifest invalid: manifest invalid", False),
        ("ERROR: x:1: not found", False),
        ("something nobody has seen before", False),
    ],
    ids=lambda value: str(value)[:40],
)
def test_which_registry_failures_are_retried(stderr: str, transient: bool) -> None:
    assert publish.is_transient(DockerError("could not push x", stderr_tail=stderr)) is transient


def test_a_docker_timeout_is_retried() -> None:
    assert publish.is_transient(DockerError("could not push x: timed out after 3600s"))


def test_backoff_doubles_up_to_a_cap() -> None:
    policy = publish.RetryPolicy(attempts=10, first_delay=2.0)
    assert [policy.delay(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def options(tmp_path: Path, attempts: int = 3, password: str = "") -> publish.PublishOptions:
    credentials = publish.Credentials("me", password) if password else None
    return publish.PublishOptions(
        root=tmp_path,
        destination=publish.Destination("127.0.0.1:5000/lab", "bakery"),
        report=tmp_path / "report.json",
        retry=publish.RetryPolicy(attempts=attempts, first_delay=0.0),
        credentials=credentials,
    )


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def record() -> publish.TagRecord:
    return publish.TagRecord("t", "127.0.0.1:5000/lab/bakery:t", "v", CONFIG, True)


def flaky(failures: list[str]) -> Any:
    """An action that raises DockerErrors with these stderr texts, then returns "done"."""

    def action() -> str:
        if failures:
            raise DockerError("could not push x", stderr_tail=failures.pop(0))
        return "done"

    return action


def test_transient_failures_are_retried_until_the_call_succeeds(tmp_path: Path) -> None:
    rec = record()
    action = flaky(["connection refused", "503 Service Unavailable"])
    assert publish.with_retries(action, "push x", options(tmp_path), quiet(), rec) == "done"
    assert rec.attempts == 3


def test_retries_stop_at_the_cap_and_the_last_error_is_raised(tmp_path: Path) -> None:
    rec = record()
    action = flaky(["connection refused"] * 5)
    with pytest.raises(DockerError, match="could not push x"):
        publish.with_retries(action, "push x", options(tmp_path, attempts=3), quiet(), rec)
    assert rec.attempts == 3


def test_a_permanent_failure_is_not_retried(tmp_path: Path) -> None:
    rec = record()
    action = flaky(["unauthorized: authentication required"])
    with pytest.raises(DockerError):
        publish.with_retries(action, "push x", options(tmp_path), quiet(), rec)
    assert rec.attempts == 1


# ---------------------------------------------------------------------------------------------
# Credentials


def test_credentials_come_from_both_variables_and_the_password_leaves_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(publish.ENV_USER, "me")
    monkeypatch.setenv(publish.ENV_PASSWORD, "s3cret")
    credentials = publish.take_credentials()
    assert credentials == publish.Credentials("me", "s3cret")
    assert "s3cret" not in repr(credentials)
    import os  # noqa: PLC0415

    assert publish.ENV_PASSWORD not in os.environ


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({publish.ENV_USER: "me"}, "BAKERY_REGISTRY_PASSWORD is not set"),
        ({publish.ENV_PASSWORD: "x"}, "BAKERY_REGISTRY_USER is not set"),
    ],
    ids=["user-only", "password-only"],
)
def test_half_a_credential_is_a_usage_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        publish.take_credentials(env)


def test_no_variables_means_the_docker_credential_store() -> None:
    assert publish.take_credentials({}) is None


def test_errors_leaving_a_command_are_scrubbed_of_the_password() -> None:
    credentials = publish.Credentials("me", "s3cret")
    with pytest.raises(DockerError) as caught, publish.scrubbed(credentials):
        raise DockerError(
            "login s3cret failed",
            command=["docker", "login", "-p", "s3cret"],
            stderr_tail="bad password s3cret",
            fix="not s3cret",
        )
    assert "s3cret" not in caught.value.render()
    assert "s3cret" not in " ".join(caught.value.command)


def test_the_report_is_written_atomically_and_scrubbed(tmp_path: Path) -> None:
    opts = options(tmp_path, password="s3cret")  # noqa: S106 - a test value
    rec = record()
    rec.status, rec.error = "failed", "registry said s3cret"
    publish.write_report("push", opts, [rec], "2026-01-01T00:00:00Z")
    text = opts.report.read_text(encoding="utf-8")
    assert "s3cret" not in text
    report = json.loads(text)
    assert report["complete"] is False
    assert report["repository"] == "127.0.0.1:5000/lab/bakery"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary left over


# ---------------------------------------------------------------------------------------------
# Verification


def manifest(document: dict[str, Any], digest: str = DIGEST_A) -> engine.RegistryManifest:
    raw = json.dumps(document).encode()
    return engine.RegistryManifest("r", digest, str(document.get("mediaType", "")), raw)


IMAGE = {
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": {"digest": CONFIG, "size": 100},
    "layers": [{"digest": DIGEST_B, "size": 1000}, {"digest": DIGEST_B, "size": 23}],
}


def test_a_verified_push_reports_the_compressed_size() -> None:
    assert publish.verify_push(record(), DIGEST_A, manifest(IMAGE)) == 1123


def test_a_registry_digest_that_differs_from_the_pushed_one_fails() -> None:
    rec = record()
    with pytest.raises(GuardError, match="the registry serves"):
        publish.verify_push(rec, DIGEST_B, manifest(IMAGE))
    assert rec.status == "failed"


def test_a_registry_image_that_is_not_the_tested_one_fails() -> None:
    other = {**IMAGE, "config": {"digest": DIGEST_B, "size": 1}}
    with pytest.raises(GuardError, match="is not image"):
        publish.verify_push(record(), DIGEST_A, manifest(other))


def test_a_carbon_copy_of_the_tested_manifest_passes() -> None:
    publish.verify_copy(record(), DIGEST_A, manifest(IMAGE), manifest(IMAGE))


@pytest.mark.parametrize(
    "entries",
    [
        [{"digest": DIGEST_A}],
        [{"digest": DIGEST_B}],
        [{"digest": DIGEST_A}, {"digest": DIGEST_B}],
        [],
    ],
    ids=["one-entry-index-of-it", "other-image", "two-images", "empty"],
)
def test_a_copy_serving_anything_else_fails(entries: list[dict[str, str]]) -> None:
    index = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}
    with pytest.raises(GuardError, match="does not serve the tested image"):
        publish.verify_copy(record(), DIGEST_A, manifest(index, DIGEST_B), manifest(IMAGE))


# ---------------------------------------------------------------------------------------------
# Command line and reports


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(list(argv))


def test_the_commands_are_registered_with_their_options() -> None:
    assert {"push", "release", "promote"} <= set(cli.all_commands())
    push = parse("push", "--target", "cpu", "--registry", "ghcr.io/x", "--untested")
    assert (push.registry, push.untested, push.retries) == ("ghcr.io/x", True, 4)
    release = parse(
        "release", "--target", "cpu", "--jobs", "2", "--pytest-arg=-x", "--retries", "1"
    )
    assert (release.jobs, release.pytest_arg, release.retries) == (2, ["-x"], 1)
    assert not hasattr(release, "untested")  # release always tests
    promote = parse("promote", "--from", "ghcr.io/a", "--to", "ghcr.io/b")
    assert (promote.source, promote.registry) == ("ghcr.io/a", "ghcr.io/b")


@pytest.mark.parametrize(
    ("registry", "message"),
    [
        ("ghcr.io/Example-Lab", "is not a registry path"),
        ("https://ghcr.io/x", "is not a registry path"),
        ("", "no registry to publish to"),
    ],
    ids=["uppercase", "url", "empty"],
)
def test_bad_registries_are_usage_errors(registry: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        publish.check_registry(registry, "--registry")


def test_the_destination_keeps_the_image_name_and_replaces_the_registry(tmp_path: Path) -> None:
    args = parse("push", "--matrix", str(MATRIX), "--registry", "127.0.0.1:5000/lab")
    opts = publish.publish_options(publish_cli.publish_request(args, "push"), None)
    assert opts.destination.ref("cpu") == "127.0.0.1:5000/lab/bakery:cpu"
    assert opts.destination.host == "127.0.0.1:5000"
    request = publish_cli.publish_request(parse("push", "--matrix", str(MATRIX)), "push")
    default = publish.publish_options(request, None)
    assert default.destination.repository == load_matrix(MATRIX).project.repository


def write_push_report(path: Path, repository: str, tags: list[dict[str, str]]) -> None:
    path.write_text(json.dumps({"command": "push", "repository": repository, "tags": tags}))


def test_push_reports_give_the_digests_of_full_tags_that_were_pushed(tmp_path: Path) -> None:
    source = publish.Destination("ghcr.io/x/staging", "bakery")
    write_push_report(
        tmp_path / "a.json",
        source.repository,
        [
            {
                "tag": "v1",
                "variant": "v1",
                "status": "pushed",
                "digest": DIGEST_A,
                "image_id": CONFIG,
            },
            {
                "tag": "cpu",
                "variant": "v1",
                "status": "pushed",
                "digest": DIGEST_A,
                "image_id": CONFIG,
            },
            {"tag": "v2", "variant": "v2", "status": "failed", "digest": "", "image_id": CONFIG},
        ],
    )
    found = publish.read_push_reports([tmp_path], source)
    assert found == {"v1": {"digest": DIGEST_A, "image_id": CONFIG}}


def test_a_push_report_for_another_registry_is_refused(tmp_path: Path) -> None:
    write_push_report(tmp_path / "a.json", "ghcr.io/y/bakery", [])
    with pytest.raises(UsageError, match=r"is not a report of a push to ghcr\.io/x/staging/bakery"):
        publish.read_push_reports(
            [tmp_path / "a.json"], publish.Destination("ghcr.io/x/staging", "bakery")
        )


# ---------------------------------------------------------------------------------------------
# release = build, test, push


def step(calls: list[str], name: str, code: int) -> Any:
    """A stand-in for build, test or push that records its turn and returns `code`."""

    def run(*_: object) -> int:
        calls.append(name)
        return code

    return run


def test_release_builds_tests_and_pushes_in_that_order(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    pushed: list[publish.PublishRequest] = []

    def push(request: publish.PublishRequest, *_: object) -> int:
        pushed.append(request)
        return int(step(calls, "push", 0)())

    monkeypatch.setattr(publish_cli, "build_selection", step(calls, "build", 0))
    monkeypatch.setattr(testrun, "test_images", step(calls, "test", 0))
    monkeypatch.setattr(publish, "run_push", push)
    args = parse("release", "--matrix", str(MATRIX), "--target", "cpu", "--registry", "ghcr.io/x")
    assert publish_cli.cmd_release(args) == 0
    assert calls == ["build", "test", "push"]
    assert [r.untested for r in pushed] == [False]  # release never publishes what it did not test


def test_release_pushes_nothing_when_a_test_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(publish_cli, "build_selection", step(calls, "build", 0))
    monkeypatch.setattr(testrun, "test_images", step(calls, "test", 1))
    monkeypatch.setattr(publish, "run_push", step(calls, "push", 0))
    args = parse("release", "--matrix", str(MATRIX), "--target", "cpu")
    with pytest.raises(BakeryError, match="nothing was pushed"):
        publish_cli.cmd_release(args)
    assert calls == ["build", "test"]


def test_release_dry_run_only_plans(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(publish_cli, "build_selection", step(calls, "build (prints the plan)", 0))
    monkeypatch.setattr(testrun, "test_images", step(calls, "test", 0))
    monkeypatch.setattr(publish, "run_push", step(calls, "push", 0))
    args = parse("release", "--matrix", str(MATRIX), "--target", "cpu", "--dry-run")
    assert publish_cli.cmd_release(args) == 0
    assert calls == ["build (prints the plan)"]
    assert "nothing was built, tested or pushed" in capsys.readouterr().err
