"""`base --debian-mirror`: which mirror, and credentials never in a label, a file or a log.

Issue 14 (Debian bases from Ubuntu hosts and runners) and issue 13 item 10 (credentials).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bakery import base
from bakery.cli import main
from bakery.errors import BakeryError, UsageError

HOSTS = Path(__file__).parent / "fixtures" / "hosts"
SECRET = "s3cr3t-pw"  # noqa: S105 - a made-up password the tests look for
CREDS_MIRROR = f"http://bakery:{SECRET}@mirror.example/debian"


@pytest.mark.parametrize(
    ("host", "mirror"),
    [
        pytest.param("debian12", "http://deb.debian.org/debian", id="debian12"),
        pytest.param(
            "debian12-installer", "http://ftp.de.debian.org/debian", id="debian12-country-mirror"
        ),
        pytest.param("debian13", "http://deb.debian.org/debian", id="debian13"),
        pytest.param("dev-machine", "http://deb.debian.org/debian", id="dev-machine"),
        pytest.param("ubuntu2204", base.PUBLIC_DEBIAN_MIRROR, id="ubuntu2204-public"),
        pytest.param("ubuntu2404", base.PUBLIC_DEBIAN_MIRROR, id="ubuntu2404-runner-public"),
        pytest.param("fedora40", base.PUBLIC_DEBIAN_MIRROR, id="fedora-public"),
    ],
)
def test_default_mirror(host: str, mirror: str) -> None:
    assert base.default_debian_mirror(HOSTS / host) == mirror


def test_debian_without_a_debian_mirror_says_how_to_pass_one(tmp_path: Path) -> None:
    (tmp_path / "etc/apt").mkdir(parents=True)
    (tmp_path / "etc/os-release").write_text((HOSTS / "debian12/etc/os-release").read_text())
    with pytest.raises(UsageError, match="no Debian mirror") as caught:
        base.default_debian_mirror(tmp_path)
    assert "--debian-mirror" in caught.value.render()


@pytest.mark.parametrize(
    ("mirror", "public"),
    [
        pytest.param(CREDS_MIRROR, "http://mirror.example/debian", id="user-password"),
        pytest.param(
            "https://u%40x:p%2Fw%40@h.example:8080/d",
            "https://h.example:8080/d",
            id="escaped-at-slash-port",
        ),
        pytest.param("http://token@h.example/debian", "http://h.example/debian", id="user-only"),
        pytest.param(
            "http://deb.debian.org/debian", "http://deb.debian.org/debian", id="no-credentials"
        ),
    ],
)
def test_public_mirror_drops_credentials(mirror: str, public: str) -> None:
    assert base.public_mirror(mirror) == public


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("deb.debian.org/debian", id="no-scheme"),
        pytest.param("ftp://deb.debian.org/debian", id="ftp"),
        pytest.param("http:///debian", id="no-host"),
        pytest.param("http://h/debian\nRUN touch /pwn", id="newline"),
        pytest.param("http://h/deb ian", id="space"),
        pytest.param("http://h/\x1b[31mred", id="terminal-escape"),
    ],
)
def test_bad_mirrors_are_refused_naming_the_option(bad: str) -> None:
    with pytest.raises(UsageError) as caught:
        base.check_mirror(bad)
    text = caught.value.render()
    assert text.startswith("--debian-mirror ")
    assert "\n" not in text
    assert "\x1b" not in text
    assert "e.g. --debian-mirror http://deb.debian.org/debian" in text


def test_cli_refuses_a_bad_mirror_before_docker(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["base", "--debian-mirror", f"ftp://bakery:{SECRET}@h/debian"])
    err = capsys.readouterr().err
    assert code == UsageError.exit_code
    assert "--debian-mirror" in err
    assert SECRET not in err
    assert "Traceback" not in err


def test_labels_carry_no_credentials() -> None:
    changes = "\n".join(base.base_changes("bookworm", CREDS_MIRROR, "2026-01-01T00:00:00Z"))
    assert SECRET not in changes
    assert "bakery:" not in changes
    assert "debootstrap bookworm http://mirror.example/debian" in changes


def test_sources_list_in_the_image_carries_no_credentials(tmp_path: Path) -> None:
    sources = tmp_path / "etc/apt/sources.list"
    sources.parent.mkdir(parents=True)
    sources.write_text(f"deb {CREDS_MIRROR} bookworm main\n")  # what debootstrap writes
    log = tmp_path / "var/log/bootstrap.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"I: Retrieving InRelease from {CREDS_MIRROR}/dists/bookworm\n")
    base._slim_rootfs(tmp_path, "bookworm", CREDS_MIRROR)
    assert sources.read_text() == "deb http://mirror.example/debian bookworm main\n"
    assert (
        log.read_text()
        == "I: Retrieving InRelease from http://mirror.example/debian/dists/bookworm\n"
    )


def test_tool_log_and_failure_carry_no_credentials(caplog: pytest.LogCaptureFixture) -> None:
    echo = (
        f"echo 'E: Failed getting release file {CREDS_MIRROR}/dists/bookworm/Release' >&2; exit 1"
    )
    caplog.set_level(logging.INFO)
    with pytest.raises(BakeryError) as caught:
        base._run_tool(["sh", "-c", f"{echo} # {CREDS_MIRROR}"], "debootstrap", 60, CREDS_MIRROR)
    assert SECRET not in caught.value.render()
    assert "http://mirror.example/debian/dists/bookworm/Release" in caught.value.render()
    assert SECRET not in caplog.text
    assert "running sh -c" in caplog.text
