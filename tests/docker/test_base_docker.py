"""bakery.base: the debootstrapped, imported `bakery/debian:bookworm` image."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable

import pytest
from support.dockercli import BASE_TAG

from bakery import base, engine

pytestmark = pytest.mark.docker


def inspect_base() -> engine.ImageInfo:
    info = engine.inspect_image(BASE_TAG)
    assert info is not None, f"{BASE_TAG} is missing"
    return info


def run_in_base(command: str) -> engine.RunResult:
    return engine.run_container(BASE_TAG, ["bash", "-c", command], timeout=60)


def test_base_image_exists_under_its_tag(base_image: base.BaseResult) -> None:
    assert base_image.tag == BASE_TAG
    info = inspect_base()
    assert info.id == base_image.image_id
    assert BASE_TAG in info.repo_tags


def test_base_image_has_path_lang_and_cmd(base_image: base.BaseResult) -> None:
    info = inspect_base()
    assert info.env["PATH"] == base.IMAGE_PATH
    assert info.env["LANG"] == "C.UTF-8"
    assert info.cmd == ("bash",)


def test_base_image_labels_say_how_it_was_made(base_image: base.BaseResult) -> None:
    labels = inspect_base().labels
    assert labels["io.bakery.base"] == "debootstrap"
    assert labels["org.opencontainers.image.base.name"] == "debian:bookworm"
    assert labels["org.opencontainers.image.source"].startswith("debootstrap bookworm http")
    assert labels["org.opencontainers.image.created"].endswith("Z")


def test_base_container_runs_bash(base_image: base.BaseResult) -> None:
    result = run_in_base("echo ok")
    assert (result.return_code, result.stdout) == (0, "ok\n")


def test_base_is_minimal_without_python(base_image: base.BaseResult) -> None:
    assert run_in_base("command -v python3").return_code != 0


def test_base_apt_points_at_the_mirror_and_is_slim(base_image: base.BaseResult) -> None:
    source = inspect_base().labels["org.opencontainers.image.source"]
    mirror = source.split()[-1]
    result = run_in_base(
        "cat /etc/apt/sources.list; ls -A /var/lib/apt/lists | wc -l;"
        " ls /var/cache/apt/archives/*.deb 2>/dev/null | wc -l"
    )
    lines = result.stdout.splitlines()
    assert f"deb {mirror} bookworm main" in lines
    assert lines[-2:] == ["0", "0"]


def test_existing_base_is_reused(base_image: base.BaseResult) -> None:
    again = base.bootstrap_base(base.BaseOptions())
    assert again.created is False
    assert again.image_id == inspect_base().id


def test_mirror_credentials_reach_no_label_file_or_log(
    unique: str, forget_images: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13 item 10: `base --debian-mirror http://user:pass@host/debian`."""
    secret = f"pw-{unique}"
    mirror = base.mirror_from_apt_sources().replace("://", f"://bakery-user:{secret}@", 1)
    tag = forget_images(f"bakery-test-creds-{unique}/debian:bookworm")
    caplog.set_level(logging.DEBUG)
    made = base.bootstrap_base(base.BaseOptions(tag=tag, mirror=mirror, force=True))
    assert secret not in caplog.text  # the log of the whole bootstrap (the greps below log theirs)
    assert "bakery-user" not in caplog.text
    assert made.created
    assert secret not in made.mirror
    raw = subprocess.run(
        ["docker", "image", "inspect", tag], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert secret not in raw
    assert "bakery-user" not in raw
    assert all(secret not in line for line in engine.image_history(tag))
    found = engine.run_container(
        tag,
        [
            "bash",
            "-c",
            f"cat /etc/apt/sources.list; grep -rIl -e {secret} -e bakery-user / "
            "--exclude-dir=proc --exclude-dir=sys --exclude-dir=dev || true",
        ],
        timeout=120,
    )
    assert found.stdout.splitlines() == [f"deb {base.public_mirror(mirror)} bookworm main"]
