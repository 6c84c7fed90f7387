"""Offline bundles: save/load with verification, delta bundles, export/import with the config restored.

A bundle is one directory a user carries to an air-gapped server:

    images.tar.zst   `docker save` of every selected image (shared layers stored once), zstd;
                     a delta (`save --since OLD`) leaves out the layers the server already has
    load.sh          loads the bundle where bakery is not installed (docker, zstd, coreutils)
    manifest.json    images, tags, ids, layer chains, versions, sizes, the archive's sha256

The manifest is written last and is what makes a directory a bundle. Every file is written under
a temporary name, fsynced and renamed (bakery.atomicfile). `-o` must be new, empty or a bundle
bakery wrote (nothing else is ever deleted or replaced); an old bundle there stays whole until
the new archive is complete, then its manifest goes first. A save killed at any point leaves the
old bundle whole, or no manifest: never a half-new bundle that looks complete.

`load` verifies everything it can without Docker first (manifest, size, sha256, and that the
archive holds exactly the images and layers the manifest names: no other member, no link or
device, no path outside the archive, every blob's content equal to its digest, the tar's size
equal to tar_bytes), then the daemon (image store,
free space, for a delta the base layers), then streams the archive through `zstd -d` into
`docker load`, checks the image ids, applies the tags and runs the probe.

Why a delta can leave layers out: `docker load` on the classic image store opens a layer file
only when the daemon lacks that layer's ChainID (moby image/tarexport/load.go,
shared/facts/docker-tools.md §3). The archive's own tags are removed at save time, so
nothing is tagged on the server before bakery (or load.sh) has checked the image ids.

`export`/`import` are for users who must flatten an image into one layer: `docker import`
starts from an empty config, so `import` re-applies ENV, ENTRYPOINT, CMD, WORKDIR, USER and
labels from the export's manifest with `--change`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Any, TypeAlias

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from bakery import __version__, engine
from bakery.atomicfile import TEMP_SUFFIX, PendingFile, fsync_dir, pending_file, write_atomic
from bakery.errors import EXIT_FAILED, EXIT_OK, BakeryError, BundleError, UsageError
from bakery.ui import err_console

COMMANDS: tuple[str, ...] = ("save", "load", "export", "import")

FORMAT = "bakery-bundle"
FORMAT_VERSION = 1
KINDS = ("full", "delta", "export")
ARCHIVE_NAME = "images.tar.zst"
MANIFEST_NAME = "manifest.json"
LOADER_NAME = "load.sh"
PARTIAL_SUFFIX = ".partial"
SAVE_NAMES = (ARCHIVE_NAME, LOADER_NAME, MANIFEST_NAME)
DEFAULT_LEVEL = 3
CHUNK = 1 << 20
SMALL_MEMBER = 1 << 20  # tar members up to this size are hashed while scanning (configs, JSON)
LOAD_MARGIN = 256 << 20  # free space beyond twice the tar: docker load unpacks, then applies
ZSTD_FIX = "install zstd (Debian/Ubuntu: `apt-get install zstd`)"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
EMPTY_MAP: Mapping[str, str] = MappingProxyType({})
COMPONENT_LABELS = {
    "variant": "io.bakery.variant",
    "flavour": "io.bakery.flavour",
    "accelerator": "io.bakery.accelerator",
    "python": "io.bakery.python",
    "torch": "io.bakery.torch",
    "torchvision": "io.bakery.torchvision",
    "torch_source": "io.bakery.torch-source",
}
PROBE_TIMEOUT = 300.0
CONTAINERD_PROBLEM = (
    "the Docker daemon uses the containerd image store",
    "bundles are verified on the classic store only (image ids and layer skipping differ)",
    'turn it off (daemon.json: "features": {"containerd-snapshotter": false}) or use export/import',
)
STOP_SECONDS = 10.0  # how long a helper thread may take to notice that its pipe is gone


# ---------------------------------------------------------------------------------------------
# The manifest


@dataclass(frozen=True)
class Layer:
    diff_id: str
    chain_id: str
    size: int  # bytes of the layer tar (known for left-out layers too: docker save streams them)
    included: bool  # its tar is in the archive (a delta leaves out what the server has)


@dataclass(frozen=True)
class ImageConfig:
    """What `docker import` loses and `import` restores."""

    env: tuple[str, ...] = ()  # "KEY=value", in the image's order
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    workdir: str = ""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)


@dataclass(frozen=True)
class BundleImage:
    ref: str  # what was asked for, e.g. ghcr.io/example-lab/bakery:2.13.0-cpu-py3.11
    tags: tuple[str, ...]  # applied on load
    id: str  # image id (config digest)
    size: int
    archive: str  # file name in the bundle
    components: Mapping[str, str]
    config: ImageConfig
    layers: tuple[Layer, ...]


@dataclass(frozen=True)
class Archive:
    file: str
    sha256: str  # of the compressed file
    bytes: int  # compressed size
    tar_bytes: int  # uncompressed size


@dataclass(frozen=True)
class Manifest:
    kind: str  # full | delta | export
    bakery_version: str
    created: str
    archives: tuple[Archive, ...]
    images: tuple[BundleImage, ...]
    since: Mapping[str, Any] | None = None  # delta: the manifest it was made against

    def archive(self, name: str) -> Archive:
        return next(a for a in self.archives if a.file == name)

    def required_layers(self) -> list[tuple[BundleImage, int, Layer]]:
        """(image, position, layer) of every layer a delta expects the server to have."""
        if self.kind != "delta":
            return []
        return [
            (image, i, layer)
            for image in self.images
            for i, layer in enumerate(image.layers)
            if not layer.included
        ]


@dataclass(frozen=True)
class Bundle:
    directory: Path
    manifest_path: Path
    manifest: Manifest
    sha256: str  # of manifest.json itself (a delta records the one it was made against)

    def path(self, archive: Archive) -> Path:
        return self.directory / archive.file


def chain_ids(diff_ids: Sequence[str]) -> tuple[str, ...]:
    """ChainIDs of a layer stack (OCI image spec, "ChainID"), base first.

    chain(0) = diff(0); chain(n) = sha256(chain(n-1) + " " + diff(n)).
    """
    chains: list[str] = []
    for diff in diff_ids:
        if chains:
            text = f"{chains[-1]} {diff}".encode()
            chains.append("sha256:" + hashlib.sha256(text).hexdigest())
        else:
            chains.append(diff)
    return tuple(chains)


def manifest_to_json(manifest: Manifest) -> str:
    def image(i: BundleImage) -> dict[str, Any]:
        return {
            "ref": i.ref, "tags": list(i.tags), "id": i.id, "size": i.size, "archive": i.archive,
            "components": dict(i.components),
            "config": {
                "env": list(i.config.env),
                "cmd": None if i.config.cmd is None else list(i.config.cmd),
                "entrypoint": None if i.config.entrypoint is None else list(i.config.entrypoint),
                "workdir": i.config.workdir, "user": i.config.user,
                "labels": dict(sorted(i.config.labels.items())),
            },
            "layers": [layer.__dict__ for layer in i.layers],
        }  # fmt: skip

    data = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": manifest.kind,
        "bakery_version": manifest.bakery_version,
        "created": manifest.created,
        "archives": [a.__dict__ for a in manifest.archives],
        "since": None if manifest.since is None else dict(manifest.since),
        "images": [image(i) for i in manifest.images],
    }
    return json.dumps(data, indent=2) + "\n"


class _Reader:
    """Typed access to a manifest's JSON: every problem names the key and the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> BundleError:
        return BundleError(
            f"{self.path} is not a valid bundle manifest: {key}: {problem}",
            "the manifest was edited, damaged, or belongs to another program",
            "copy manifest.json again from the machine that ran `python build.py save`",
        )

    def get(self, data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], at: str) -> Any:
        if not isinstance(data, Mapping) or key not in data:
            raise self.fail(f"{at}{key}", "missing")
        value = data[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise self.fail(f"{at}{key}", f"expected {_type_name(kind)}, found {value!r:.60}")
        return value

    def digest(self, data: Mapping[str, Any], key: str, at: str) -> str:
        value: str = self.get(data, key, str, at)
        if not DIGEST_RE.match(value):
            raise self.fail(f"{at}{key}", f"{value!r:.80} is not a sha256:<64 hex> digest")
        return value

    def strings(self, data: Mapping[str, Any], key: str, at: str) -> tuple[str, ...] | None:
        value = self.get(data, key, (list, type(None)), at)
        if value is None:
            return None
        if not all(isinstance(item, str) for item in value):
            raise self.fail(f"{at}{key}", "expected a list of strings")
        return tuple(value)


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {"str": "a string", "int": "a number", "list": "a list", "dict": "an object"}
    return " or ".join(names.get(k.__name__, k.__name__) for k in kinds)


def parse_manifest(text: str, path: Path) -> Manifest:
    """Read and check a manifest; BundleError naming the file and the key on any problem."""
    reader = _Reader(path)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise reader.fail("(file)", f"not JSON ({exc})") from None
    except RecursionError:
        raise reader.fail("(file)", "nested too deeply to be a bundle manifest") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise reader.fail("format", f"expected {FORMAT!r}")
    version = reader.get(data, "format_version", int, "")
    if version != FORMAT_VERSION:
        raise reader.fail(
            "format_version", f"{version} is not {FORMAT_VERSION} (made by another bakery version)"
        )
    kind = reader.get(data, "kind", str, "")
    if kind not in KINDS:
        raise reader.fail("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    archives = tuple(
        _parse_archive(reader, item, f"archives[{n}].")
        for n, item in enumerate(reader.get(data, "archives", list, ""))
    )
    images = tuple(
        _parse_image(reader, item, f"images[{n}].")
        for n, item in enumerate(reader.get(data, "images", list, ""))
    )
    manifest = Manifest(
        kind=kind,
        bakery_version=reader.get(data, "bakery_version", str, ""),
        created=reader.get(data, "created", str, ""),
        archives=archives,
        images=images,
        since=reader.get(data, "since", (dict, type(None)), ""),
    )
    _check_consistency(reader, manifest)
    return manifest


def _parse_archive(reader: _Reader, data: Any, at: str) -> Archive:
    file = reader.get(data, "file", str, at)
    if not file or "/" in file or file.startswith("."):
        raise reader.fail(f"{at}file", f"{file!r} is not a plain file name")
    sha = reader.get(data, "sha256", str, at)
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise reader.fail(f"{at}sha256", f"{sha!r:.80} is not 64 hex digits")
    return Archive(
        file, sha, reader.get(data, "bytes", int, at), reader.get(data, "tar_bytes", int, at)
    )


def _parse_image(reader: _Reader, data: Any, at: str) -> BundleImage:
    config = reader.get(data, "config", dict, at)
    where = f"{at}config."
    labels = reader.get(config, "labels", dict, where)
    components = reader.get(data, "components", dict, at)
    layers = tuple(
        _parse_layer(reader, item, f"{at}layers[{n}].")
        for n, item in enumerate(reader.get(data, "layers", list, at))
    )
    return BundleImage(
        ref=reader.get(data, "ref", str, at),
        tags=reader.strings(data, "tags", at) or (),
        id=reader.digest(data, "id", at),
        size=reader.get(data, "size", int, at),
        archive=reader.get(data, "archive", str, at),
        components=MappingProxyType({str(k): str(v) for k, v in components.items()}),
        config=ImageConfig(
            env=reader.strings(config, "env", where) or (),
            cmd=reader.strings(config, "cmd", where),
            entrypoint=reader.strings(config, "entrypoint", where),
            workdir=reader.get(config, "workdir", str, where),
            user=reader.get(config, "user", str, where),
            labels=MappingProxyType({str(k): str(v) for k, v in labels.items()}),
        ),
        layers=layers,
    )


def _parse_layer(reader: _Reader, data: Any, at: str) -> Layer:
    return Layer(
        diff_id=reader.digest(data, "diff_id", at),
        chain_id=reader.digest(data, "chain_id", at),
        size=reader.get(data, "size", int, at),
        included=reader.get(data, "included", bool, at),
    )


def _check_consistency(reader: _Reader, manifest: Manifest) -> None:
    """The manifest must agree with itself: chains from diff ids, archives named, kinds."""
    if not manifest.images:
        raise reader.fail("images", "the bundle holds no image")
    names = {a.file for a in manifest.archives}
    for n, image in enumerate(manifest.images):
        at = f"images[{n}]"
        if image.archive not in names:
            raise reader.fail(f"{at}.archive", f"{image.archive!r} is not among the archives")
        if not image.layers:
            raise reader.fail(f"{at}.layers", "an image has at least one layer")
        expected = chain_ids([layer.diff_id for layer in image.layers])
        for i, (layer, chain) in enumerate(zip(image.layers, expected, strict=True)):
            if layer.chain_id != chain:
                raise reader.fail(
                    f"{at}.layers[{i}].chain_id",
                    f"{layer.chain_id} does not follow from the diff ids",
                )
        if manifest.kind == "full" and not all(layer.included for layer in image.layers):
            raise reader.fail(f"{at}.layers", "a full bundle must include every layer")
    if manifest.kind == "delta" and not isinstance(manifest.since, Mapping):
        raise reader.fail("since", "a delta names the manifest it was made against")


def locate_bundle(path: Path) -> Path:
    """The manifest of the bundle at `path`: a bundle directory, its manifest or its archive."""
    if path.is_dir():
        manifest = path / MANIFEST_NAME
    elif path.name == MANIFEST_NAME or path.suffix == ".json":
        manifest = path
    elif path.exists():
        manifest = path.parent / MANIFEST_NAME
    else:
        raise UsageError(
            f"{path} does not exist",
            fix="pass the bundle directory written by `python build.py save -o DIR`",
        )
    if not manifest.is_file():
        raise BundleError(
            f"{manifest.parent} is not a complete bundle: {MANIFEST_NAME} is missing",
            "the save did not finish (the manifest is written last), or the copy is incomplete",
            f"copy the whole bundle directory again, or re-run `python build.py save -o {manifest.parent}`",
        )
    return manifest


def read_bundle(path: Path) -> Bundle:
    manifest_path = locate_bundle(path)
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {manifest_path}: {exc.strerror}") from None
    manifest = parse_manifest(raw.decode("utf-8", errors="replace"), manifest_path)
    sha = hashlib.sha256(raw).hexdigest()
    return Bundle(manifest_path.parent, manifest_path, manifest, sha)


# ---------------------------------------------------------------------------------------------
# Files: atomic writes, progress, zstd


def write_file_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically and durably (bakery.atomicfile)."""
    write_atomic(path, data, mode)


def is_leftover(name: str) -> bool:
    """A temporary file a killed save or export left behind (never a user's file)."""
    match = re.fullmatch(rf"\.(.+)\.[A-Za-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}", name)
    if match is not None:
        base = match.group(1)
    elif name.endswith(PARTIAL_SUFFIX):  # bakery before atomicfile: `<name>.partial`
        base = name.removesuffix(PARTIAL_SUFFIX)
    else:
        return False
    return base in (ARCHIVE_NAME, LOADER_NAME, MANIFEST_NAME) or base.endswith(".rootfs.tar.zst")


def owned_names(manifest: Manifest) -> set[str]:
    """The files of a bundle that its manifest vouches bakery wrote."""
    names = {MANIFEST_NAME, *(a.file for a in manifest.archives)}
    return names | ({LOADER_NAME} if manifest.kind != "export" else set())


def _own_manifest(path: Path) -> Manifest | None:
    if not path.is_file():
        return None
    try:
        return parse_manifest(path.read_bytes().decode("utf-8", errors="replace"), path)
    except (BundleError, OSError):
        return None


def check_output(directory: Path, names: Sequence[str]) -> Manifest | None:
    """The bundle `directory` already holds (to be replaced), or None for a new or empty one.

    UsageError, before anything is written, for a folder that holds files that are not a
    bakery bundle's, or files the new bundle would overwrite that its old manifest does not name.
    """
    if not directory.exists():
        return None
    if not directory.is_dir():
        raise UsageError(f"-o {directory} is not a folder", fix="give a new or empty folder")
    present = sorted(p.name for p in directory.iterdir() if not is_leftover(p.name))
    if not present:
        return None
    old = _own_manifest(directory / MANIFEST_NAME)
    if old is None:
        shown = ", ".join(repr(n) for n in present[:5]) + (", ..." if len(present) > 5 else "")
        raise UsageError(
            f"-o {directory} is not empty and is not a bakery bundle (it holds {shown})",
            "bakery never deletes or replaces files it did not write",
            "choose a new or empty folder for -o (or a bundle folder bakery wrote)",
        )
    clash = [n for n in names if n in present and n not in owned_names(old)]
    if clash:
        raise UsageError(
            f"-o {directory} holds {', '.join(clash)}, which its bundle's {MANIFEST_NAME} does not name",
            "bakery never replaces files it did not write",
            "move those files away, or choose another folder for -o",
        )
    return old


def remove_leftovers(directory: Path) -> None:
    for path in directory.iterdir():
        if is_leftover(path.name):
            path.unlink(missing_ok=True)


def install_bundle(
    directory: Path,
    old: Manifest | None,
    archives: Sequence[PendingFile],
    manifest: Manifest,
    loader: str | None,
) -> None:
    """Replace the old bundle with the new, whose archives are complete and fsynced.

    The old manifest goes first (from then on the folder is no bundle), the manifest is
    written last; files only the old bundle named are removed at the end.
    """
    old_manifest = directory / MANIFEST_NAME
    if old_manifest.exists():
        old_manifest.unlink()
        fsync_dir(directory)
    for pending in archives:
        pending.commit()
    if loader is not None:
        write_atomic(directory / LOADER_NAME, loader, 0o755)
    write_atomic(old_manifest, manifest_to_json(manifest))
    for name in sorted(owned_names(old) - owned_names(manifest)) if old is not None else []:
        (directory / name).unlink(missing_ok=True)


@contextlib.contextmanager
def progress_bar(
    console: Console, description: str, total: int | None
) -> Iterator[Callable[[int], None]]:
    """A bytes/rate/ETA bar on stderr; yields `advance(n)` (safe to call from threads)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
        done = progress.tasks[0].completed
        progress.update(task, total=done, completed=done)


class CountingReader(io.RawIOBase):
    """A read-only stream that reports how many bytes went through it."""

    def __init__(self, source: IO[bytes], advance: Callable[[int], None]) -> None:
        super().__init__()
        self._source = source
        self._advance = advance
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.count += size
        self._advance(size)
        return size


class CountingWriter(io.RawIOBase):
    """A write-only stream into `sink` that counts the bytes (closing it leaves `sink` open)."""

    def __init__(self, sink: IO[bytes]) -> None:
        super().__init__()
        self._sink = sink
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._sink.write(view)
        self.count += view.nbytes
        return view.nbytes


def _need_zstd() -> str:
    found = shutil.which("zstd")
    if found is None:
        raise UsageError(
            "the zstd command is not installed", "bundles are zstd-compressed", ZSTD_FIX
        )
    return found


def _zstd(args: Sequence[str], stdin: IO[bytes] | int | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [_need_zstd(), "-q", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a terminal's Ctrl+C reaches bakery, which stops it
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()


class _Worker(threading.Thread):
    """Run `work` in a thread; `result()` joins and re-raises its exception."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(name="bakery-bundle", daemon=True)
        self._work = work
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> Any:
        self.join()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass(frozen=True)
class Written:
    sha256: str
    bytes: int
    tar_bytes: int


def compress_to(
    source: IO[bytes],
    partial: Path,
    level: int,
    transform: Callable[[IO[bytes], IO[bytes]], Any],
    advance: Callable[[int], None],
) -> tuple[Written, Any]:
    """`transform(source, zstd stdin)` in a thread; zstd's output to `partial`, hashed, fsynced.

    Returns the file's facts and what `transform` returned.
    """
    counted = CountingReader(source, advance)
    zstd = _zstd([f"-{level}", "-T0", "-c"], subprocess.PIPE)
    if zstd.stdin is None or zstd.stdout is None:  # cannot happen with PIPE; keeps types honest
        raise BakeryError("zstd started without pipes")
    sink = zstd.stdin
    tar_out = CountingWriter(sink)  # tar_bytes: what goes into zstd (what load unpacks)

    def feed() -> Any:
        out = io.BufferedWriter(tar_out, CHUNK)
        try:
            return transform(io.BufferedReader(counted, CHUNK), out)
        finally:
            with contextlib.suppress(BrokenPipeError, ValueError):  # zstd's error is reported
                out.close()
            sink.close()

    worker = _Worker(feed)
    worker.start()
    try:
        digest, size = _drain(zstd.stdout, partial)
    except BaseException:
        _stop(zstd)  # the feeder's next write fails; the caller stops the source
        worker.join(timeout=STOP_SECONDS)
        raise
    worker.join()
    _check_zstd(zstd, "compressing")  # before the feeder's error: a broken pipe is zstd's doing
    result = worker.result()
    return Written(digest, size, tar_out.count), result


def _drain(stream: IO[bytes], partial: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with partial.open("wb") as out:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _check_zstd(zstd: subprocess.Popen[bytes], doing: str) -> None:
    code = zstd.wait()
    stderr = zstd.stderr.read().decode(errors="replace").strip() if zstd.stderr else ""
    if code != 0:
        raise BakeryError(f"zstd failed while {doing} (exit {code})", engine.tail_lines(stderr, 3))


def copy_stream(source: IO[bytes], sink: IO[bytes]) -> None:
    shutil.copyfileobj(source, sink, CHUNK)


# ---------------------------------------------------------------------------------------------
# The docker save tar: filtering (save) and scanning (load)


@dataclass
class SavedTar:
    """What went through the filter: member sizes, omitted blobs, docker's manifest.json."""

    sizes: dict[str, int] = field(default_factory=dict)
    omitted: set[str] = field(default_factory=set)
    entries: list[dict[str, Any]] = field(default_factory=list)


def blob_name(digest: str) -> str:
    """Where `docker save` (Engine >= 25) stores a blob: blobs/sha256/<hex>."""
    algorithm, _, hex_part = digest.partition(":")
    return f"blobs/{algorithm}/{hex_part}"


def _untagged_manifest(data: bytes) -> tuple[bytes, list[dict[str, Any]]]:
    entries = json.loads(data)
    if not isinstance(entries, list):
        raise BakeryError("docker save wrote a manifest.json that is not a list")
    for entry in entries:
        entry["RepoTags"] = None  # tags are applied by load after the ids were checked
    return json.dumps(entries, separators=(",", ":")).encode(), entries


def _unnamed_index(data: bytes) -> bytes:
    index = json.loads(data)
    for item in index.get("manifests") or ():
        annotations = item.get("annotations") or {}
        for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
            annotations.pop(key, None)
    return json.dumps(index, separators=(",", ":")).encode()


def filter_saved_tar(source: IO[bytes], sink: IO[bytes], omit: frozenset[str]) -> SavedTar:
    """Copy `docker save`'s tar, leaving out the blobs named in `omit` and every tag.

    manifest.json keeps its entries with `RepoTags: null`; `repositories` is dropped, and
    index.json loses its name annotations, so `docker load` tags nothing. Every entry's mtime is
    0, so the same images always give the same bytes (and the same sha256).
    """
    saved = SavedTar()
    with (
        tarfile.open(fileobj=source, mode="r|", bufsize=CHUNK) as tar_in,
        tarfile.open(fileobj=sink, mode="w|", bufsize=CHUNK, format=tarfile.PAX_FORMAT) as tar_out,
    ):
        # 1 MiB copies instead of 16 KiB (a TarFile attribute since 3.8, missing in typeshed)
        tar_out.copybufsize = CHUNK  # type: ignore[attr-defined]
        for member in tar_in:
            saved.sizes[member.name] = member.size
            if member.name == "repositories":
                continue
            if member.name in omit:
                saved.omitted.add(member.name)
                continue
            handle = tar_in.extractfile(member) if member.isfile() else None
            member.mtime = 0  # docker save stamps some entries with the time of the save
            if member.name in ("manifest.json", "index.json") and handle is not None:
                data = handle.read()
                if member.name == "manifest.json":
                    data, saved.entries = _untagged_manifest(data)
                else:
                    data = _unnamed_index(data)
                member.size = len(data)
                handle = io.BytesIO(data)
            tar_out.addfile(member, handle)
    return saved


@dataclass
class TarScan:
    """What an archive holds: member sizes and digests, the small ones' bytes, docker's manifest."""

    sizes: dict[str, int] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    configs: dict[str, bytes] = field(default_factory=dict)
    entries: list[dict[str, Any]] | None = None
    problems: list[str] = field(default_factory=list)  # members a bakery archive never holds
    tar_bytes: int = 0  # every byte of the tar stream, to its end


SAVE_FILES = ("manifest.json", "index.json", "oci-layout")
SAVE_DIRS = ("blobs", "blobs/sha256")
BLOB_RE = re.compile(r"blobs/sha256/[0-9a-f]{64}")


def member_problem(member: tarfile.TarInfo, seen: Mapping[str, int]) -> str:
    """Why `member` has no place in a bakery archive ("" when it has one)."""
    name = member.name
    shown = json.dumps(name)[:120]
    if name in seen:
        return f"{shown} is in the archive twice"
    if member.isdir():
        return "" if name in SAVE_DIRS else f"{shown} is a folder a docker save never holds"
    if not member.isreg():
        kind = "a link" if member.issym() or member.islnk() else "not a regular file"
        return f"{shown} is {kind}"
    if name in SAVE_FILES or BLOB_RE.fullmatch(name):
        return ""
    return f"{shown} is not a file of a docker save (absolute, `..` or unknown path)"


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, scan: TarScan) -> None:
    """Read a regular member to its end (a short one raises ReadError) and hash it."""
    handle = tar.extractfile(member)
    if handle is None:
        return
    digest = hashlib.sha256()
    small = bytearray() if member.size <= SMALL_MEMBER else None
    while chunk := handle.read(CHUNK):
        digest.update(chunk)
        if small is not None:
            small += chunk
    scan.digests[member.name] = "sha256:" + digest.hexdigest()
    if small is not None:
        scan.configs[member.name] = bytes(small)
    if (
        member.name.startswith("blobs/")
        and scan.digests[member.name] != "sha256:" + member.name[13:]
    ):
        scan.problems.append(f"{member.name} does not hold what its name says (sha256 differs)")


def _docker_entries(data: bytes, scan: TarScan) -> None:
    try:
        entries = json.loads(data)
    except (ValueError, RecursionError):
        scan.problems.append("the archive's manifest.json is not JSON")
        return
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        scan.problems.append("the archive's manifest.json is not a list of images")
        return
    scan.entries = entries


def scan_saved_tar(source: IO[bytes]) -> TarScan:
    """Read a saved tar without unpacking it: every member checked, read to its end, hashed."""
    scan = TarScan()
    counted = CountingReader(source, lambda n: None)
    buffered = io.BufferedReader(counted, CHUNK)
    with tarfile.open(fileobj=buffered, mode="r|", bufsize=CHUNK) as tar:
        for member in tar:
            problem = member_problem(member, scan.sizes)
            scan.sizes[member.name] = member.size
            if problem:
                scan.problems.append(problem)
                continue
            _read_member(tar, member, scan)
            if member.name == "manifest.json" and member.name in scan.configs:
                _docker_entries(scan.configs[member.name], scan)
    while buffered.read(CHUNK):  # to the stream's end (tar readers stop at the end marker)
        pass
    scan.tar_bytes = counted.count
    return scan


def archive_problems(manifest: Manifest, archive: Archive, scan: TarScan) -> list[str]:
    """Every way the archive's content differs from what the manifest says about it."""
    problems = list(scan.problems)
    if scan.tar_bytes != archive.tar_bytes:
        problems.append(
            f"it holds {scan.tar_bytes} bytes of tar, its manifest says tar_bytes {archive.tar_bytes}"
        )
    if scan.entries is None:
        return [*problems, "the archive has no manifest.json (it is not a `docker save` archive)"]
    by_config = {str(e.get("Config")): e for e in scan.entries}
    named: set[str] = set()
    images = [i for i in manifest.images if i.archive == archive.file]
    for image in images:
        config_name = blob_name(image.id)
        named |= {config_name, *(blob_name(x.diff_id) for x in image.layers if x.included)}
        entry = by_config.get(config_name)
        if entry is None or scan.digests.get(config_name) != image.id:
            problems.append(f"image {image.ref} ({image.id}) is not in the archive")
            continue
        problems += _layer_problems(image, entry, scan.configs[config_name], scan)
    if len(scan.entries) != len(images):
        problems.append(f"the archive lists {len(scan.entries)} images, the manifest {len(images)}")
    extra = [
        n for n, size in scan.sizes.items()
        if n.startswith("blobs/sha256/") and n not in named and size > SMALL_MEMBER
    ]  # fmt: skip
    problems += [f"the archive holds {n}, which no image of the manifest names" for n in extra]
    return problems


def _layer_problems(
    image: BundleImage, entry: Mapping[str, Any], config: bytes, scan: TarScan
) -> list[str]:
    try:
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return [f"image {image.ref}: its config in the archive cannot be read"]
    if diff_ids != [layer.diff_id for layer in image.layers]:
        return [f"image {image.ref}: the archive's layers differ from the manifest's"]
    if entry.get("Layers") != [blob_name(layer.diff_id) for layer in image.layers]:
        return [f"image {image.ref}: the archive's manifest.json names other layer files"]
    problems = []
    for i, layer in enumerate(image.layers):
        present = blob_name(layer.diff_id) in scan.sizes
        if present != layer.included:
            state = "holds" if present else "lacks"
            problems.append(
                f"image {image.ref}: the archive {state} layer {i + 1} ({layer.diff_id})"
            )
    return problems


# ---------------------------------------------------------------------------------------------
# save


@dataclass(frozen=True)
class PlannedImage:
    ref: str
    tags: tuple[str, ...]
    info: engine.ImageInfo
    chains: tuple[str, ...]


@dataclass(frozen=True)
class SavePlan:
    output: Path
    images: tuple[PlannedImage, ...]
    omit: frozenset[str]  # blob names of the layers the server has wherever they are used
    since: Bundle | None
    level: int


def plan_images(refs: Sequence[str]) -> tuple[PlannedImage, ...]:
    """Inspect every ref (UsageError for a missing one); one entry per image id, tags merged."""
    by_id: dict[str, PlannedImage] = {}
    for ref in refs:
        info = engine.inspect_image(ref)
        if info is None:
            raise UsageError(
                f"image {ref} is not in the local Docker daemon",
                "only built images can be saved",
                "build it first (`python build.py --variant ID`), or check --repository/--image",
            )
        known = by_id.get(info.id)
        if known is not None:
            by_id[info.id] = replace(known, tags=(*known.tags, ref))
        else:
            by_id[info.id] = PlannedImage(ref, (ref,), info, chain_ids(info.layers))
    return tuple(by_id.values())


def server_chains(bundle: Bundle) -> set[str]:
    """Every layer chain a server holds once it has loaded `bundle` (and, for a delta, its base)."""
    return {layer.chain_id for image in bundle.manifest.images for layer in image.layers}


def layers_to_omit(images: Sequence[PlannedImage], present: set[str]) -> frozenset[str]:
    """Blob names a delta can leave out: layers whose chain the server has at every use.

    A diff id can sit at two chain positions (in two images); the blob is needed as soon as
    one of them is missing on the server.
    """
    uses = [(d, c) for i in images for d, c in zip(i.info.layers, i.chains, strict=True)]
    needed = {d for d, c in uses if c not in present}
    return frozenset(blob_name(d) for d, c in uses if c in present and d not in needed)


def plan_save(refs: Sequence[str], output: Path, since: Path | None, level: int) -> SavePlan:
    if not 1 <= level <= 19:
        raise UsageError(
            f"--level {level} is not a zstd level", fix="use 1 (fast) to 19 (small); default 3"
        )
    if since is not None and since.resolve() in (
        output.resolve(),
        output.resolve() / MANIFEST_NAME,
    ):
        raise UsageError(
            f"--since {since} is the bundle being written",
            "a delta is made against what the server already has",
            "write the delta to another directory (-o)",
        )
    check_output(output, SAVE_NAMES)  # refused before any docker call (and in --dry-run)
    images = plan_images(refs)
    old = read_bundle(since) if since is not None else None
    if old is not None and old.manifest.kind == "export":
        raise UsageError(
            f"--since {since} is an export bundle", fix="give the manifest of a saved bundle"
        )
    omit = layers_to_omit(images, server_chains(old)) if old is not None else frozenset()
    return SavePlan(output, images, omit, old, level)


def print_save_plan(plan: SavePlan, console: Console) -> None:
    layers = {d for i in plan.images for d in i.info.layers}
    kind = "delta" if plan.omit else "full"
    console.print(f"save plan: {kind} bundle of {len(plan.images)} image(s) -> {plan.output}")
    for image in plan.images:
        left_out = sum(1 for d in image.info.layers if blob_name(d) in plan.omit)
        note = f", {left_out} already on the server" if left_out else ""
        console.print(
            f"  {', '.join(image.tags)}  {image.info.id[:19]}  {_size(image.info.size)}, "
            f"{len(image.info.layers)} layers{note}"
        )
    if plan.since is not None:
        console.print(
            f"  since {plan.since.manifest_path}: {len(plan.omit)} of {len(layers)} distinct layers left out"
        )
        if not plan.omit:
            console.print(
                "  [yellow]warning:[/] the old bundle shares no layer: this is a full bundle"
            )


def _size(size: int) -> str:
    return filesize.decimal(size)


def check_saved(plan: SavePlan, saved: SavedTar) -> None:
    """docker save must name layer blobs by diff id (the classic store); else no delta is safe."""
    problem = ""
    if saved.omitted != plan.omit:
        problem = (
            f"{len(plan.omit - saved.omitted)} layer file(s) to leave out were not in the stream"
        )
    by_config = {e.get("Config"): e for e in saved.entries}
    for image in plan.images:
        entry = by_config.get(blob_name(image.info.id))
        expected = [blob_name(d) for d in image.info.layers]
        if entry is None or entry.get("Layers") != expected:
            problem = f"{image.ref}: the archive's layer files are not named by their diff ids"
    if problem:
        raise BakeryError(
            f"docker save wrote an archive bakery cannot vouch for: {problem}",
            "bundles rely on the classic image store's save format (Engine >= 25)",
            "use the classic image store (no containerd-snapshotter feature) for save and load",
        )


def _since_record(bundle: Bundle) -> dict[str, Any]:
    return {
        "manifest_sha256": bundle.sha256,
        "created": bundle.manifest.created,
        "images": [{"ref": i.ref, "id": i.id} for i in bundle.manifest.images],
    }


def _config_of(info: engine.ImageInfo) -> ImageConfig:
    return ImageConfig(
        env=tuple(f"{k}={v}" for k, v in info.env.items()),
        cmd=info.cmd,
        entrypoint=info.entrypoint,
        workdir=info.workdir,
        user=info.user,
        labels=info.labels,
    )


def _components(info: engine.ImageInfo) -> Mapping[str, str]:
    found = {name: info.labels.get(label, "") for name, label in COMPONENT_LABELS.items()}
    return MappingProxyType({name: value for name, value in found.items() if value})


def bundle_image(
    image: PlannedImage, archive: str, sizes: Mapping[str, int], omit: frozenset[str]
) -> BundleImage:
    layers = tuple(
        Layer(d, c, sizes.get(blob_name(d), 0), blob_name(d) not in omit and blob_name(d) in sizes)
        for d, c in zip(image.info.layers, image.chains, strict=True)
    )
    return BundleImage(
        ref=image.ref, tags=image.tags, id=image.info.id, size=image.info.size, archive=archive,
        components=_components(image.info), config=_config_of(image.info), layers=layers,
    )  # fmt: skip


def build_manifest(plan: SavePlan, saved: SavedTar, written: Written) -> Manifest:
    images = tuple(bundle_image(i, ARCHIVE_NAME, saved.sizes, plan.omit) for i in plan.images)
    return Manifest(
        kind="delta" if plan.omit else "full",
        bakery_version=__version__,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        archives=(Archive(ARCHIVE_NAME, written.sha256, written.bytes, written.tar_bytes),),
        images=images,
        since=_since_record(plan.since) if plan.since is not None else None,
    )


@contextlib.contextmanager
def _writing(where: Path) -> Iterator[None]:
    """Disk errors while writing a bundle become one clear message."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise BakeryError(
            f"could not write {exc.filename or where}: {exc.strerror}",
            "nothing that looks like a complete bundle was left behind",
            "free some space or choose another -o directory, then save again",
        ) from None


def save_bundle(plan: SavePlan, console: Console) -> Manifest:
    """Stream `docker save` through the filter and zstd; replace the old bundle only then."""
    estimate = sum(i.info.size for i in plan.images)
    with _writing(plan.output):
        old = check_output(plan.output, SAVE_NAMES)
        plan.output.mkdir(parents=True, exist_ok=True)
        remove_leftovers(plan.output)
        with pending_file(plan.output / ARCHIVE_NAME) as pending:
            with (
                progress_bar(console, "saving", estimate) as advance,
                # by id: the image inspected for the plan, even if a tag moves meanwhile
                engine.saved_stream([i.info.id for i in plan.images]) as stream,
            ):
                written, saved = compress_to(
                    stream, pending.temp, plan.level,
                    lambda src, dst: filter_saved_tar(src, dst, plan.omit), advance,
                )  # fmt: skip
            check_saved(plan, saved)
            manifest = build_manifest(plan, saved, written)
            install_bundle(plan.output, old, [pending], manifest, render_loader(manifest))
    return manifest


def cmd_save(args: argparse.Namespace) -> int:
    console = err_console()
    _need_zstd()
    plan = plan_save(selected_refs(args), args.output, args.since, args.level)
    print_save_plan(plan, console)
    if args.dry_run:
        console.print("dry run: nothing was saved")
        return EXIT_OK
    if engine.daemon_storage().containerd_store:
        raise UsageError(*CONTAINERD_PROBLEM)
    started = time.monotonic()
    manifest = save_bundle(plan, console)
    archive = manifest.archives[0]
    seconds = time.monotonic() - started
    console.print(
        f"saved {manifest.kind} bundle {plan.output}: {_size(archive.bytes)} compressed "
        f"({_size(archive.tar_bytes)} tar) in {seconds:.0f}s; on the server: "
        f"`python build.py load {plan.output}` or `sh {plan.output / LOADER_NAME}`"
    )
    if args.json:
        print(manifest_to_json(manifest), end="")
    return EXIT_OK


def selected_refs(args: argparse.Namespace) -> tuple[str, ...]:
    """--image refs plus the selection's images (`<repository>:<tag>`)."""
    from bakery.cli import load_selected  # noqa: PLC0415 - cli imports this module

    refs = list(args.image)
    chosen = any((args.target, args.torch, args.python, args.flavour, args.variant))
    if not chosen and not refs:
        raise UsageError(
            "no image selected",
            fix="name them with --target/--torch/--python/--flavour/--variant, or --image REF",
        )
    if chosen:
        _, variants = load_selected(args)
        refs += [f"{args.repository or v.project.repository}:{v.tag}" for v in variants]
    return tuple(dict.fromkeys(refs))


# ---------------------------------------------------------------------------------------------
# load: verify without Docker, check the daemon, load, check ids, tag, probe


def check_size(path: Path, archive: Archive) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BundleError(
            f"{path} is missing",
            f"the bundle's {MANIFEST_NAME} names it",
            "copy the whole bundle directory again",
        ) from None
    if size < archive.bytes:
        raise BundleError(
            f"{path} is truncated: {size} of {archive.bytes} bytes",
            "the copy or the save was interrupted",
            "copy the bundle directory again",
        )
    if size > archive.bytes:
        raise BundleError(
            f"{path} has {size} bytes, its manifest says {archive.bytes}",
            f"it is not the archive this {MANIFEST_NAME} was written for",
            "copy the bundle directory again, all files together",
        )


def verify_archive(path: Path, archive: Archive, advance: Callable[[int], None]) -> TarScan:
    """One read of the file: its sha256, and a scan of the tar inside (through `zstd -d`).

    The checksum verdict wins: a damaged file is reported as damaged even when the damage
    also broke decompression.
    """
    zstd = _zstd(["-d", "-c"], subprocess.PIPE)
    digest = hashlib.sha256()
    worker = _Worker(lambda: _feed_hashing(path, zstd, digest, advance))
    worker.start()
    scan: TarScan | None = None
    failure = ""
    try:
        if zstd.stdout is None:  # cannot happen with PIPE; keeps types honest
            raise BakeryError("zstd started without pipes")
        scan = scan_saved_tar(zstd.stdout)  # reads to the end: zstd finishes
    except (tarfile.TarError, ValueError, EOFError) as exc:
        failure = str(exc) or type(exc).__name__
    finally:
        if scan is None:
            _stop(zstd)
        worker.result()
    code = zstd.wait()
    if digest.hexdigest() != archive.sha256:
        raise BundleError(
            f"{path} is corrupt: its sha256 differs from {MANIFEST_NAME}",
            f"expected {archive.sha256}, found {digest.hexdigest()}; the file was damaged on the way",
            "copy it again (and compare `sha256sum` on both machines)",
        )
    if scan is None or code != 0:
        stderr = zstd.stderr.read().decode(errors="replace") if zstd.stderr else ""
        raise BundleError(
            f"{path} cannot be read although its checksum matches",
            failure or engine.tail_lines(stderr, 2),
            "save the bundle again with `python build.py save`",
        )
    return scan


def _feed_hashing(
    path: Path, zstd: subprocess.Popen[bytes], digest: Any, advance: Callable[[int], None]
) -> None:
    """Read `path` once: hash everything, pass it to zstd for as long as zstd takes it."""
    sink = zstd.stdin
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            advance(len(chunk))
            if sink is not None:
                try:
                    sink.write(chunk)
                except (BrokenPipeError, ValueError):  # zstd stopped: keep hashing
                    sink = None
    if sink is not None:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


def verify_bundle(bundle: Bundle, console: Console) -> None:
    """Everything that can be checked without Docker; BundleError on the first problem."""
    for archive in bundle.manifest.archives:
        path = bundle.path(archive)
        check_size(path, archive)
        with progress_bar(console, "verifying", archive.bytes) as advance:
            scan = verify_archive(path, archive, advance)
        problems = archive_problems(bundle.manifest, archive, scan)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise BundleError(
                f"{path} does not match {bundle.manifest_path}",
                "; ".join(problems[:3]) + more,
                "the manifest belongs to another bundle or was edited: copy the bundle directory again",
            )


def space_needed(manifest: Manifest) -> int:
    """docker load first unpacks the whole tar in the data root, then applies each layer."""
    return 2 * sum(a.tar_bytes for a in manifest.archives) + LOAD_MARGIN


def check_free_space(manifest: Manifest, storage: engine.DaemonStorage, console: Console) -> None:
    root = Path(storage.root_dir)
    if not root.is_dir():
        console.print(
            f"[yellow]warning:[/] cannot check free space: the daemon's data root {root} is not on this machine"
        )
        return
    free = shutil.disk_usage(root).free
    need = space_needed(manifest)
    if free < need:
        raise BakeryError(
            f"not enough free space for the load in {root}: {_size(free)} free, about {_size(need)} needed",
            "docker load unpacks the archive before applying its layers",
            "free some space (e.g. `docker image prune`) and load again",
        )


def local_chains() -> set[str]:
    return {chain for layers in engine.image_layer_lists() for chain in chain_ids(layers)}


def missing_layers(manifest: Manifest, have: set[str]) -> list[tuple[BundleImage, int, Layer]]:
    return [
        (i, n, layer) for i, n, layer in manifest.required_layers() if layer.chain_id not in have
    ]


def missing_layers_error(
    bundle: Bundle, missing: Sequence[tuple[BundleImage, int, Layer]]
) -> BundleError:
    lines = [
        f"  layer {n + 1}/{len(image.layers)} of {image.ref} (chain {layer.chain_id}, diff {layer.diff_id})"
        for image, n, layer in missing
    ]
    since = bundle.manifest.since or {}
    bases = ", ".join(f"{i.get('ref')} ({str(i.get('id'))[:19]})" for i in since.get("images", []))
    return BundleError(
        f"delta bundle {bundle.directory} needs {len(missing)} base layer(s) this daemon does not have:\n"
        + "\n".join(lines),
        f"a delta leaves out the layers of the bundle it was made against ({bases or 'unknown'}, saved {since.get('created', '?')})",
        "load that bundle first, or carry a full bundle (`python build.py save` without --since)",
    )


def check_daemon(bundle: Bundle, console: Console) -> None:
    storage = engine.daemon_storage()
    if storage.containerd_store:
        raise UsageError(*CONTAINERD_PROBLEM)
    check_free_space(bundle.manifest, storage, console)
    if bundle.manifest.kind == "delta":
        missing = missing_layers(bundle.manifest, local_chains())
        if missing:
            raise missing_layers_error(bundle, missing)


def _feed_file(path: Path, sink: IO[bytes] | None, advance: Callable[[int], None]) -> None:
    if sink is None:
        return
    try:
        with path.open("rb") as source:
            while chunk := source.read(CHUNK):
                sink.write(chunk)
                advance(len(chunk))
    except BrokenPipeError:
        return  # the reader stopped; its own error is the one to report
    finally:
        with contextlib.suppress(BrokenPipeError):
            sink.close()


def docker_load(path: Path, advance: Callable[[int], None]) -> engine.LoadOutcome:
    """Stream `path` through `zstd -d` into `docker load`."""
    zstd = _zstd(["-d", "-c"], subprocess.PIPE)
    worker = _Worker(lambda: _feed_file(path, zstd.stdin, advance))
    worker.start()
    try:
        if zstd.stdout is None:  # cannot happen with PIPE; keeps types honest
            raise BakeryError("zstd started without pipes")
        outcome = engine.load_images(zstd.stdout)
    except BaseException:
        _stop(zstd)
        worker.join(timeout=STOP_SECONDS)
        raise
    finally:
        if zstd.stdout is not None:
            zstd.stdout.close()
    worker.result()
    zstd.wait()  # docker load succeeded: what zstd thinks of a closed pipe no longer matters
    return outcome


def load_bundle(bundle: Bundle, console: Console) -> list[BundleImage]:
    """docker load, then check that every image id arrived, then tag. Returns the images."""
    images = bundle.manifest.images
    before = {i.id for i in images if engine.inspect_image(i.id) is not None}
    for archive in bundle.manifest.archives:
        with progress_bar(console, "loading", archive.bytes) as advance:
            docker_load(bundle.path(archive), advance)
    absent = [i for i in images if engine.inspect_image(i.id) is None]
    if absent:
        for image in images:
            if image.id not in before:
                engine.remove_image(image.id)
        raise BundleError(
            f"docker load finished but {', '.join(f'{i.ref} ({i.id})' for i in absent)} is not on the daemon",
            f"the archive does not hold what {bundle.manifest_path} says; nothing was tagged",
            "save the bundle again",
        )
    for image in images:
        for tag in image.tags:
            engine.tag_image(image.id, tag)
    return list(images)


@dataclass(frozen=True)
class ProbeVerdict:
    verdict: str  # ok, no-gpu, ..., or "probe-failed"
    hint: str

    @property
    def good(self) -> bool:
        return self.verdict in ("ok", "no-gpu")


def has_probe(image: BundleImage) -> bool:
    """bakery images carry bakery-probe; a slim one gets its torch from the host at run time."""
    return "variant" in image.components and image.components.get("flavour") != "slim"


def probe_image(image: BundleImage) -> ProbeVerdict | None:
    """Run bakery-probe in the image with the host's GPU; None when there is nothing to probe."""
    from bakery import devbox  # noqa: PLC0415 - the one implementation of the GPU flags

    if not has_probe(image):
        return None
    env = dict(item.partition("=")[::2] for item in image.config.env)
    access = devbox.gpu_access(env.get("BAKERY_ACCELERATOR", "cpu"))
    extra: dict[str, Any] = {"security_options": list(access.security_options)}
    if access.gpus:
        extra["gpus"] = access.gpus
    result = engine.run_container(
        image.id, ["bakery-probe"], network="none", devices=access.devices,
        group_add=access.group_add, timeout=PROBE_TIMEOUT, extra=extra,
    )  # fmt: skip
    try:
        report = json.loads(result.stdout)
        return ProbeVerdict(str(report["verdict"]), str(report.get("hint", "")))
    except (ValueError, KeyError, TypeError):
        tail = engine.tail_lines(result.stderr or result.stdout, 2)
        return ProbeVerdict("probe-failed", f"exit {result.return_code}: {tail}")


def cmd_load(args: argparse.Namespace) -> int:
    console = err_console()
    _need_zstd()
    bundle = read_bundle(args.bundle)
    if bundle.manifest.kind == "export":
        raise UsageError(
            f"{bundle.directory} is an export (one flattened layer per image), not a saved bundle",
            fix=f"use `python build.py import {bundle.directory}`",
        )
    started = time.monotonic()
    verify_bundle(bundle, console)
    check_daemon(bundle, console)
    images = load_bundle(bundle, console)
    console.print(
        f"loaded {bundle.manifest.kind} bundle {bundle.directory} in {time.monotonic() - started:.0f}s"
    )
    verdicts = {i.id: probe_image(i) for i in images} if args.probe else {}
    for image in images:
        verdict = verdicts.get(image.id)
        shown = "not run" if verdict is None else f"{verdict.verdict} — {verdict.hint}"
        console.print(f"  {', '.join(image.tags)}  {image.id[:19]}  probe: {shown}")
    if args.json:
        records = [
            {
                "tags": list(i.tags),
                "id": i.id,
                "probe": verdicts[i.id].__dict__ if verdicts.get(i.id) else None,
            }
            for i in images
        ]
        print(json.dumps({"bundle": str(bundle.directory), "images": records}, indent=2))
    bad = [v for v in verdicts.values() if v is not None and not v.good]
    return EXIT_FAILED if bad else EXIT_OK


# ---------------------------------------------------------------------------------------------
# export / import: one flattened layer, the config carried in the manifest


def archive_name_for(ref: str, taken: set[str]) -> str:
    """A file name for an image's export: its last path part, made safe, unique in the bundle."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", ref.rsplit("/", 1)[-1]).strip("._") or "image"
    name, n = f"{stem}.rootfs.tar.zst", 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}.rootfs.tar.zst"
    taken.add(name)
    return name


def export_image(
    image: PlannedImage, pending: PendingFile, level: int, console: Console
) -> Written:
    with (
        progress_bar(console, f"exporting {image.ref}", image.info.size) as advance,
        engine.exported_stream(image.info.id) as stream,
    ):
        written, _ = compress_to(stream, pending.temp, level, copy_stream, advance)
    return written


def export_bundle(
    images: Sequence[PlannedImage], output: Path, level: int, console: Console
) -> Manifest:
    taken: set[str] = set()
    names = [archive_name_for(i.ref, taken) for i in images]
    with _writing(output), contextlib.ExitStack() as stack:
        old = check_output(output, [*names, MANIFEST_NAME])
        output.mkdir(parents=True, exist_ok=True)
        remove_leftovers(output)
        pending = [stack.enter_context(pending_file(output / name)) for name in names]
        written = [export_image(i, p, level, console) for i, p in zip(images, pending, strict=True)]
        manifest = Manifest(
            kind="export", bakery_version=__version__,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            archives=tuple(Archive(n, w.sha256, w.bytes, w.tar_bytes) for n, w in zip(names, written, strict=True)),
            images=tuple(bundle_image(i, n, {}, frozenset()) for i, n in zip(images, names, strict=True)),
        )  # fmt: skip
        install_bundle(output, old, pending, manifest, None)
    return manifest


def cmd_export(args: argparse.Namespace) -> int:
    console = err_console()
    _need_zstd()
    if not 1 <= args.level <= 19:
        raise UsageError(f"--level {args.level} is not a zstd level", fix="use 1 to 19; default 3")
    images = plan_images(selected_refs(args))
    manifest = export_bundle(images, args.output, args.level, console)
    for image in manifest.images:
        archive = manifest.archive(image.archive)
        console.print(
            f"exported {image.ref} -> {args.output / archive.file} ({_size(archive.bytes)})"
        )
    console.print(f"on the server: `python build.py import {args.output}`")
    return EXIT_OK


def _dockerfile_string(value: str) -> str:
    """A double-quoted Dockerfile word: no variable expansion, no escapes lost."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def config_changes(config: ImageConfig) -> list[str]:
    """`docker import --change` instructions that give an imported image `config` back.

    ENV replaces the whole list (an imported image has none, not even PATH); ENTRYPOINT comes
    before CMD because setting an entrypoint clears an inherited CMD.
    """
    changes = []
    for item in config.env:
        key, _, value = item.partition("=")
        changes.append(f"ENV {key}={_dockerfile_string(value)}")
    if config.entrypoint is not None:
        changes.append(f"ENTRYPOINT {json.dumps(list(config.entrypoint))}")
    if config.cmd is not None:
        changes.append(f"CMD {json.dumps(list(config.cmd))}")
    if config.workdir:
        changes.append("WORKDIR " + config.workdir.replace("$", "\\$"))
    if config.user:
        changes.append(f"USER {config.user}")
    for key, value in sorted(config.labels.items()):
        changes.append(f"LABEL {_dockerfile_string(key)}={_dockerfile_string(value)}")
    return changes


def config_problems(want: ImageConfig, got: engine.ImageInfo) -> list[str]:
    """What the imported image's config lacks compared to the manifest."""
    checks = [
        ("ENV", dict(item.partition("=")[::2] for item in want.env), dict(got.env)),
        ("ENTRYPOINT", want.entrypoint, got.entrypoint),
        ("CMD", want.cmd, got.cmd),
        ("WORKDIR", want.workdir, got.workdir),
        ("USER", want.user, got.user),
        ("LABEL", dict(want.labels), dict(got.labels)),
    ]
    return [
        f"{name} is {found!r}, expected {expected!r}"
        for name, expected, found in checks
        if expected != found
    ]


def _export_bundle_of(source: Path) -> tuple[Bundle, str | None] | None:
    """(bundle, archive file or None for all) when `source` belongs to an export bundle."""
    if source.is_dir() or source.suffix == ".json":
        return read_bundle(source), None
    sibling = source.parent / MANIFEST_NAME
    if not sibling.is_file():
        return None
    bundle = read_bundle(sibling)
    if source.name not in {a.file for a in bundle.manifest.archives}:
        return None
    return bundle, source.name


def import_plain(source: Path, tag: str | None, console: Console) -> str:
    if not source.is_file():
        raise UsageError(
            f"{source} does not exist", fix="pass an export bundle directory or a tar file"
        )
    if not tag:
        raise UsageError(
            f"{source} has no bakery manifest, so it names no image",
            fix="give the new image's name: --tag NAME:TAG",
        )
    console.print(
        f"[yellow]warning:[/] {source} has no bakery {MANIFEST_NAME}: the imported image gets no ENV "
        "(not even PATH), CMD, ENTRYPOINT, WORKDIR, USER or labels, and `docker run` without a "
        "command fails with 'No command specified' — export with `python build.py export` to keep them"
    )
    return engine.import_rootfs(
        source, tag, [], message=f"bakery import of {source.name} (no manifest)"
    )


def import_image(bundle: Bundle, image: BundleImage, tag: str | None, console: Console) -> str:
    archive = bundle.manifest.archive(image.archive)
    path = bundle.path(archive)
    check_size(path, archive)
    with progress_bar(console, "verifying", archive.bytes) as advance:
        digest = _sha256_file(path, advance)
    if digest != archive.sha256:
        raise BundleError(
            f"{path} is corrupt: its sha256 differs from {MANIFEST_NAME}",
            f"expected {archive.sha256}, found {digest}",
            "copy it again",
        )
    tags = (tag,) if tag else image.tags
    message = f"bakery import of {image.ref} ({image.id})"
    new_id = engine.import_rootfs(path, tags[0], config_changes(image.config), message=message)
    for extra in tags[1:]:
        engine.tag_image(new_id, extra)
    info = engine.inspect_image(new_id)
    problems = ["the image is gone"] if info is None else config_problems(image.config, info)
    if problems:
        raise BundleError(
            f"imported {tags[0]} but its config differs from the manifest", "; ".join(problems)
        )
    return new_id


def _sha256_file(path: Path, advance: Callable[[int], None]) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            advance(len(chunk))
    return digest.hexdigest()


def cmd_import(args: argparse.Namespace) -> int:
    console = err_console()
    found = _export_bundle_of(args.source)
    if found is None:
        new_id = import_plain(args.source, args.tag, console)
        console.print(f"imported {args.source} as {args.tag} ({new_id[:19]}) without its config")
        return EXIT_OK
    bundle, only = found
    if bundle.manifest.kind != "export":
        raise UsageError(
            f"{bundle.directory} is a saved bundle, not an export",
            fix=f"use `python build.py load {bundle.directory}` (it keeps layers and config)",
        )
    images = [i for i in bundle.manifest.images if only is None or i.archive == only]
    if args.tag and len(images) > 1:
        raise UsageError(f"--tag names one image, {bundle.directory} holds {len(images)}")
    for image in images:
        new_id = import_image(bundle, image, args.tag, console)
        shown = args.tag or ", ".join(image.tags)
        console.print(
            f"imported {shown} ({new_id[:19]}): ENV, ENTRYPOINT, CMD, WORKDIR, USER and "
            f"{len(image.config.labels)} labels restored from {bundle.manifest_path}"
        )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# load.sh: the same checks and steps for servers without bakery (docker, zstd, coreutils)

LOADER_TEMPLATE = r"""#!/bin/sh
# Loads this bakery bundle into the local Docker daemon (or $DOCKER_HOST), without bakery.
# Needs only docker, zstd and coreutils.        Usage: sh load.sh [--no-probe]
# Written by bakery @VERSION@ with @ARCHIVE@ and manifest.json; `python build.py load DIR`
# does the same. Order: check the bundle, then the daemon, load untagged, check ids, tag, probe.
set -eu

ARCHIVE=@ARCHIVE@
ARCHIVE_SHA256=@SHA256@
ARCHIVE_BYTES=@BYTES@
NEED_BYTES=@NEED@
KIND="@KIND@"
SINCE=@SINCE@
# image id, then one tag it gets (a line per tag)
IMAGES=@IMAGES@
# layers a delta leaves out: chain id, then which layer it is
REQUIRED=@REQUIRED@
# images that carry bakery-probe: image id, then the accelerator
PROBES=@PROBES@

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*" >&2; }

cd "$(dirname "$0")"
here=$(pwd)
probe=yes
if [ "${1:-}" = "--no-probe" ]; then probe=no; fi
command -v docker >/dev/null 2>&1 || die "docker is not installed — load.sh loads images into a Docker daemon — install Docker"
command -v zstd >/dev/null 2>&1 || die "zstd is not installed — the archive is zstd-compressed — install it (apt-get install zstd)"

# 1. The bundle, before Docker is touched.
[ -f manifest.json ] || die "$here is not a complete bundle: manifest.json is missing — the save did not finish or the copy is incomplete — copy the whole directory again"
[ -f "$ARCHIVE" ] || die "$here/$ARCHIVE is missing — manifest.json names it — copy the whole directory again"
case "$(cat manifest.json)" in
  *"\"sha256\": \"$ARCHIVE_SHA256\""*) ;;
  *) die "$here/manifest.json does not belong to $ARCHIVE — it names another archive — copy the bundle directory again, all files together" ;;
esac
size=$(stat -c %s "$ARCHIVE")
[ "$size" -ge "$ARCHIVE_BYTES" ] || die "$here/$ARCHIVE is truncated: $size of $ARCHIVE_BYTES bytes — the copy or the save was interrupted — copy the bundle directory again"
[ "$size" -eq "$ARCHIVE_BYTES" ] || die "$here/$ARCHIVE has $size bytes, manifest.json says $ARCHIVE_BYTES — it is not this bundle's archive — copy the bundle directory again"
say "checking the sha256 of $ARCHIVE ..."
printf '%s  %s\n' "$ARCHIVE_SHA256" "$ARCHIVE" | sha256sum --check --status - \
  || die "$here/$ARCHIVE is corrupt: its sha256 differs from manifest.json — the file was damaged on the way — copy it again"

# 2. The daemon: image store, free space, and for a delta the base layers.
status=$(docker info --format '{{json .DriverStatus}}') || die "no Docker daemon answers — start it, or set DOCKER_HOST"
case "$status" in
  *io.containerd.snapshotter*) die "the daemon uses the containerd image store — bundles are verified on the classic store only — turn the containerd-snapshotter feature off, or use export/import" ;;
esac
root=$(docker info --format '{{.DockerRootDir}}')
if [ -d "$root" ]; then
  free=$(df -B1 --output=avail "$root" | tail -n 1 | tr -d ' ')
  [ "$free" -ge "$NEED_BYTES" ] || die "not enough free space for the load in $root: $free bytes free, about $NEED_BYTES needed — docker load unpacks the archive before applying its layers — free some space (docker image prune) and run again"
else
  say "warning: cannot check free space: the daemon's data root $root is not on this machine"
fi

local_chains() {
  ids=$(docker image ls --all --quiet --no-trunc | sort -u)
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086  # one argument per image id
  docker image inspect --format '{{range .RootFS.Layers}}{{.}} {{end}}' $ids | while read -r layers; do
    chain=""
    for diff in $layers; do
      if [ -z "$chain" ]; then
        chain=$diff
      else
        chain="sha256:$(printf '%s %s' "$chain" "$diff" | sha256sum | cut -d ' ' -f 1)"
      fi
      echo "$chain"
    done
  done
}

if [ -n "$REQUIRED" ]; then
  have=$(local_chains)
  missing=""
  while read -r chain what; do
    [ -n "$chain" ] || continue
    case "$have" in
      *"$chain"*) ;;
      *) missing="$missing
  $what (chain $chain)" ;;
    esac
  done <<EOF
$REQUIRED
EOF
  [ -z "$missing" ] || die "delta bundle $here needs base layers this daemon does not have:$missing
— a delta leaves out the layers of the bundle it was made against ($SINCE) — load that bundle first, or carry a full bundle"
fi

# 3. Load without tags, check every image id, then tag.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "loading $ARCHIVE ($KIND bundle) ..."
if ! { zstd -dcq -- "$ARCHIVE" || echo failed > "$tmp/zstd"; } | docker load > "$tmp/out" 2> "$tmp/err"; then
  die "docker load failed: $(tail -n 3 "$tmp/err") — nothing was tagged — check the daemon's log"
fi
[ ! -e "$tmp/zstd" ] || die "zstd could not decompress $here/$ARCHIVE — nothing was tagged — copy the bundle again"
while read -r id _; do
  [ -n "$id" ] || continue
  docker image inspect "$id" > /dev/null 2>&1 \
    || die "docker load finished but image $id is not on the daemon — the archive does not hold what manifest.json says; nothing was tagged — save the bundle again"
done <<EOF
$IMAGES
EOF
while read -r id tag; do
  [ -n "$id" ] && [ -n "$tag" ] || continue
  docker tag "$id" "$tag"
  say "loaded $tag ($id)"
done <<EOF
$IMAGES
EOF

# 4. The probe: which torch build, which GPUs, and why not.
[ "$probe" = yes ] || exit 0
json_value() { v=${1#*: }; v=${v%,}; v=${v#\"}; printf '%s' "${v%\"}"; }
verdict_of() {
  verdict="" hint=""
  while IFS= read -r line; do
    case "$line" in
      '  "verdict": '*) verdict=$(json_value "$line") ;;
      '  "hint": '*) hint=$(json_value "$line") ;;
    esac
  done <<EOF
$1
EOF
  [ -z "$verdict" ] || printf '%s — %s' "$verdict" "$hint"
}
bad=0
while read -r id accelerator; do
  [ -n "$id" ] || continue
  set --
  if [ "$accelerator" = rocm ] && [ -e /dev/kfd ]; then
    set -- --device /dev/kfd --security-opt seccomp=unconfined
    [ ! -d /dev/dri ] || set -- "$@" --device /dev/dri
    for node in /dev/kfd /dev/dri/renderD*; do
      [ -e "$node" ] || continue
      gid=$(stat -c %g "$node")
      case " $* " in *" --group-add $gid "*) ;; *) [ "$gid" = 0 ] || set -- "$@" --group-add "$gid" ;; esac
    done
  elif [ "$accelerator" = cuda ] && [ -e /dev/nvidiactl ]; then
    set -- --gpus all
  fi
  out=$(docker run --rm --network none "$@" "$id" bakery-probe 2>&1) || true
  result=$(verdict_of "$out")
  case "$result" in
    "") say "probe $id: probe-failed — $(printf '%s' "$out" | tail -n 2)"; bad=1 ;;
    "ok — "*|"no-gpu — "*) say "probe $id: $result" ;;
    *) say "probe $id: $result"; bad=1 ;;
  esac
done <<EOF
$PROBES
EOF
exit "$bad"
"""


def _shell_lines(rows: Sequence[Sequence[str]]) -> str:
    return shlex.quote("\n".join(" ".join(row) for row in rows))


def render_loader(manifest: Manifest) -> str:
    """load.sh for a saved bundle: its facts embedded, the logic in LOADER_TEMPLATE."""
    archive = manifest.archives[0]
    since = manifest.since or {}
    bases = ", ".join(f"{i.get('ref')} {str(i.get('id'))[:19]}" for i in since.get("images", []))
    env = {i.id: dict(e.partition("=")[::2] for e in i.config.env) for i in manifest.images}
    values = {
        "@VERSION@": __version__,
        "@ARCHIVE@": shlex.quote(archive.file),
        "@SHA256@": archive.sha256,
        "@BYTES@": str(archive.bytes),
        "@NEED@": str(space_needed(manifest)),
        "@KIND@": manifest.kind,
        "@SINCE@": shlex.quote(f"{bases}, saved {since.get('created', '?')}" if since else ""),
        "@IMAGES@": _shell_lines([(i.id, t) for i in manifest.images for t in i.tags or ("",)]),
        "@REQUIRED@": _shell_lines(
            [
                (layer.chain_id, f"layer {n + 1}/{len(i.layers)} of {i.ref}")
                for i, n, layer in manifest.required_layers()
            ]
        ),
        "@PROBES@": _shell_lines(
            [
                (i.id, env[i.id].get("BAKERY_ACCELERATOR", "cpu"))
                for i in manifest.images
                if has_probe(i)
            ]
        ),
    }
    text = LOADER_TEMPLATE
    for token, value in values.items():
        text = text.replace(token, value)
    return text


# ---------------------------------------------------------------------------------------------
# Command line

SAVE_DESCRIPTION = """\
Write the selected images into one bundle directory for an offline server:
images.tar.zst (all images, shared layers once, zstd), manifest.json (images, tags, ids, layer
chains, versions, sizes, sha256) and load.sh (loads it with only docker, zstd and coreutils).

  python build.py save --target cpu -o /media/usb/bundle-1
  python build.py save --target cpu -o /media/usb/bundle-2 --since /media/usb/bundle-1

--since OLD writes a delta: the layers the server already has from OLD are left out, so a
training-code change ships megabytes. Everything is written atomically, manifest last.
"""
LOAD_DESCRIPTION = """\
Load a bundle written by `save`: check the manifest and the archive's sha256 and contents
before Docker is touched, then the free space and (for a delta) the base layers, load, check
the image ids, tag, and run bakery-probe in each image. A damaged, truncated or mismatched
bundle is refused and nothing is loaded.
"""
EXPORT_DESCRIPTION = """\
Flatten each selected image into one layer (`docker export` of a never-started container),
zstd-compressed, beside a manifest.json with the image's config. Prefer `save`: an export
loses layer sharing and history. `import` restores ENV, ENTRYPOINT, CMD, WORKDIR, USER and
labels from the manifest.
"""
IMPORT_DESCRIPTION = """\
`docker import` an export with its config restored from the manifest (ENV, ENTRYPOINT, CMD,
WORKDIR, USER, labels). SOURCE is an export directory, its manifest.json or one of its
archives. A tar without a manifest is imported with a warning (it gets no config) and needs
--tag.
"""


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, help="the bundle directory to write")
    p.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="REF",
        help="an image to include (repeatable); with or instead of the selection",
    )
    p.add_argument("--repository", default=None, help="override the matrix's repository")
    p.add_argument(
        "--level", type=int, default=DEFAULT_LEVEL, help=f"zstd level (default {DEFAULT_LEVEL})"
    )


