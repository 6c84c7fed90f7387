"""`python build.py base`: a Debian base image made locally, because no registry is reachable.

debootstrap (`--variant=minbase`) fills a temporary directory from the Debian mirror the host's
apt already uses, the tree is tarred and `docker import`ed with the config an imported image
lacks (PATH, LANG, CMD, labels). Nothing here talks to Docker except through `bakery.engine`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bakery import engine
from bakery.errors import BakeryError, EngineMissingError, UsageError

LOGGER = logging.getLogger(__name__)

DEFAULT_SUITE = "bookworm"
DEFAULT_REPOSITORY = "bakery/debian"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP_TIMEOUT = 1800.0  # about 25 s on the project's machines; a slow mirror gets time
TAR_TIMEOUT = 600.0
MIRROR_FIX = "pass the mirror explicitly with `--debian-mirror http://<debian mirror>/debian`"
# Where no host Debian mirror exists (Ubuntu hosts, GitHub-hosted runners): Debian's own CDN.
PUBLIC_DEBIAN_MIRROR = "http://deb.debian.org/debian"
# Suite names that mark an apt source as a Debian archive when its URI does not end in /debian.
_DEBIAN_SUITES = frozenset(
    {"buster", "bullseye", "bookworm", "trixie", "forky", "sid"}
    | {"oldoldstable", "oldstable", "stable", "testing", "unstable"}
)


@dataclass(frozen=True)
class BaseOptions:
    suite: str = DEFAULT_SUITE
    tag: str | None = None  # default: bakery/debian:<suite>
    mirror: str | None = None  # default: default_debian_mirror()
    force: bool = False  # rebuild even when the tag exists
    workdir: Path | None = None  # where the temporary rootfs goes (default: the system temp dir)

    @property
    def image_tag(self) -> str:
        return self.tag or f"{DEFAULT_REPOSITORY}:{self.suite}"


@dataclass(frozen=True)
class BaseResult:
    tag: str
    image_id: str
    created: bool  # False: the tag already existed and nothing was done
    mirror: str  # "" when nothing was created
    seconds: float


# ---------------------------------------------------------------------------------------------
# The host's apt mirror


@dataclass(frozen=True)
class _AptSource:
    uri: str
    suites: tuple[str, ...]

    @property
    def is_security(self) -> bool:
        return "security" in self.uri or all(s.endswith("-security") for s in self.suites)

    @property
    def is_debian_archive(self) -> bool:
        return self.uri.rstrip("/").endswith("/debian") or any(
            suite.split("-")[0] in _DEBIAN_SUITES for suite in self.suites
        )


def _deb822_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Fields of each stanza of a deb822 `.sources` file (keys lower-cased)."""
    stanza: dict[str, str] = {}
    key = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, ""
        elif line[0].isspace() and key:
            stanza[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            stanza[key] = value.strip()


def _sources_from_deb822(text: str) -> Iterator[_AptSource]:
    for stanza in _deb822_stanzas(text):
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        suites = tuple(stanza.get("suites", "").split())
        for uri in stanza.get("uris", "").split():
            yield _AptSource(uri, suites)


_ONE_LINE = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)")


def _sources_from_one_line(text: str) -> Iterator[_AptSource]:
    for line in text.splitlines():
        match = _ONE_LINE.match(line.strip())
        if match is not None:
            yield _AptSource(match.group("uri"), (match.group("suite"),))


def _read_apt_sources(root: Path) -> list[_AptSource]:
    """deb822 files first, then /etc/apt/sources.list, then one-line files in sources.list.d."""
    apt = root / "etc" / "apt"
    found: list[_AptSource] = []
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        found.extend(_sources_from_deb822(path.read_text(encoding="utf-8", errors="replace")))
    one_line = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if path.is_file():
            found.extend(_sources_from_one_line(path.read_text(encoding="utf-8", errors="replace")))
    return found


def mirror_from_apt_sources(root: Path = Path("/")) -> str:
    """The Debian archive URI the host's apt uses (never a hard-coded host)."""
    sources = [source for source in _read_apt_sources(root) if not source.is_security]
    archives = [source for source in sources if source.is_debian_archive]
    if not archives:
        raise UsageError(
            f"no Debian mirror found in {root / 'etc/apt/sources.list'} or "
            f"{root / 'etc/apt/sources.list.d'}/*.sources",
            fix=MIRROR_FIX,
        )
    return archives[0].uri.rstrip("/")


