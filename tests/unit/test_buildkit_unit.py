"""--builder, --cache-from, --cache-to: parsed, checked against the driver, passed to buildx."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakery import engine
from bakery.build import BuildOptions, familiar_name
from bakery.buildkit import cache_hosts, check_driver, describe_builder, parse_cache, parse_caches
from bakery.cli import main
from bakery.errors import UsageError


@pytest.mark.parametrize(
    ("value", "kind", "ref"),
    [
        ("type=registry,ref=127.0.0.1:5000/b:cache,mode=max", "registry", "127.0.0.1:5000/b:cache"),
        (
            "ghcr.io/lab/staging/bakery:cache-cpu",
            "registry",
            "ghcr.io/lab/staging/bakery:cache-cpu",
        ),
        ("type=local,src=/tmp/c", "local", ""),
        ("type=gha,scope=cpu", "gha", ""),
        ("type=inline", "inline", ""),
    ],
    ids=["registry", "bare-ref", "local", "gha", "inline"],
)
def test_cache_specs_parse(value: str, kind: str, ref: str) -> None:
    cache = parse_cache(value, "--cache-from")
    assert (cache.type, cache.ref) == (kind, ref)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("type=s3,bucket=x", "cache type 's3' is not one of registry, local, gha, inline"),
        ("type=registry,mode=max", "a registry cache needs ref="),
        ("type=local,=x", "'=x' is not key=value"),
    ],
    ids=["unknown-type", "registry-without-ref", "empty-key"],
)
def test_bad_cache_specs_name_the_flag_and_value(value: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_cache(value, "--cache-to")
    assert caught.value.what.startswith("--cache-to ")
    assert message in caught.value.what
    assert caught.value.fix


def test_docker_driver_refuses_registry_cache_export_before_building() -> None:
    with pytest.raises(UsageError, match="docker driver") as caught:
        check_driver("docker", "default", parse_caches(["type=registry,ref=h/r:c"], "--cache-to"))
    assert "--driver docker-container" in caught.value.fix


@pytest.mark.parametrize("driver", ["docker-container", "kubernetes", "remote"])
def test_other_drivers_export_any_cache(driver: str) -> None:
    check_driver(driver, "b", parse_caches(["type=registry,ref=h/r:c", "type=gha"], "--cache-to"))


def test_docker_driver_exports_inline_cache() -> None:
    check_driver("docker", "default", parse_caches(["type=inline"], "--cache-to"))


def test_plan_says_a_builder_outside_the_daemon_loads_its_image() -> None:
    assert "--load" in describe_builder("remote-k8s", "kubernetes")
    assert "--load" not in describe_builder(None, "docker")


def test_cache_hosts_are_the_registries_of_registry_caches() -> None:
    caches = parse_caches(
        ["type=registry,ref=127.0.0.1:5000/b:c", "ghcr.io/x/y:c", "type=gha"], "--cache-from"
    )
    assert cache_hosts(caches) == ["127.0.0.1:5000", "ghcr.io"]


def test_build_command_passes_builder_cache_and_load(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    spec = engine.BuildSpec(
        context=tmp_path, dockerfile=tmp_path / "Dockerfile", log_path=tmp_path / "l",
        builder="k8s", cache_from=("type=registry,ref=h/r:c",), cache_to=("type=inline",), load=True,
    )  # fmt: skip
    command = engine.build_command(spec, tmp_path / "m.json")
    assert command[command.index("--builder") + 1] == "k8s"
    assert command[command.index("--cache-from") + 1] == "type=registry,ref=h/r:c"
    assert command[command.index("--cache-to") + 1] == "type=inline"
    assert "--load" in command


def test_default_build_command_is_unchanged(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    spec = engine.BuildSpec(
        context=tmp_path, dockerfile=tmp_path / "Dockerfile", log_path=tmp_path / "l"
    )
    command = engine.build_command(spec, tmp_path / "m.json")
    assert not {"--builder", "--cache-from", "--cache-to", "--load"} & set(command)
    assert BuildOptions(root=tmp_path).builder_driver == "docker"


def test_cli_rejects_a_bad_cache_before_any_docker_call(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    code = main(["--matrix", str(root / "matrix.toml"), "--target", "cpu", "--dry-run",
                 "--cache-to", "type=[red]s4"])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0
    assert "--cache-to 'type=[red]s4'" in err, "the bad value is shown as typed (markup escaped)"
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("ref", "familiar"),
    [
        ("docker.io/library/debian:bookworm-slim@sha256:ab", "debian:bookworm-slim@sha256:ab"),
        ("docker.io/nvidia/cuda:12", "nvidia/cuda:12"),
        ("ghcr.io/x/y:1", "ghcr.io/x/y:1"),
    ],
)
def test_base_contexts_use_the_familiar_name_bake_matches(ref: str, familiar: str) -> None:
    assert familiar_name(ref) == familiar