if TYPE_CHECKING:  # subscripting the class fails at run time
    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _parser(
    sub: SubParsers, name: str, parents: list[argparse.ArgumentParser], summary: str, text: str
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        parents=parents,
        help=summary,
        description=text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def register(
    sub: SubParsers, common: argparse.ArgumentParser, selection: argparse.ArgumentParser
) -> None:
    """Add `save`, `load`, `export` and `import`."""
    # fmt: off
    save = _parser(sub, "save", [common, selection], "write a bundle for offline servers", SAVE_DESCRIPTION)
    _add_output_arguments(save)
    save.add_argument("--since", type=Path, default=None, metavar="OLD", help="write a delta against this bundle (directory or manifest.json)")
    save.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    save.add_argument("--json", action="store_true", help="print the manifest on stdout")
    save.set_defaults(handler=cmd_save)
    load = _parser(sub, "load", [common], "verify and load a bundle", LOAD_DESCRIPTION)
    load.add_argument("bundle", type=Path, metavar="BUNDLE", help="the bundle directory (or its manifest.json)")
    load.add_argument("--no-probe", dest="probe", action="store_false", help="do not run bakery-probe after loading")
    load.add_argument("--json", action="store_true", help="print the result on stdout")
    load.set_defaults(handler=cmd_load)
    export = _parser(sub, "export", [common, selection], "flatten images for docker import", EXPORT_DESCRIPTION)
    _add_output_arguments(export)
    export.set_defaults(handler=cmd_export)
    imp = _parser(sub, "import", [common], "docker import an export with its config", IMPORT_DESCRIPTION)
    imp.add_argument("source", type=Path, metavar="SOURCE", help="export directory, its manifest.json, or a tar")
    imp.add_argument("--tag", default=None, help="the image name (needed for a tar without manifest)")
    imp.set_defaults(handler=cmd_import)
    # fmt: on
