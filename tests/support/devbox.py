"""Helpers for the dev-container and doctor tests (tests/devbox)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.dockercli import BASE_TAG, docker

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "matrix.toml"
TEST_UID = 4321  # a non-root id that is nobody on this host and nobody in the image

# A small stand-in for the real images: same user (trainer, 1000), tini ENTRYPOINT, labels and
# WORKDIR, on the local debootstrap base. tini comes from the host's Docker (docker-init).
DOCKERFILE = """\
FROM {base}
COPY --chmod=0755 tini /usr/bin/tini
RUN groupadd --gid 1000 trainer \\
    && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash trainer \\
    && mkdir -p /workspace && chown 1000:1000 /workspace
LABEL io.bakery.variant="{variant}" io.bakery.flavour="full" io.bakery.accelerator="cpu"
ENV BAKERY_ACCELERATOR=cpu
WORKDIR /workspace
USER 1000:1000
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["bash"]
"""
# Without a tini binary on the host: a shell that drops the `--` and execs (the keep-alive
# process traps SIGTERM itself, so `docker stop` is still immediate).
TINI_SHIM = '#!/bin/sh\n[ "$1" = "--" ] && shift\nexec "$@"\n'


@dataclass(frozen=True)
class DevboxImage:
    repository: str
    cpu_variant: str
    rocm_variant: str
    refs: tuple[str, ...]


def inspect(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(docker("container", "inspect", name).stdout)
    return found[0]


def container_names() -> set[str]:
    return set(docker("container", "ls", "--all", "--format", "{{.Names}}").stdout.split())


def build_test_image(context: Path, tag: str, variant: str) -> str:
    """Build the stand-in image into `tag`; return its id."""
    tini = shutil.which("docker-init") or shutil.which("tini-static") or shutil.which("tini")
    target = context / "tini"
    if tini is not None:
        shutil.copyfile(tini, target)
    else:
        target.write_text(TINI_SHIM, encoding="utf-8")
    (context / "Dockerfile").write_text(
        DOCKERFILE.format(base=BASE_TAG, variant=variant), encoding="utf-8"
    )
    return docker("build", "--quiet", "--tag", tag, str(context), timeout=300).stdout.strip()


def make_char_device(path: Path, gid: int) -> Path:
    """A harmless char device (/dev/null's major/minor) owned by root:`gid`, mode 0660."""
    null = os.stat("/dev/null").st_rdev
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o660 | stat.S_IFCHR, null)
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    return path


class Pty:
    """A child process on a pseudo-terminal, read with deadlines (no sleeps)."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd, self.output = pid, fd, b""

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, marker: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while marker.encode() not in self.output:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(remaining, 0))
            if not ready:
                raise AssertionError(f"no {marker!r} within {timeout:g}s; got {self.output!r}")
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(f"terminal closed before {marker!r}; got {self.output!r}")
            self.output += chunk

    def wait(self, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                raise AssertionError(f"the child did not exit within {timeout:g}s")
            self.drain()

    def drain(self) -> None:
        ready, _, _ = select.select([self.fd], [], [], 0.05)
        if ready:
            with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
                self.output += os.read(self.fd, 4096)
