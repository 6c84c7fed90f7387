"""Which BuildKit builds, and which cache it shares: `--builder`, `--cache-from`, `--cache-to`.

bakery rides on buildx: any builder instance (the daemon's own `docker` driver by default, or a
`docker-container`, `kubernetes` or `remote` one) and any cache backend buildx has. What bakery
adds is checking the combination before anything runs and saying what happens to the image:
a builder outside the daemon cannot hand its image to the daemon by itself, so bakery asks it to
`--load` it (bakery reads the torch stack back and the image suites run on the local daemon;
publishing pushes only what passed the tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bakery.errors import UsageError

CACHE_TYPES = ("registry", "local", "gha", "inline")
DAEMON_DRIVER = "docker"


@dataclass(frozen=True)
class CacheSpec:
    """One --cache-from/--cache-to value, as buildx takes it."""

    value: str
    type: str
    ref: str = ""  # registry caches: the image reference that holds the cache

    @property
    def host(self) -> str:
        return self.ref.split("/", 1)[0] if "/" in self.ref else ""


def parse_cache(value: str, flag: str) -> CacheSpec:
    """`type=registry,ref=host/repo:cache,mode=max`, or a bare reference (a registry cache)."""
    if "=" not in value:
        value = f"type=registry,ref={value}"
    fields: dict[str, str] = {}
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if not sep or not key:
            raise UsageError(
                f"{flag} {value!r}: {part!r} is not key=value",
                fix=f"e.g. {flag} type=registry,ref=ghcr.io/OWNER/staging/bakery:cache-cpu",
            )
        fields[key.strip()] = item.strip()
    kind = fields.get("type", "")
    if kind not in CACHE_TYPES:
        raise UsageError(
            f"{flag} {value!r}: cache type {kind!r} is not one of {', '.join(CACHE_TYPES)}",
            fix=f"e.g. {flag} type=registry,ref=HOST/REPO:cache or {flag} type=local,src=DIR",
        )
    if kind == "registry" and not fields.get("ref"):
        raise UsageError(
            f"{flag} {value!r}: a registry cache needs ref=", fix="add ref=HOST/REPO:TAG"
        )
    return CacheSpec(value=value, type=kind, ref=fields.get("ref", ""))


def parse_caches(values: Sequence[str], flag: str) -> tuple[CacheSpec, ...]:
    return tuple(parse_cache(v.strip(), flag) for v in values if v.strip())


def check_driver(driver: str, builder: str, cache_to: Iterable[CacheSpec]) -> None:
    """The daemon's own builder exports only inline cache (buildx refuses the rest mid-build)."""
    if driver != DAEMON_DRIVER:
        return
    for cache in cache_to:
        if cache.type != "inline":
            raise UsageError(
                f"--cache-to {cache.value!r}: builder {builder!r} uses the docker driver, "
                "which can export only inline cache",
                fix="create a builder that can: `docker buildx create --name bakery "
                "--driver docker-container` and pass --builder bakery; or use --cache-to type=inline",
            )


def describe_builder(builder: str | None, driver: str) -> str:
    """The plan's line about the builder and where the image goes."""
    name = builder or "the current buildx builder"
    if driver == DAEMON_DRIVER:
        return f"builder {name} (docker driver): images land in the local daemon directly"
    return (
        f"builder {name} ({driver} driver) keeps images in its own store and cannot hand them to "
        "the daemon by itself: bakery builds with --load, so each image is exported into the "
        "local daemon for the torch read-back and the tests (pushes happen after the tests)"
    )


def cache_hosts(caches: Iterable[CacheSpec]) -> list[str]:
    """Registries the caches live in (bakery logs in to them like to a push destination)."""
    return sorted({c.host for c in caches if c.type == "registry" and c.host})
