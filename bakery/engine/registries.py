"""Registries, for `bakery.publish`: log in, log out, push, pull, copy, read a manifest.

The password only ever goes to stdin. `docker buildx imagetools` reads the same credentials as
`docker push` and, like the daemon, talks plain HTTP to loopback registries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from bakery.engine.client import (
    _docker_command,
    _run_cli,
    classify_engine_problem,
    tail_lines,
)
from bakery.engine.images import inspect_image
from bakery.errors import BakeryError, DockerError, EngineMissingError

LOGGER = logging.getLogger(__name__)

REGISTRY_TIMEOUT_SECONDS = 3600.0  # one push, pull or copy of a multi-GB image
_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: \d+")


@dataclass(frozen=True)
class RegistryManifest:
    """What a registry serves for a reference: the manifest's bytes and their sha256."""

    ref: str
    digest: str  # computed from the bytes served, not taken from a header
    media_type: str
    raw: bytes

    def document(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.raw)
        return value


def login_registry(registry: str, username: str, password: str, timeout: float = 120.0) -> None:
    """`docker login` into the Docker credential store; the password goes to stdin only."""
    command = [*_docker_command(), "login", "--username", username, "--password-stdin", registry]
    try:
        done = subprocess.run(
            command, input=password, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DockerError(f"docker login {registry} timed out after {timeout:.0f}s") from None
    if done.returncode != 0:
        stderr = done.stderr.replace(password, "***") if password else done.stderr
        missing = classify_engine_problem(stderr)
        if missing is not None:
            raise missing
        raise DockerError(
            f"could not log in to {registry} as {username}",
            command=command,
            return_code=done.returncode,
            stderr_tail=tail_lines(stderr),
        )


def logout_registry(registry: str, timeout: float = 60.0) -> None:
    """`docker logout registry`: the stored credential does not outlive the command that used it.

    Best effort: a failed logout is logged, not raised (the work it follows has succeeded).
    """
    try:
        _run_cli(["logout", registry], f"docker logout {registry}", timeout)
    except BakeryError as exc:
        LOGGER.warning("could not log out of %s: %s", registry, exc.what)


def push_image(ref: str, timeout: float = REGISTRY_TIMEOUT_SECONDS) -> str:
    """`docker push ref`; return the manifest digest docker reports for what it pushed."""
    output = _run_cli(["image", "push", ref], f"could not push {ref}", timeout)
    found = _PUSHED_DIGEST.findall(output)
    if not found:
        raise DockerError(f"docker push {ref} finished without reporting a digest")
    return str(found[-1])


def pull_image(ref: str, timeout: float = REGISTRY_TIMEOUT_SECONDS) -> str:
    """`docker pull ref` into the connected daemon; return the image id."""
    _run_cli(["image", "pull", ref], f"could not pull {ref}", timeout)
    info = inspect_image(ref)
    if info is None:
        raise DockerError(f"docker pull {ref} succeeded but the daemon has no such image")
    return info.id


def registry_manifest(ref: str, timeout: float = 300.0) -> RegistryManifest:
    """The manifest a registry serves for `ref` (tag or digest), read with buildx imagetools."""
    command = [*_docker_command(), "buildx", "imagetools", "inspect", "--raw", ref]
    what = f"could not read the manifest of {ref} from its registry"
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{what}: timed out after {timeout:.0f}s", command=command) from exc
    stderr = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        missing = classify_engine_problem(stderr)
        if missing is not None:
            raise missing
        raise DockerError(
            what, command=command, return_code=done.returncode, stderr_tail=tail_lines(stderr)
        )
    try:
        media_type = str(json.loads(done.stdout).get("mediaType", ""))
    except ValueError as exc:
        raise DockerError(f"{what}: the registry served no JSON manifest", command=command) from exc
    digest = "sha256:" + hashlib.sha256(done.stdout).hexdigest()
    return RegistryManifest(ref=ref, digest=digest, media_type=media_type, raw=done.stdout)


def copy_image(source: str, dest: str, timeout: float = REGISTRY_TIMEOUT_SECONDS) -> None:
    """Copy `source` (a digest reference) to the tag `dest`, registry to registry, no daemon.

    skopeo with --preserve-digests copies the manifest byte for byte, so the tag serves the
    tested digest itself (`buildx imagetools create` wraps a single-platform manifest in a new
    one-entry index: docker/buildx#2481). It reads the credentials `docker login` stored.
    """
    if shutil.which("skopeo") is None:
        raise EngineMissingError(
            "skopeo is not installed: promote copies images with it to keep their digests",
            fix="install it: `apt-get install -y skopeo` (preinstalled on GitHub's Ubuntu runners)",
        )
    command = ["skopeo", "copy", "--all", "--preserve-digests", "--retry-times", "0"]
    command += [f"--src-tls-verify={_tls_verify(source)}", f"--dest-tls-verify={_tls_verify(dest)}"]
    command += [f"docker://{source}", f"docker://{dest}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"could not copy {source} to {dest}: timed out", command=command) from exc
    if done.returncode != 0:
        raise DockerError(
            f"could not copy {source} to {dest}",
            command=command,
            return_code=done.returncode,
            stderr_tail=tail_lines(done.stderr),
        )


def _tls_verify(ref: str) -> str:
    """Plain HTTP only to loopback registries (as Docker itself allows), TLS everywhere else."""
    host = ref.split("/", 1)[0].rsplit(":", 1)[0]
    return "false" if host in ("localhost", "127.0.0.1", "[::1]") else "true"
