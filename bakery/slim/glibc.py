"""glibc: what the host environment's compiled code needs (wheel tags, else symbol
versions), and what the image has (its label, else `getconf` run in it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bakery import engine
from bakery.errors import GuardError
from bakery.slim.hostenv import (
    read_metadata_field,
)

GLIBC_LABEL = "io.bakery.glibc"  # read when the image carries it; else `getconf` in the image


GLIBC_PROBE_TIMEOUT = 60.0


# Legacy manylinux names (PEP 513, 571, 599) and the glibc each promises to need at most.
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_\w+")


_GLIBC_SYMBOL = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")


_SCAN_CHUNK = 8 << 20


@dataclass(frozen=True)
class GlibcNeed:
    version: tuple[int, ...]
    source: str  # which wheel tag or file says so


def format_version(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


def platform_glibc(platform: str) -> tuple[int, ...] | None:
    """The glibc a wheel platform tag promises to need at most: () none (pure), None unknown."""
    if platform == "any":
        return ()
    legacy = LEGACY_MANYLINUX.get(platform.split("_", 1)[0])  # manylinux2014_x86_64
    if legacy is not None:
        return legacy
    match = _MANYLINUX.fullmatch(platform)
    return (int(match[1]), int(match[2])) if match else None  # linux_x86_64, musllinux: unknown


def wheel_glibc(tags: Sequence[str]) -> tuple[int, ...] | None:
    """The glibc a wheel needs from its WHEEL Tag lines: the least any of its platforms promises."""
    promises = [
        platform_glibc(platform)
        for tag in tags
        for platform in tag.rsplit("-", 1)[-1].split(".")  # compressed sets: a.b
    ]
    known = [p for p in promises if p is not None]
    return min(known) if known else None


def highest_glibc_symbol(path: Path) -> tuple[int, ...] | None:
    """The highest GLIBC_x.y symbol version named in a shared object (a plain byte search)."""
    best: tuple[int, ...] | None = None
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            window = tail + chunk
            for match in _GLIBC_SYMBOL.finditer(window):
                found = tuple(int(g) for g in match.groups() if g is not None)
                best = found if best is None else max(best, found)
            tail = window[-32:]  # a name cut by a chunk boundary is found in the next window
    return best


def is_shared_object(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


def recorded_shared_objects(dist_info: Path, site: Path) -> set[str]:
    """The shared objects a distribution's RECORD lists, as normalised path strings."""
    try:
        lines = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return set()
    paths = (line.split(",", 1)[0] for line in lines)
    return {os.path.normpath(os.path.join(site, p)) for p in paths if is_shared_object(p)}


def glibc_needs(site: Path) -> list[GlibcNeed]:
    """What the compiled code in `site` needs: wheel tags where they say, else symbol versions."""
    needs: list[GlibcNeed] = []
    covered: set[str] = set()
    for dist_info in sorted(site.glob("*.dist-info")):
        promise = wheel_glibc(read_metadata_field(dist_info / "WHEEL", "Tag"))
        if promise is None:  # linux_x86_64, conda, no WHEEL: read its shared objects below
            continue
        covered |= recorded_shared_objects(dist_info, site)
        if promise:
            tag = f"manylinux_{promise[0]}_{promise[1]}"
            needs.append(GlibcNeed(promise, f"{dist_info.name[: -len('.dist-info')]} ({tag})"))
    for path in _shared_objects(site):
        if path in covered:
            continue
        found = highest_glibc_symbol(Path(path))
        if found:
            where = os.path.relpath(path, site)
            needs.append(GlibcNeed(found, f"{where} (GLIBC_{format_version(found)})"))
    return needs


def _shared_objects(site: Path) -> Iterator[str]:
    """Every shared object file under `site` (symlinks to them are not read twice)."""
    for folder, _, files in os.walk(site):
        for name in files:
            path = os.path.join(folder, name)
            if is_shared_object(name) and not os.path.islink(path):
                yield os.path.normpath(path)


def parse_glibc_version(text: str) -> tuple[int, ...] | None:
    """(2, 36) from `getconf GNU_LIBC_VERSION` ("glibc 2.36") or a label ("2.36")."""
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def glibc_problems(needs: Sequence[GlibcNeed], image_glibc: tuple[int, ...]) -> list[str]:
    too_new = sorted((n for n in needs if n.version[:2] > image_glibc[:2]), key=lambda n: n.version)
    if not too_new:
        return []
    worst = too_new[-1]
    shown = ", ".join(n.source for n in reversed(too_new[-3:]))
    return [
        f"its compiled code needs glibc {format_version(worst.version)} but the image has "
        f"{format_version(image_glibc)} ({len(too_new)} file(s) or wheel(s), e.g. {shown}) — "
        f"install wheels built for glibc {format_version(image_glibc)} or older "
        f"(manylinux_2_{image_glibc[1]} or a lower tag), or use the full image"
    ]


def image_glibc(image: str, labels: Mapping[str, str]) -> tuple[int, ...]:
    """The image's glibc version: its label, else `getconf GNU_LIBC_VERSION` run in it."""
    label = parse_glibc_version(labels.get(GLIBC_LABEL, ""))
    if label:
        return label
    result = engine.run_container(
        image, ["getconf", "GNU_LIBC_VERSION"], network="none", timeout=GLIBC_PROBE_TIMEOUT
    )
    found = parse_glibc_version(result.stdout)
    if result.return_code != 0 or found is None:
        raise GuardError(
            f"could not read the glibc version of {image}",
            why=f"`getconf GNU_LIBC_VERSION` exited {result.return_code}: {result.stderr.strip()[-200:]}",
        )
    return found
