"""Containers: long-lived ones created, started, stopped, inspected and removed; their files.

Long-lived containers serve `build.py up/enter/status/job/logs/stop` (bakery.devbox). Containers
are inspected with one `docker container inspect` per call: python-on-whales re-inspects on
every attribute access (CACHE_VALIDITY_PERIOD is 10 ms), which costs a docker call per field
and mixes snapshots.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bakery.defaults import DEFAULT_SHM as DEFAULT_SHM  # noqa: PLC0414 - re-exported for mypy
from bakery.engine.api import container as api_container
from bakery.engine.client import (
    _EMPTY,
    _cli_bytes,
    _docker,
    _docker_errors,
    _run_cli,
    api_env,
    tail_lines,
)
from bakery.errors import DockerError

LOGGER = logging.getLogger(__name__)

DEVBOX_STOP_SECONDS = 10


@dataclass(frozen=True)
class ContainerSpec:
    """A long-lived container: created once, then started and stopped many times (no --rm)."""

    name: str
    image: str
    command: tuple[str, ...]
    user: str  # "uid:gid"
    workdir: str
    env: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    volumes: tuple[tuple[Path, str, str], ...] = ()  # (host path, container path, "ro"|"rw")
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    devices: tuple[str, ...] = ()  # "host:container"
    group_add: tuple[str, ...] = ()  # numeric gids only (docker-tools.md: names can break runc)
    gpus: str | None = None
    security_options: tuple[str, ...] = ()
    ipc: str | None = None
    shm_size: str | None = None
    memory: str | None = None  # also the memory+swap limit: no swap beyond it
    hostname: str | None = None


@dataclass(frozen=True)
class ContainerInfo:
    """One snapshot of `docker container inspect`."""

    name: str
    id: str
    image_id: str  # the image the container was created from ("sha256:...")
    image_ref: str  # the reference it was created with (Config.Image)
    status: str  # created | running | paused | restarting | removing | exited | dead
    running: bool
    exit_code: int
    oom_killed: bool  # Docker saw an OOM kill in the container since its last start
    error: str
    started_at: datetime | None
    finished_at: datetime | None
    labels: Mapping[str, str]
    group_add: tuple[str, ...]
    devices: tuple[str, ...]  # "host:container"
    memory: int  # bytes; 0 = no limit


def _docker_time(value: object) -> datetime | None:
    """A Docker timestamp; None for the zero time Docker uses for "never"."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _container_info(raw: Mapping[str, Any]) -> ContainerInfo:
    state = raw.get("State") or {}
    config = raw.get("Config") or {}
    host = raw.get("HostConfig") or {}
    devices = tuple(
        f"{d.get('PathOnHost', '')}:{d.get('PathInContainer', '')}"
        for d in host.get("Devices") or ()
    )
    return ContainerInfo(
        name=str(raw.get("Name", "")).lstrip("/"),
        id=str(raw.get("Id", "")),
        image_id=str(raw.get("Image", "")),
        image_ref=str(config.get("Image", "")),
        status=str(state.get("Status", "")),
        running=bool(state.get("Running")),
        exit_code=int(state.get("ExitCode") or 0),
        oom_killed=bool(state.get("OOMKilled")),
        error=str(state.get("Error") or ""),
        started_at=_docker_time(state.get("StartedAt")),
        finished_at=_docker_time(state.get("FinishedAt")),
        labels=MappingProxyType(dict(config.get("Labels") or {})),
        group_add=tuple(str(g) for g in host.get("GroupAdd") or ()),
        devices=devices,
        memory=int(host.get("Memory") or 0),
    )


def container_exists(name: str) -> bool:
    with _docker_errors(f"could not look up container {name}"):
        return bool(_docker().container.exists(name))


def _remove_container(name: str) -> None:
    """Force-remove a container we created; a failure here is logged, never masks the result."""
    from python_on_whales.client_config import ClientNotFoundError  # noqa: PLC0415
    from python_on_whales.exceptions import DockerException, NoSuchContainer  # noqa: PLC0415

    try:
        _docker().container.remove(name, force=True, volumes=True)
    except NoSuchContainer:
        pass
    except (DockerException, ClientNotFoundError) as exc:
        LOGGER.warning("could not remove container %s: %s", name, tail_lines(str(exc), 3))


