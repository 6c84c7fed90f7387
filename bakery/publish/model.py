"""The publish commands' types: where images go, credentials, retries, one step and one report line."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bakery.matrix import Selection, Variant

ENV_USER = "BAKERY_REGISTRY_USER"


ENV_PASSWORD = "BAKERY_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a password


REPORT_DIR = Path(".bakery/publish")


MAX_RETRY_DELAY = 60.0


REGISTRY_RE = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text


@dataclass(frozen=True)
class Destination:
    """Where images go: `<registry>/<name>:<tag>`, e.g. ghcr.io/owner + bakery."""

    registry: str
    name: str

    @property
    def host(self) -> str:
        return self.registry.split("/", 1)[0]

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.name}"

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; the wait doubles from `first_delay` up to MAX_RETRY_DELAY."""

    attempts: int = 5
    first_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        return float(min(self.first_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY))


@dataclass(frozen=True)
class PushStep:
    """One variant to publish: its local image (or source digest) and every tag it gets."""

    variant: Variant
    source: str  # local image reference (push) or digest reference in --from (promote)
    image_id: str  # the id `build.py test` recorded (config digest on the classic store)
    tested: bool
    tags: tuple[str, ...]  # full tag first, then the moving tags


@dataclass
class TagRecord:
    """One line of the report."""

    tag: str
    ref: str
    variant: str
    image_id: str
    tested: bool
    status: str = "not-attempted"  # pushed | failed | not-attempted
    digest: str = ""  # what the registry serves for the tag (verified)
    image_digest: str = ""  # the image manifest inside (equals digest after push)
    size: int = 0  # bytes of the compressed config and layers
    attempts: int = 0  # pushes (or copies) tried; reading the tag back is not counted
    error: str = ""


@dataclass(frozen=True)
class PublishRequest:
    """What a push or promote was asked for, before anything is resolved (bakery.cli.publish)."""

    command: str  # push | promote (release pushes)
    matrix: Path
    selection: Selection
    registry: str | None = None  # push: where to (default: the matrix repository's registry)
    repository: str | None = None  # the local images' repository (default: the matrix's)
    report: Path | None = None  # default: REPORT_DIR/<command>-report.json
    retries: int = 4
    retry_delay: float = 2.0
    untested: bool = False
    dry_run: bool = False
    source: str = ""  # promote: the registry to copy from (--from)
    push_reports: tuple[Path, ...] = ()  # promote: reports naming the tested digests


@dataclass(frozen=True)
class PublishOptions:
    root: Path
    destination: Destination
    report: Path
    retry: RetryPolicy
    untested: bool = False
    dry_run: bool = False
    credentials: Credentials | None = None


# The test seam: called after each tag is pushed and verified (tests stop the registry here).
TagHook = Callable[[TagRecord], None]
