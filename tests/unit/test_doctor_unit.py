"""bakery.doctor's checks without Docker: each fed a host and a `docker info` made by hand."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from bakery import doctor, engine
from bakery.cli import doctor as doctor_cli
from bakery.devbox import HostUser

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")

INFO = engine.DockerInfo(
    server_version="26.1.5",
    runtimes=("io.containerd.runc.v2", "runc"),
    default_runtime="runc",
    cgroup_version="2",
    cgroup_driver="systemd",
    root_dir="/var/lib/docker",
    http_proxy="",
    https_proxy="",
    no_proxy="",
    registry_mirrors=(),
    security_options=("name=seccomp,profile=builtin",),
    warnings=(),
)


def node(path: Path, gid: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o660 | stat.S_IFCHR, os.stat("/dev/null").st_rdev)
    os.chown(path, 0, gid)
    return path


def host(
    dev: Path, groups: frozenset[int] = frozenset({4321}), env: dict[str, str] | None = None
) -> doctor.Host:
    user = HostUser(4321, 4321, "alice", None)
    return doctor.Host(dev=dev, env=env or {}, user=user, groups=groups)


def test_no_gpu_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    check = doctor.check_gpu(host(tmp_path))
    assert check.status == "warn"
    assert "no GPU" in check.detail
    assert doctor.exit_code([check]) == 0


@needs_root
def test_amd_nodes_outside_the_users_groups_get_a_usermod_fix(tmp_path: Path) -> None:
    node(tmp_path / "kfd", 4242)
    node(tmp_path / "dri" / "renderD128", 4243)
    check = doctor.check_rocm_devices(host(tmp_path, groups=frozenset({4321, 4242})))
    assert check.status == "warn"
    assert "--group-add 4242 4243" in check.detail
    assert check.fix.startswith("sudo usermod -aG 4243 alice")
    member = doctor.check_rocm_devices(host(tmp_path, groups=frozenset({4242, 4243})))
    assert member.status == "ok"


@needs_root
@pytest.mark.parametrize(
    ("runtimes", "status"),
    [(("runc",), "fail"), (("nvidia", "runc"), "ok")],
    ids=["missing", "registered"],
)
def test_nvidia_runtime_must_be_registered_on_an_nvidia_host(
    tmp_path: Path, runtimes: tuple[str, ...], status: str
) -> None:
    node(tmp_path / "nvidiactl")
    check = doctor.check_nvidia_runtime(
        host(tmp_path), dataclasses.replace(INFO, runtimes=runtimes)
    )
    assert check.status == status
    assert ("nvidia-ctk runtime configure" in check.fix) == (status == "fail")


def test_nvidia_checks_skip_without_an_nvidia_gpu(tmp_path: Path) -> None:
    h = host(tmp_path)
    assert doctor.check_nvidia_runtime(h, INFO).status == "skip"
    assert doctor.check_nvidia_works(h, INFO, ["img"]).status == "skip"
    assert doctor.check_cgroup(h, INFO).status == "skip"


@needs_root
def test_systemd_cgroups_without_dev_char_links_warn_about_losing_the_gpu(tmp_path: Path) -> None:
    nvidia0 = node(tmp_path / "nvidia0")
    node(tmp_path / "nvidiactl")
    check = doctor.check_cgroup(host(tmp_path), INFO)
    assert check.status == "warn"
    assert "create-dev-char-symlinks" in check.fix
    (tmp_path / "char").mkdir()
    (tmp_path / "char" / "195:0").symlink_to(nvidia0)
    assert doctor.check_cgroup(host(tmp_path), INFO).status == "ok"


@pytest.mark.parametrize(
    ("env", "daemon_proxy", "status"),
    [
        ({}, "", "ok"),
        ({"HTTPS_PROXY": "http://bob:pw@proxy:3128"}, "", "warn"),
        ({"HTTPS_PROXY": "http://proxy:3128"}, "http://proxy:3128", "ok"),
        ({"NO_PROXY": "localhost"}, "", "ok"),
    ],
    ids=["none", "host-only", "both", "no-proxy-only"],
)
def test_proxy_settings_of_host_and_daemon(
    tmp_path: Path, env: dict[str, str], daemon_proxy: str, status: str
) -> None:
    check = doctor.check_proxy(
        host(tmp_path, env=env), dataclasses.replace(INFO, https_proxy=daemon_proxy)
    )
    assert check.status == status
    assert "pw" not in check.detail


def test_proxy_passwords_are_masked() -> None:
    assert doctor.mask("http://bob:s3cret@proxy:3128") == "http://bob:***@proxy:3128"
    assert doctor.mask("http://proxy:3128") == "http://proxy:3128"


def test_a_ca_variable_pointing_nowhere_fails(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    assert doctor.check_ca(host(tmp_path, env={"PIP_CERT": str(pem)})).status == "ok"
    failed = doctor.check_ca(
        host(tmp_path, env={"PIP_CERT": str(pem), "SSL_CERT_FILE": str(tmp_path / "gone")})
    )
    assert failed.status == "fail"
    assert "SSL_CERT_FILE" in failed.detail
    assert doctor.check_ca(host(tmp_path)).status == "ok"


def test_mirrors_are_listed() -> None:
    assert (
        doctor.check_mirrors(dataclasses.replace(INFO, registry_mirrors=("https://m",))).detail
        == "https://m"
    )
    assert "none configured" in doctor.check_mirrors(INFO).detail
    assert doctor.check_mirrors(None).status == "skip"


def test_checks_that_need_the_daemon_skip_without_it(tmp_path: Path) -> None:
    assert doctor.check_buildx(None).status == "skip"
    assert doctor.check_images([], "r", True, None)[0][0].status == "skip"


@pytest.mark.parametrize(
    ("statuses", "code"),
    [(["ok", "warn", "skip"], 0), (["ok", "fail"], 1), ([], 0)],
    ids=["warnings", "a-failure", "nothing"],
)
def test_exit_code_is_1_only_when_a_check_failed(statuses: list[str], code: int) -> None:
    assert doctor.exit_code([doctor.Check("c", s, "d") for s in statuses]) == code


def test_doctor_is_registered() -> None:
    assert doctor_cli.COMMANDS == ("doctor",)