def _is_missing(exc: DockerError) -> bool:
    lowered = exc.stderr_tail.lower()
    return "no such container" in lowered or "no such object" in lowered


def inspect_container(name: str) -> ContainerInfo | None:
    """The container's current state; None when there is no such container."""
    found_here = api_container(name, api_env())  # the local daemon's socket: no process started
    if isinstance(found_here, dict):
        return _container_info(found_here)
    try:
        output = _cli_bytes(["container", "inspect", name], f"could not inspect container {name}")
    except DockerError as exc:
        if _is_missing(exc):
            return None
        raise
    found = json.loads(output)
    return _container_info(found[0]) if found else None


def list_containers(label: str) -> list[ContainerInfo]:
    """Every container (running or not) that carries `label` ("key" or "key=value")."""
    names = _run_cli(
        ["container", "ls", "--all", "--filter", f"label={label}", "--format", "{{.Names}}"],
        f"could not list containers labelled {label}",
    ).split()
    infos = [inspect_container(name) for name in sorted(names)]
    return [info for info in infos if info is not None]  # removed meanwhile: not listed


def create_container(spec: ContainerSpec) -> str:
    """Create (not start) a container from a local image; return its id. Never pulls."""
    options: dict[str, Any] = {
        "name": spec.name,
        "user": spec.user,
        "workdir": spec.workdir,
        "envs": dict(spec.env),
        "volumes": [(str(src), dst, mode) for src, dst, mode in spec.volumes],
        "labels": dict(spec.labels),
        "devices": list(spec.devices),
        "groups_add": list(spec.group_add),
        "gpus": spec.gpus,
        "security_options": list(spec.security_options),
        "ipc": spec.ipc,
        "shm_size": spec.shm_size,
        "memory": spec.memory,
        "memory_swap": spec.memory,
        "hostname": spec.hostname,
        "pull": "never",
    }
    with _docker_errors(f"could not create container {spec.name} from {spec.image}"):
        container = _docker().container.create(spec.image, list(spec.command), **options)
    return str(container)


def start_container(name: str) -> None:
    with _docker_errors(f"could not start container {name}"):
        _docker().container.start(name)


def stop_container(name: str, timeout: int = DEVBOX_STOP_SECONDS) -> None:
    """`docker stop`: SIGTERM, then SIGKILL after `timeout` seconds."""
    with _docker_errors(f"could not stop container {name}"):
        _docker().container.stop(name, time=timeout)


def remove_container(name: str) -> None:
    """Force-remove a container (its named volumes and bind mounts are left alone)."""
    from python_on_whales.exceptions import NoSuchContainer  # noqa: PLC0415

    with _docker_errors(f"could not remove container {name}"), contextlib.suppress(NoSuchContainer):
        _docker().container.remove(name, force=True)


def container_logs_tail(name: str, lines: int) -> str:
    """The last `lines` lines the container's main process wrote (stdout and stderr)."""
    with _docker_errors(f"could not read the logs of container {name}"):
        chunks = _docker().container.logs(name, tail=lines, stream=True)
        if isinstance(chunks, str):  # only without stream=True; keeps the union type honest
            return chunks
        return b"".join(chunk for _, chunk in chunks).decode(errors="replace")


def read_container_file(name: str, path: str) -> bytes | None:
    """A regular file's bytes from a container (running or not); None if it is not there."""
    try:
        archive = _cli_bytes(["container", "cp", f"{name}:{path}", "-"], f"could not read {path}")
    except DockerError as exc:
        if "could not find the file" in exc.stderr_tail.lower():
            return None
        raise
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                return handle.read()
    return None


def write_container_files(name: str, files: Mapping[str, bytes], mode: int = 0o644) -> None:
    """Put files (absolute container paths) into a created or running container, root-owned.

    `docker cp --archive` would keep the tar's owners, but fails with `getent unable to find
    entry` when the container's user has no passwd entry yet, which is the case this serves.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            member = tarfile.TarInfo(path.lstrip("/"))
            member.size, member.mode, member.mtime = len(data), mode, int(time.time())
            tar.addfile(member, io.BytesIO(data))
    _cli_bytes(
        ["container", "cp", "-", f"{name}:/"],
        f"could not copy {', '.join(files)} into container {name}",
        stdin=buffer.getvalue(),
    )
