"""scripts/install-engine.sh's decisions against real os-release and apt sources files (issue 14).

Ubuntu cannot be fetched on the project's machines, so the Ubuntu path is proven here: each row
runs the real script with `--plan` against a fixture root holding a system's own files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HOSTS = Path(__file__).parent / "fixtures" / "hosts"
SCRIPT = REPO / "scripts" / "install-engine.sh"
DEBIAN_ENGINE = (  # trixie's docker.io only recommends its client, docker-cli
    "docker.io=26.1.5+dfsg1-9+deb13u1+b1 docker-cli=26.1.5+dfsg1-9+deb13u1+b1"
    " docker-buildx=0.13.1+ds1-3 docker-compose=2.26.1-4"
)
DOCKER_CE_STATUS = (
    "Package: docker-ce\nStatus: install ok installed\nVersion: 5:27.3.1-1~ubuntu.24.04~noble\n\n"
)
DOCKER_IO_STATUS = (
    "Package: docker.io\nStatus: install ok installed\nVersion: 20.10.24+dfsg1-1+b3\n\n"
)


def _host(tmp_path: Path, fixture: str, installed: tuple[str, ...]) -> Path:
    """A copy of a fixture system plus the engine files a row says are installed."""
    root = tmp_path / fixture
    shutil.copytree(HOSTS / fixture, root)
    files = {
        "docker-ce": ("usr/bin/dockerd", DOCKER_CE_STATUS),
        "docker.io": ("usr/sbin/dockerd", DOCKER_IO_STATUS),
        "buildx": ("usr/libexec/docker/cli-plugins/docker-buildx", ""),
    }
    for name in installed:
        path, status = files[name]
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("#!/bin/sh\n")
        (root / path).chmod(0o755)
        if status:
            (root / "var/lib/dpkg").mkdir(parents=True, exist_ok=True)
            with (root / "var/lib/dpkg/status").open("a") as out:
                out.write(status)
    return root


def _plan(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), "--plan"],
        env={"PATH": "/usr/bin:/bin", "BAKERY_HOST_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _fields(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines())


PLANS = [
    pytest.param(
        "debian12",
        (),
        {
            "engine": "debian-trixie",
            "apt_source": "deb http://deb.debian.org/debian trixie main",
            "packages": DEBIAN_ENGINE,
            "target_release": "-t trixie",
        },
        id="debian12-container-deb822",
    ),
    pytest.param(
        "debian12-installer",
        (),
        {
            "engine": "debian-trixie",
            "apt_source": "deb http://ftp.de.debian.org/debian trixie main",
            "target_release": "-t trixie",
        },
        id="debian12-installer-one-line-country-mirror",
    ),
    pytest.param(
        "debian12",
        ("docker.io",),
        {"engine": "debian-trixie", "packages": DEBIAN_ENGINE},
        id="debian12-docker.io-20.10-without-buildx-is-upgraded",
    ),
    pytest.param(
        "debian13",
        (),
        {"engine": "debian", "apt_source": "", "packages": DEBIAN_ENGINE, "target_release": ""},
        id="debian13-own-packages",
    ),
    pytest.param(
        "dev-machine",
        (),
        {
            "engine": "debian-trixie",
            "apt_source": "deb http://deb.debian.org/debian trixie main",
            "target_release": "-t trixie",
        },
        id="os-release-13-with-bookworm-sources",
    ),
    pytest.param(
        "dev-machine",
        ("docker.io", "buildx"),
        {"engine": "keep", "packages": ""},
        id="dev-machine-engine-kept",
    ),
    pytest.param(
        "ubuntu2204",
        (),
        {
            "os": "ubuntu 22.04",
            "engine": "ubuntu",
            "apt_source": "",
            "packages": "docker.io docker-buildx docker-compose-v2",
        },
        id="ubuntu2204-own-packages",
    ),
    pytest.param(
        "ubuntu2404",
        (),
        {
            "os": "ubuntu 24.04",
            "engine": "ubuntu",
            "apt_source": "",
            "packages": "docker.io docker-buildx docker-compose-v2",
        },
        id="ubuntu2404-own-packages-no-trixie",
    ),
    pytest.param(
        "ubuntu2404",
        ("docker-ce", "buildx"),
        {"engine": "keep", "why": "docker-ce with buildx is installed", "packages": ""},
        id="ubuntu2404-runner-docker-ce-kept",
    ),
    pytest.param(
        "ubuntu2404",
        ("docker.io",),
        {"engine": "ubuntu", "packages": "docker.io docker-buildx docker-compose-v2"},
        id="ubuntu2404-docker.io-gets-buildx",
    ),
]


@pytest.mark.parametrize(("fixture", "installed", "expected"), PLANS)
def test_plan(
    tmp_path: Path, fixture: str, installed: tuple[str, ...], expected: dict[str, str]
) -> None:
    done = _plan(_host(tmp_path, fixture, installed))
    assert done.returncode == 0, done.stderr
    fields = _fields(done.stdout)
    assert {key: fields[key] for key in expected} == expected


def test_ubuntu_gets_debians_keyring_for_debootstrap(tmp_path: Path) -> None:
    fields = _fields(_plan(_host(tmp_path, "ubuntu2404", ())).stdout)
    assert "debian-archive-keyring" in fields["tools"].split()
    debian = _fields(_plan(_host(tmp_path, "debian12", ())).stdout)
    assert "debian-archive-keyring" not in debian["tools"].split()


@pytest.mark.parametrize("fixture", ["debian12", "ubuntu2404"])
def test_git_is_installed_for_revision_labels_and_tags(tmp_path: Path, fixture: str) -> None:
    # a copied clone or an archive has no git: found by the fresh-machine run (release tests)
    assert "git" in _fields(_plan(_host(tmp_path, fixture, ())).stdout)["tools"].split()


REFUSALS = [
    pytest.param("fedora40", (), "fedora 40 is not supported", id="fedora"),
    pytest.param("debian11", (), "Debian 11 is not supported", id="debian11"),
    pytest.param(
        "ubuntu2404",
        ("docker-ce",),
        "docker-ce is installed without buildx",
        id="docker-ce-without-buildx-never-replaced",
    ),
]


@pytest.mark.parametrize(("fixture", "installed", "message"), REFUSALS)
def test_refusal_names_why_and_the_manual_steps(
    tmp_path: Path, fixture: str, installed: tuple[str, ...], message: str
) -> None:
    done = _plan(_host(tmp_path, fixture, installed))
    assert done.returncode == 3
    assert message in done.stderr
    assert "1. " in done.stderr
    assert "engine=" not in done.stdout


def test_debian_without_a_debian_mirror_is_refused(tmp_path: Path) -> None:
    root = _host(tmp_path, "debian12", ())
    (root / "etc/apt/sources.list.d/debian.sources").unlink()
    done = _plan(root)
    assert done.returncode == 3
    assert "no Debian mirror" in done.stderr


# The readiness wait, with stand-ins for the daemon's timing: a `dockerd` that starts answering
# (through a `docker` whose `info` succeeds once the marker exists) after a while, or never.
FAKE_DOCKER = """#!/bin/sh
case "$1" in
  info) [ -f "$MARKER" ] ;;
  version) echo 26.1.5 ;;
