"""The engine itself: whether it is usable (versions of client, daemon, buildx) and its facts.

`check_engine` runs before every build; `docker_info` serves `build.py doctor`'s host checks;
`daemon_storage` tells bundles which image store a daemon uses.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bakery.atomicfile import read_keyed, user_cache, write_keyed
from bakery.engine.api import docker_binary, get_json
from bakery.engine.client import (
    _CONNECTION,
    INSTALL_FIX,
    MIN_BUILDX,
    _docker_command,
    _run_cli,
    api_env,
)
from bakery.errors import BakeryError, EngineMissingError


@dataclass(frozen=True)
class EngineInfo:
    client_version: str
    server_version: str
    api_version: str
    buildx_version: str
    host: str | None  # None: the CLI's default (DOCKER_HOST or the current context)


@dataclass(frozen=True)
class DockerInfo:
    """The parts of `docker info` that host checks need."""

    server_version: str
    runtimes: tuple[str, ...]
    default_runtime: str
    cgroup_version: str
    cgroup_driver: str
    root_dir: str
    http_proxy: str
    https_proxy: str
    no_proxy: str
    registry_mirrors: tuple[str, ...]
    security_options: tuple[str, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class DaemonStorage:
    """Where and how a daemon keeps its images."""

    root_dir: str  # DockerRootDir, on the daemon's machine
    driver: str  # overlay2, ...
    containerd_store: bool  # the containerd image store (default for fresh Docker 29 installs)


def parse_version(text: str) -> tuple[int, ...]:
    """(0, 13, 1) from "github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3" or "v0.13.1"."""
    match = re.search(r"\bv?(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        return ()
    return tuple(int(part) for part in match.groups(default="0"))


def daemon_answers(timeout: float = 20.0) -> bool:
    """True when a Docker daemon answers `docker version` (for skip-or-fail decisions).

    The local daemon is asked over its socket first (engine.api: no process, issue 17), when
    the docker CLI is installed too, as `docker version` needs; otherwise, or without an
    answer, `docker version` decides.
    """
    env = api_env()
    if docker_binary(env) is not None:
        server = get_json("/version", env)
        if isinstance(server, dict) and server.get("Version"):
            return True
    try:
        output = _run_cli(["version", "--format", "{{.Server.Version}}"], "docker version", timeout)
    except BakeryError:
        return False
    return bool(output.strip())


def check_engine() -> EngineInfo:
    """Versions of the client, the daemon and buildx; EngineMissingError if any is unusable.

    Every build starts here. The daemon is asked over its socket (engine.api) when it is the
    local one; the client's and buildx's versions are remembered per binary (path, size, mtime)
    in ~/.cache/bakery, so an unchanged install costs no process (issue 17). Anything else, and
    every failure, takes the docker commands, which report what is wrong.
    """
    server = get_json("/version", api_env())
    if not isinstance(server, dict) or not server.get("Version"):
        return _check_engine_cli()
    client_version, buildx_text = _client_versions()
    return _engine_info(
        client_version, str(server["Version"]), str(server.get("ApiVersion") or ""), buildx_text
    )


def _check_engine_cli() -> EngineInfo:
    text = _run_cli(["version", "--format", "{{json .}}"], "could not read the Docker versions")
    try:
        version = json.loads(text)
    except ValueError:
        version = {}
    server = version.get("Server") or {}
    if not server.get("Version"):
        raise EngineMissingError("no Docker daemon answered `docker version`", fix=INSTALL_FIX)
    buildx_text = _run_cli(["buildx", "version"], "could not read the buildx version")
    client = version.get("Client") or {}
    return _engine_info(
        str(client.get("Version") or ""),
        str(server["Version"]),
        str(server.get("ApiVersion") or ""),
        buildx_text,
    )


def _engine_info(client: str, server: str, api_version: str, buildx_text: str) -> EngineInfo:
    buildx = parse_version(buildx_text)
    if buildx < MIN_BUILDX:
        raise EngineMissingError(
            f"docker buildx is too old: {buildx_text.strip()!r}",
            why=f"bakery needs buildx >= {MIN_BUILDX[0]}.{MIN_BUILDX[1]}",
            fix=INSTALL_FIX,
        )
    return EngineInfo(
        client_version=client or "unknown",
        server_version=server,
        api_version=api_version or "unknown",
        buildx_version=".".join(str(part) for part in buildx),
        host=_CONNECTION.host,
    )


# Where the docker CLI looks for plugins (docker/cli's defaults on Linux), after ~/.docker.
PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def _client_versions() -> tuple[str, str]:
    """(client version, `docker buildx version` text), from the cache when the binaries are
    the same files as when it was written."""
    docker = _docker_command()[0]
    config = os.environ.get("DOCKER_CONFIG") or os.path.join(Path.home(), ".docker")
    candidates = [docker, os.path.join(config, "cli-plugins", "docker-buildx")]
    candidates += [os.path.join(folder, "docker-buildx") for folder in PLUGIN_DIRS]
    key = json.dumps([_file_fact(path) for path in candidates])
    cache = user_cache("engine-versions.json")
    cached = read_keyed(cache, key)
    if isinstance(cached, list) and len(cached) == 2 and all(isinstance(x, str) for x in cached):
        return cached[0], cached[1]
    client = _run_cli(["version", "--format", "{{.Client.Version}}"], "docker version")
    buildx_text = _run_cli(["buildx", "version"], "could not read the buildx version")
    write_keyed(cache, key, [client.strip(), buildx_text])
    return client.strip(), buildx_text


def _file_fact(path: str) -> list[object]:
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_size, st.st_mtime_ns]


def docker_info(timeout: float = 30.0) -> DockerInfo:
    """`docker info`; EngineMissingError when no daemon answers."""
    raw = json.loads(_run_cli(["info", "--format", "{{json .}}"], "docker info", timeout))
    proxies = {key: str(raw.get(key) or "") for key in ("HttpProxy", "HttpsProxy", "NoProxy")}
    registry = raw.get("RegistryConfig") or {}
    return DockerInfo(
        server_version=str(raw.get("ServerVersion") or ""),
        runtimes=tuple(sorted(raw.get("Runtimes") or {})),
        default_runtime=str(raw.get("DefaultRuntime") or ""),
        cgroup_version=str(raw.get("CgroupVersion") or ""),
        cgroup_driver=str(raw.get("CgroupDriver") or ""),
        root_dir=str(raw.get("DockerRootDir") or ""),
        http_proxy=proxies["HttpProxy"],
        https_proxy=proxies["HttpsProxy"],
        no_proxy=proxies["NoProxy"],
        registry_mirrors=tuple(str(m) for m in registry.get("Mirrors") or ()),
        security_options=tuple(str(o) for o in raw.get("SecurityOptions") or ()),
        warnings=tuple(str(w) for w in raw.get("Warnings") or ()),
    )


def daemon_storage() -> DaemonStorage:
    """The daemon's root directory, storage driver and image store (`docker info`)."""
    raw = json.loads(_run_cli(["info", "--format", "{{json .}}"], "could not read `docker info`"))
    status = raw.get("DriverStatus") or []
    containerd = any("io.containerd.snapshotter" in str(value) for pair in status for value in pair)
    return DaemonStorage(
        root_dir=str(raw.get("DockerRootDir") or ""),
        driver=str(raw.get("Driver") or ""),
        containerd_store=containerd,
    )
