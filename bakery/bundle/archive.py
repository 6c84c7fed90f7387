"""The archive inside a bundle: `docker save`'s tar, filtered on save and scanned on load.

Save leaves out the blobs a delta omits and every tag. Load verifies the archive without Docker:
its size and sha256, and that it holds exactly the images and layers the manifest names (no
other member, no link or device, no path outside the archive, every blob's content equal to its
digest, the tar's size equal to tar_bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bakery import engine
from bakery.bundle.manifest import MANIFEST_NAME, Archive, BundleImage, Manifest
from bakery.bundle.streams import CHUNK, CountingReader, Worker, stop_process, zstd_process
from bakery.errors import BakeryError, BundleError

SMALL_MEMBER = 1 << 20  # tar members up to this size are hashed while scanning (configs, JSON)


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
    zstd = zstd_process(["-d", "-c"], subprocess.PIPE)
    digest = hashlib.sha256()
    worker = Worker(lambda: _feed_hashing(path, zstd, digest, advance))
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
            stop_process(zstd)
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
