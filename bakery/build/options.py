"""The build's options: the frozen `BuildOptions` and the parsers of their values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bakery.buildkit import CacheSpec
from bakery.defaults import TORCH_SOURCES as TORCH_SOURCES  # noqa: PLC0414 - re-exported for mypy
from bakery.errors import UsageError
from bakery.matrix import Variant
from bakery.pipsources import PipSources


@dataclass(frozen=True)
class BuildOptions:
    root: Path
    jobs: int = 1
    dry_run: bool = False
    json: bool = False
    torch_source: str = "auto"
    pip: PipSources = field(default_factory=PipSources)
    ca_cert: Path | None = None
    base_map: Mapping[str, str] = field(default_factory=dict)
    bootstrap_base: bool = False
    repository: str | None = None
    uid: int | None = None
    gid: int | None = None
    log_dir: Path = Path(".bakery/logs")
    network: str | None = None
    torch_index_urls: Mapping[str, str] = field(default_factory=dict)  # index name -> mirror URL
    no_cache: bool = False
    bake_file: Path | None = None  # write this host's bake override there instead of building
    builder: str | None = None  # buildx builder instance; None: the current one (as before)
    builder_driver: str = "docker"  # resolved before building when --builder/--cache-to is given
    cache_from: tuple[CacheSpec, ...] = ()
    cache_to: tuple[CacheSpec, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # OCI labels (bakery.release)
    python_mirror: str = ""  # URL or folder for uv's interpreter downloads (bakery.interpreters)


def parse_torch_index_urls(values: Sequence[str]) -> dict[str, str]:
    """`rocm6.3=URL` pairs; a bare URL stands for every index (checked against the plan)."""
    result = {}
    for value in values:
        name, sep, url = value.partition("=")
        if sep and "://" not in name:
            result[name] = url
        else:
            result["*"] = value
    return result


def torch_index_for(v: Variant, options: BuildOptions) -> str:
    return (
        options.torch_index_urls.get(v.index.name)
        or options.torch_index_urls.get("*")
        or v.index.url
    )


def parse_base_map(values: Sequence[str]) -> dict[str, str]:
    result = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source or not target:
            raise UsageError(
                f"--base-map {value!r} is not FROM=TO",
                fix="e.g. --base-map docker.io/library/debian:bookworm-slim=bakery/debian:bookworm",
            )
        result[source] = target
    return result
