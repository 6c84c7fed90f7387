"""Where pip inside a build gets packages from: the user's flags or the host's pip config.

Index URLs and find-links go into a pip.conf that reaches the build as a BuildKit secret (URLs
may carry credentials); local directories go in as named build contexts pip-local-0..3,
bind-mounted at /mnt/pip-local-N and never copied into a layer.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from bakery.atomicfile import read_keyed, user_cache, write_keyed
from bakery.errors import UsageError
from bakery.host import find_ca_bundle as find_ca_bundle  # noqa: PLC0414 - re-exported

MAX_LOCAL = 4  # the Dockerfile declares pip-local-0..3
MOUNT_ROOT = "/mnt/pip-local"


@dataclass(frozen=True)
class PipSources:
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    origin: str = "pip defaults (PyPI)"

    def local_dirs(self) -> list[Path]:
        """Host directories to mount, in mount order (at most MAX_LOCAL)."""
        dirs: list[Path] = []
        for entry in (self.index_url or "", *self.extra_index_urls, *self.find_links):
            if not entry:
                continue
            path = _local_mount_dir(entry, is_index=entry not in self.find_links)
            if path is not None and path not in dirs:
                dirs.append(path)
        return dirs

    def pip_conf(self) -> str:
        """pip.conf text with local paths rewritten to their mount points in the build."""
        dirs = self.local_dirs()

        def rewrite(entry: str, is_index: bool) -> str:
            path = _local_path(entry)
            if path is None:
                return entry
            mount_dir = _local_mount_dir(entry, is_index)
            if mount_dir is None:  # pragma: no cover - _local_path implies a mount dir
                return entry
            mount = f"{MOUNT_ROOT}-{dirs.index(mount_dir)}"
            inside = path.relative_to(mount_dir).as_posix()
            target = mount if inside == "." else f"{mount}/{inside}"
            return f"file://{target}" if entry.startswith("file:") else target

        lines = ["[global]"]
        if self.index_url:
            lines.append(f"index-url = {rewrite(self.index_url, True)}")
        if self.extra_index_urls:
            urls = " ".join(rewrite(u, True) for u in self.extra_index_urls)
            lines.append(f"extra-index-url = {urls}")
        if self.find_links:
            lines.append(f"find-links = {' '.join(rewrite(f, False) for f in self.find_links)}")
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        parts = [f"index {self.index_url or 'PyPI'}"]
        if self.extra_index_urls:
            parts.append(f"extra {', '.join(self.extra_index_urls)}")
        if self.find_links:
            parts.append(f"find-links {', '.join(self.find_links)}")
        return f"{'; '.join(parts)} (from {self.origin})"


def _local_path(entry: str) -> Path | None:
    if entry.startswith("file:"):
        return Path(unquote(urlparse(entry).path))
    if "://" in entry:
        return None
    return Path(entry)


def _local_mount_dir(entry: str, is_index: bool) -> Path | None:
    """The directory to mount for a local source.

    A local simple index (file:///srv/pypi/simple) links its files relatively
    (../../files/x.whl), so its parent is mounted; a find-links directory is mounted itself.
    """
    path = _local_path(entry)
    if path is None:
        return None
    return path.parent if is_index and path.name == "simple" else path


def sources_from_flags(
    index_url: str | None, extra: Sequence[str], find_links: Sequence[str]
) -> PipSources:
    return PipSources(index_url, tuple(extra), tuple(find_links), origin="command-line flags")


def sources_from_host(env: Mapping[str, str] | None = None) -> PipSources:
    """The host's own pip configuration (`pip config list`), with PIP_* variables on top."""
    env = os.environ if env is None else env
    config = _pip_config_list(env)

    def pick(key: str) -> str:
        return env.get(f"PIP_{key.upper().replace('-', '_')}") or _config_value(config, key)

    return PipSources(
        index_url=pick("index-url") or None,
        extra_index_urls=tuple(pick("extra-index-url").split()),
        find_links=tuple(pick("find-links").split()),
        origin="the host's pip configuration",
    )


def _pip_config_files(env: Mapping[str, str]) -> list[Path]:
    """Every file `pip config list` may read (pip's configuration.py), present or not."""
    home = Path(env.get("HOME") or Path.home())
    xdg_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    xdg_dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(os.pathsep)
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d]
    files += [Path("/etc/pip.conf"), home / ".pip" / "pip.conf", xdg_home / "pip" / "pip.conf"]
    files += [Path(sys.prefix) / "pip.conf"]
    if env.get("VIRTUAL_ENV"):
        files.append(Path(env["VIRTUAL_ENV"]) / "pip.conf")
    if env.get("PIP_CONFIG_FILE"):
        files.append(Path(env["PIP_CONFIG_FILE"]))
    return files


def pip_config_key(env: Mapping[str, str]) -> str:
    """What `pip config list` depends on: the interpreter, PIP_* and each file's size and mtime."""
    facts: list[object] = [
        sys.executable,
        sorted((k, v) for k, v in env.items() if k.startswith("PIP_")),
    ]
    for path in _pip_config_files(env):
        try:
            st = path.stat()
            facts.append([str(path), st.st_size, st.st_mtime_ns])
        except OSError:
            facts.append([str(path), None])
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def _pip_config_cache(env: Mapping[str, str]) -> Path:
    return user_cache("pip-config-list.json", env)


def _pip_config_list(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`pip config list`, cached by pip_config_key: starting pip took ~2 s of every build."""
    env = os.environ if env is None else env
    key, cache = pip_config_key(env), _pip_config_cache(env)
    cached = read_keyed(cache, key)
    if isinstance(cached, dict):
        return {str(k): str(v) for k, v in cached.items()}
    config = _run_pip_config_list()
    if config is None:  # pip failed: nothing to remember
        return {}
    write_keyed(cache, key, config)  # else: pip again next run
    return config


def _run_pip_config_list() -> dict[str, str] | None:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    result = {}
    for line in done.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            result[key.strip()] = value.strip().strip("'\"")
    return result


def _config_value(config: Mapping[str, str], key: str) -> str:
    for section in (":env:", "install", "global"):
        if f"{section}.{key}" in config:
            return config[f"{section}.{key}"]
    return ""


def check_local_dirs(sources: PipSources) -> list[Path]:
    dirs = sources.local_dirs()
    if len(dirs) > MAX_LOCAL:
        raise UsageError(
            f"{len(dirs)} local pip sources given ({', '.join(map(str, dirs))})",
            f"a build mounts at most {MAX_LOCAL}",
            "merge them into one find-links directory or pass fewer --find-links",
        )
    for d in dirs:
        if not d.is_dir():
            raise UsageError(
                f"local pip source {d} is not a directory",
                fix="fix --find-links/--extra-index-url or the host's pip config (`pip config list`)",
            )
    return dirs