def _host_is_debian(root: Path) -> bool:
    for name in ("etc/os-release", "usr/lib/os-release"):
        path = root / name
        if path.is_file():
            fields = dict(
                line.split("=", 1)
                for line in path.read_text(errors="replace").splitlines()
                if "=" in line
            )
            return fields.get("ID", "").strip("\"'") == "debian"
    return False


def default_debian_mirror(root: Path = Path("/")) -> str:
    """On Debian the host's own Debian mirror (its apt sources); elsewhere Debian's public one."""
    if _host_is_debian(root):
        return mirror_from_apt_sources(root)
    return PUBLIC_DEBIAN_MIRROR


def check_mirror(mirror: str) -> str:
    """The mirror without a trailing slash; UsageError unless it is an http(s) URL with a host."""
    parts = urllib.parse.urlsplit(mirror)
    printable = re.fullmatch(r"[\x21-\x7e]+", mirror) is not None  # no spaces, controls, newlines
    if not printable or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = json.dumps(public_mirror(mirror), ensure_ascii=True)
        raise UsageError(
            f"--debian-mirror {shown} is not an http:// or https:// URL of a Debian archive",
            fix="e.g. --debian-mirror http://deb.debian.org/debian",
        )
    return mirror.rstrip("/")


def public_mirror(mirror: str) -> str:
    """The mirror without user name and password: what labels, sources.list and logs may show."""
    parts = urllib.parse.urlsplit(mirror)
    if "@" not in parts.netloc:
        return mirror
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def _scrub(text: str, mirror: str) -> str:
    """Tool output without the mirror's credentials (debootstrap and wget echo their URLs; wget
    writes them as `user:*password*@`)."""
    parts = urllib.parse.urlsplit(mirror)
    userinfo = parts.netloc.rpartition("@")[0]
    if not userinfo:
        return text
    text = re.sub(r"(://)[^/@\s]+@", r"\1", text)  # any user[:password]@ in a URL
    secrets = {userinfo, parts.password or ""}  # a bare user name may be a common word
    for secret in sorted(
        secrets | {urllib.parse.unquote(s) for s in secrets}, key=len, reverse=True
    ):
        if secret:
            text = text.replace(secret, "***")
    return text


# ---------------------------------------------------------------------------------------------
# Building the root filesystem


def _require_tools() -> None:
    if os.geteuid() != 0:
        raise UsageError(
            "`python build.py base` must run as root",
            why="debootstrap creates device nodes and chroots into the new tree",
            fix="run it again with sudo",
        )
    if shutil.which("debootstrap") is None:
        raise EngineMissingError(
            "debootstrap is not installed",
            fix="`apt-get install debootstrap` (or `sudo scripts/install-engine.sh`)",
        )


