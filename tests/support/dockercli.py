"""The docker CLI as tests call it: bounded by a timeout, every container owned and removed."""

from __future__ import annotations

import subprocess
import uuid

BASE_TAG = "bakery/debian:bookworm"  # the local Debian base: `python build.py base`
DOCKER_TIMEOUT = 120.0


def docker(
    *args: str, timeout: float = DOCKER_TIMEOUT, check: bool = True, host: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker [-H HOST] ARGS`; with `check`, a non-zero exit is an AssertionError with stderr."""
    command = ["docker", *(["-H", host] if host else []), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-3000:]}"
        )
    return done


def container_name(prefix: str = "bakery-test") -> str:
    """A container name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def remove_containers(*names: str, host: str | None = None) -> None:
    """Force-remove containers by name; absent ones are fine."""
    if names:
        docker("container", "rm", "--force", *names, check=False, host=host)


def run_container(
    *args: str,
    timeout: float = DOCKER_TIMEOUT,
    check: bool = True,
    host: str | None = None,
    name: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`docker run --rm --name NAME ARGS` (options, image, command), and the container is
    force-removed afterwards: `--rm` alone leaves it running when the client is killed by the
    timeout or the test is interrupted."""
    name = name or container_name()
    try:
        return docker("run", "--rm", "--name", name, *args, timeout=timeout, check=check, host=host)
    finally:
        remove_containers(name, host=host)