esac
"""


def _start(tmp_path: Path, dockerd_body: str, timeout: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("docker", FAKE_DOCKER), ("dockerd", f"#!/bin/sh\n{dockerd_body}\n")):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "MARKER": str(tmp_path / "ready"),
        "BAKERY_DOCKERD_TIMEOUT": timeout,
        "BAKERY_DOCKERD_LOG": str(tmp_path / "dockerd.log"),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "--start-dockerd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_daemon_slower_than_a_minute_elsewhere_is_waited_for(tmp_path: Path) -> None:
    done = _start(tmp_path, 'echo starting; sleep 3; touch "$MARKER"; exec sleep 5', "60")
    assert done.returncode == 0, done.stderr
    assert "dockerd is up: 26.1.5" in done.stderr


def test_the_deadline_is_configurable_and_the_log_is_shown(tmp_path: Path) -> None:
    done = _start(tmp_path, 'echo "level=info msg=\\"still loading images\\""; exec sleep 4', "1")
    assert done.returncode == 1
    assert "did not answer within 1 s (BAKERY_DOCKERD_TIMEOUT)" in done.stderr
    assert "still loading images" in done.stderr


def test_a_daemon_that_dies_is_reported_at_once_with_its_log(tmp_path: Path) -> None:
    done = _start(tmp_path, 'echo "failed to start daemon: pid file found"; exit 1', "300")
    assert done.returncode == 1
    assert "dockerd exited before answering" in done.stderr
    assert "pid file found" in done.stderr


@pytest.mark.parametrize("value", ["abc", "-5", "1.5", "5m"])
def test_a_bad_deadline_is_refused(tmp_path: Path, value: str) -> None:
    done = _start(tmp_path, "exit 1", value)
    assert done.returncode == 2
    assert "BAKERY_DOCKERD_TIMEOUT=" in done.stderr
    assert "e.g. 300" in done.stderr