def _run_tool(command: Sequence[str], what: str, timeout: float, mirror: str = "") -> None:
    LOGGER.info("running %s", _scrub(" ".join(command), mirror))
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, errors="replace", timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BakeryError(f"{what} timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        tail = _scrub(engine.tail_lines(done.stderr + "\n" + done.stdout, 10), mirror)
        raise BakeryError(
            f"{what} failed (exit code {done.returncode})",
            why=tail.replace("\n", " | "),
            fix=f"check the mirror ({MIRROR_FIX}) and the free disk space",
        )


def _debootstrap(suite: str, target: Path, mirror: str) -> None:
    command = ["debootstrap", "--variant=minbase", suite, str(target), mirror]
    what = f"debootstrap of {suite} from {public_mirror(mirror)}"
    _run_tool(command, what, DEBOOTSTRAP_TIMEOUT, mirror)


CACHE_PATTERNS = ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*")
# Like Debian's own -slim images: no manuals, docs or translations (licences stay), and dpkg is
# told not to install them later either, so every image built on this base stays small.
DOC_PATTERNS = ("usr/share/doc/*/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*")
DPKG_EXCLUDES = """\
# bakery base: keep images small, as Debian's -slim images do
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
"""


def _kept(path: Path, rootfs: Path) -> bool:
    """Licence files stay (Debian policy): usr/share/doc/<package>/copyright."""
    return path.name == "copyright" and path.parent.parent == rootfs / "usr" / "share" / "doc"


def _slim_rootfs(rootfs: Path, suite: str, mirror: str) -> None:
    """Keep apt usable (sources.list) and the image small (no .debs, no package lists).

    debootstrap writes the mirror it was given, credentials included, into sources.list: the
    image gets the mirror without them (apt reads credentials from auth.conf, never the image).
    """
    sources = rootfs / "etc" / "apt" / "sources.list"
    sources.write_text(f"deb {public_mirror(mirror)} {suite} main\n", encoding="utf-8")
    # debootstrap's own log names every URL it fetched: keep it, without the credentials.
    bootstrap_log = rootfs / "var" / "log" / "bootstrap.log"
    if bootstrap_log.is_file() and not bootstrap_log.is_symlink():
        text = bootstrap_log.read_text(encoding="utf-8", errors="replace")
        bootstrap_log.write_text(_scrub(text, mirror), encoding="utf-8")
    for pattern in (*CACHE_PATTERNS, *DOC_PATTERNS):
        for path in rootfs.glob(pattern):
            if _kept(path, rootfs):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    excludes = rootfs / "etc" / "dpkg" / "dpkg.cfg.d" / "bakery-slim"
    excludes.parent.mkdir(parents=True, exist_ok=True)
    excludes.write_text(DPKG_EXCLUDES, encoding="utf-8")
    # The host's name resolution must not travel in the image; Docker mounts its own at run time.
    for name in ("etc/resolv.conf", "etc/hostname"):
        path = rootfs / name
        if path.is_file() and not path.is_symlink():
            path.write_text("", encoding="utf-8")


def _tar_rootfs(rootfs: Path, tar: Path) -> None:
    command = ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tar), "."]
    _run_tool(command, f"packing {rootfs}", TAR_TIMEOUT)


def _mounts_below(path: Path) -> list[str]:
    """Mount points at or below `path` (an interrupted debootstrap can leave /proc or /dev)."""
    prefix = str(path.resolve())
    points: list[str] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return points


def _remove_tree(path: Path) -> None:
    """Delete the temporary tree, but never through a mount that leads outside it."""
    for point in sorted(_mounts_below(path), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, timeout=60)
    if _mounts_below(path):
        LOGGER.warning("left %s in place: something is still mounted below it", path)
        return
    shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The image


def _quoted(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid double-quoted Dockerfile value


def base_changes(suite: str, mirror: str, created: str) -> list[str]:
    """The `docker import --change` lines that give the imported tree a usable config."""
    labels = {
        "org.opencontainers.image.base.name": f"debian:{suite}",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.source": f"debootstrap {suite} {public_mirror(mirror)}",
        "io.bakery.base": "debootstrap",
    }
    return [
        f"ENV PATH={IMAGE_PATH}",
        "ENV LANG=C.UTF-8",
        'CMD ["bash"]',
        *(f"LABEL {key}={_quoted(value)}" for key, value in labels.items()),
    ]


def _existing(tag: str, started: float) -> BaseResult | None:
    info = engine.inspect_image(tag)
    if info is None:
        return None
    LOGGER.info("%s already exists (%s); nothing to do", tag, info.id)
    return BaseResult(tag, info.id, created=False, mirror="", seconds=time.monotonic() - started)


def bootstrap_base(options: BaseOptions) -> BaseResult:
    """Create the base image `options.image_tag` unless it exists (or `force` is set)."""
    started = time.monotonic()
    tag = options.image_tag
    chosen = check_mirror(options.mirror) if options.mirror is not None else None
    if not options.force and (found := _existing(tag, started)) is not None:
        return found
    _require_tools()
    mirror = chosen or check_mirror(default_debian_mirror())
    LOGGER.info("Debian mirror: %s", public_mirror(mirror))
    workdir = Path(tempfile.mkdtemp(prefix="bakery-base-", dir=options.workdir))
    try:
        rootfs = workdir / "rootfs"
        _debootstrap(options.suite, rootfs, mirror)
        _slim_rootfs(rootfs, options.suite, mirror)
        tar = workdir / "rootfs.tar"
        _tar_rootfs(rootfs, tar)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        changes = base_changes(options.suite, mirror, created)
        message = f"debootstrap {options.suite} {public_mirror(mirror)}"
        image_id = engine.import_rootfs(tar, tag, changes, message)
    finally:
        _remove_tree(workdir)
    return BaseResult(
        tag,
        image_id,
        created=True,
        mirror=public_mirror(mirror),
        seconds=time.monotonic() - started,
    )
