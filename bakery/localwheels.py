"""Do the local pip sources hold a variant's exact torch stack? Checked before any build.

With `--torch-source local` (or auto falling back to it) pip may use nothing but the local
sources, so a missing wheel would surface minutes into a build as pip's "No matching
distribution". The plan looks first: find-links folders are listed, local simple indexes
(file:///…/simple) are read page by page, and wheel names are parsed with `packaging`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from bakery.errors import UsageError
from bakery.matrix import Variant
from bakery.pipsources import PipSources

ANCHOR_RE = re.compile(r">\s*([^<>\s]+\.whl)\s*<")


@dataclass(frozen=True)
class Need:
    variant: str
    project: str
    version: str  # exact, with the local label: 2.9.1+rocm6.3
    python: str


def needs_for(v: Variant) -> list[Need]:
    """The wheels pip must find for variant `v`'s torch step (full flavour only)."""
    if v.flavour != "full":
        return []
    label = f"+{v.index.local}" if v.index.local else ""
    pins = [("torch", v.torch), *v.companions]
    return [Need(v.id, name, f"{ver}{label}", v.python) for name, ver in pins]


def local_places(sources: PipSources) -> list[str]:
    """Human names of where the check looks: folders and local index pages."""
    places = [str(p) for p in _find_links_dirs(sources)]
    places += [f"{p}/<project>/" for p in _index_dirs(sources)]
    return places


def wheel_files(sources: PipSources, project: str) -> list[str]:
    """Wheel file names the local sources offer for `project`."""
    names: list[str] = []
    for folder in _find_links_dirs(sources):
        names += [p.name for p in folder.glob("*.whl")]
    for simple in _index_dirs(sources):
        page = simple / canonicalize_name(project) / "index.html"
        if page.is_file():
            names += ANCHOR_RE.findall(page.read_text(encoding="utf-8", errors="replace"))
    return [n for n in names if _project_of(n) == canonicalize_name(project)]


def matches(filename: str, need: Need) -> bool:
    try:
        _, version, _, tags = parse_wheel_filename(filename)
        wanted = Version(need.version)
    except (InvalidWheelFilename, InvalidVersion):
        return False
    if version != wanted or version.local != wanted.local:
        return False
    cp = "cp" + need.python.replace(".", "")
    return any(_python_ok(t.interpreter, t.abi, cp) and _platform_ok(t.platform) for t in tags)


def missing_wheels(needs: Iterable[Need], sources: PipSources) -> list[Need]:
    cache: dict[str, list[str]] = {}
    missing = []
    for need in needs:
        files = cache.setdefault(need.project, wheel_files(sources, need.project))
        if not any(matches(f, need) for f in files):
            missing.append(need)
    return missing


def check_local_wheels(variants: Sequence[Variant], sources: PipSources) -> None:
    """UsageError naming every missing wheel and where the plan looked."""
    needs = [n for v in variants for n in needs_for(v)]
    missing = missing_wheels(needs, sources)
    if not missing:
        return
    names = "; ".join(f"{n.variant}: {describe(n)}" for n in missing)
    raise UsageError(
        f"the local pip sources lack {len(missing)} wheel(s) the torch step needs ({names})",
        f"with torch from local sources pip may use nothing else; looked in {', '.join(local_places(sources)) or 'no local source'}",
        "put those wheels in a --find-links DIR (or a local index), or use --torch-source index with a mirror (--torch-index-url)",
    )


def describe(need: Need) -> str:
    name = need.project.replace("-", "_")
    py = "cp" + need.python.replace(".", "")
    return f"{name}-{need.version}-{py}-*-linux/manylinux x86_64 .whl"


def _python_ok(interpreter: str, abi: str, cp: str) -> bool:
    if interpreter == cp:
        return abi in (cp, "abi3", "none")
    if interpreter in ("py3", "py2.py3"):
        return True
    return abi == "abi3" and _cp_number(interpreter) <= _cp_number(cp)


def _cp_number(tag: str) -> int:
    digits = tag.removeprefix("cp")
    return int(digits) if tag.startswith("cp") and digits.isdigit() else 10**6


def _platform_ok(platform: str) -> bool:
    return platform == "any" or (platform.endswith("x86_64") and "linux" in platform)


def _project_of(filename: str) -> str:
    return canonicalize_name(filename.split("-", 1)[0])


def _local(entry: str) -> Path | None:
    if entry.startswith("file:"):
        return Path(unquote(urlparse(entry).path))
    return None if "://" in entry else Path(entry)


def _find_links_dirs(sources: PipSources) -> list[Path]:
    dirs = [_local(e) for e in sources.find_links]
    return [d for d in dirs if d is not None and d.is_dir()]


def _index_dirs(sources: PipSources) -> list[Path]:
    entries = [sources.index_url or "", *sources.extra_index_urls]
    dirs = [_local(e) for e in entries if e]
    return [d for d in dirs if d is not None and d.is_dir()]
