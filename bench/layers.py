"""Read an image's layers from a `docker save` stream: what each layer holds, what survives.

Used by the waste benchmark. The stream is read once, sequentially (no temporary copy of a
multi-GB image): every blob that is a tar is listed as a layer (path, size, content hash of
files >= HASH_MIN), `manifest.json` gives the layer order, and the layers are then applied in
order with the OCI whiteout rules (`.wh.<name>` deletes a path of a lower layer,
`.wh..wh..opq` empties a directory of lower-layer content) to get the final filesystem.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO

HASH_MIN = 64 * 1024  # smaller files are not hashed: duplicates of them are noise
SMALL_BLOB = 1 << 20  # blobs up to this size are read into memory (configs, JSON, tiny layers)
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Entry:
    path: str  # normalised: no leading "./" or "/"
    size: int  # regular files only; 0 for directories, links, whiteouts
    digest: str = ""  # sha256 of the content for regular files >= HASH_MIN, else ""
    is_dir: bool = False
    layer: int = 0  # index of the layer that stored it, bottom = 0 (set by apply_layers)


@dataclass
class Layer:
    entries: list[Entry] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass(frozen=True)
class Filesystem:
    """The image's final files (path -> Entry) and what its layers stored in total."""

    files: Mapping[str, Entry]
    layer_bytes: tuple[int, ...]  # file bytes stored in each layer, bottom first
    hidden: tuple[Entry, ...] = ()  # lower-layer files deleted or replaced by an upper layer

    @property
    def stored(self) -> int:
        return sum(self.layer_bytes)

    @property
    def visible(self) -> int:
        return sum(e.size for e in self.files.values())

    @property
    def shadowed(self) -> int:
        """Bytes stored in lower layers but deleted or replaced by upper ones."""
        return self.stored - self.visible

    def shadowed_from(self, layer: int) -> int:
        """Shadowed bytes that layers `layer` and above stored (e.g. above the base image)."""
        return sum(e.size for e in self.hidden if e.layer >= layer)

    def top_hidden(self, n: int = 5, from_layer: int = 0) -> list[tuple[str, int]]:
        """The biggest shadowed paths (a path replaced twice is counted per copy)."""
        totals: dict[str, int] = defaultdict(int)
        for e in self.hidden:
            if e.layer >= from_layer:
                totals[e.path] += e.size
        return sorted(totals.items(), key=lambda kv: -kv[1])[:n]

    def under(self, prefixes: Iterable[str]) -> int:
        wanted = tuple(p.strip("/") + "/" for p in prefixes)
        return sum(e.size for p, e in self.files.items() if (p + "/").startswith(wanted))

    def matching(self, predicate: str) -> int:
        """Bytes of files whose path contains `predicate` (e.g. "/site-packages/")."""
        return sum(e.size for p, e in self.files.items() if predicate in "/" + p)

    def duplicate_bytes(self) -> tuple[int, int]:
        """(extra bytes, files) of identical content stored under more than one path."""
        groups: dict[str, list[Entry]] = defaultdict(list)
        for entry in self.files.values():
            if entry.digest:
                groups[entry.digest].append(entry)
        extra = sum(g[0].size * (len(g) - 1) for g in groups.values() if len(g) > 1)
        count = sum(len(g) - 1 for g in groups.values() if len(g) > 1)
        return extra, count


def normalise(name: str) -> str:
    name = name.removeprefix("./").lstrip("/")
    return name.rstrip("/")


def read_layer(stream: IO[bytes]) -> Layer:
    layer = Layer()
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            path = normalise(member.name)
            if not path:
                continue
            if member.isreg():
                digest = ""
                if member.size >= HASH_MIN:
                    h = hashlib.sha256()
                    source = tar.extractfile(member)
                    if source is not None:
                        while chunk := source.read(1 << 20):
                            h.update(chunk)
                    digest = h.hexdigest()
                layer.entries.append(Entry(path, member.size, digest))
            else:
                layer.entries.append(Entry(path, 0, is_dir=member.isdir()))
    return layer


def _delete(files: dict[str, Entry], path: str, hidden: list[Entry]) -> None:
    """Remove `path` and, if it is (or may be) a directory, everything under it."""
    entry = files.pop(path, None)
    if entry is not None:
        hidden.append(entry)
    if entry is None or entry.is_dir:
        prefix = path + "/"
        for name in [p for p in files if p.startswith(prefix)]:
            hidden.append(files.pop(name))


def apply_layers(layers: Sequence[Layer]) -> Filesystem:
    """Stack the layers bottom first; whiteouts of a layer apply to the layers below it only."""
    files: dict[str, Entry] = {}
    hidden: list[Entry] = []
    for index, layer in enumerate(layers):
        for entry in layer.entries:
            head, _, base = entry.path.rpartition("/")
            if base == OPAQUE:
                prefix = head + "/" if head else ""
                for name in [p for p in files if p.startswith(prefix)]:
                    hidden.append(files.pop(name))
            elif base.startswith(WHITEOUT):
                _delete(files, (head + "/" if head else "") + base.removeprefix(WHITEOUT), hidden)
        for entry in layer.entries:
            if not entry.path.rpartition("/")[2].startswith(WHITEOUT):
                replaced = files.get(entry.path)
                if replaced is not None and replaced.size:
                    hidden.append(replaced)
                files[entry.path] = replace(entry, layer=index)
    hidden = [e for e in hidden if e.size]
    return Filesystem(files, tuple(layer.bytes for layer in layers), tuple(hidden))


def read_saved(stream: IO[bytes]) -> Filesystem:
    """A whole `docker save` tar (one image) from a stream -> its final filesystem."""
    blobs: dict[str, Layer] = {}
    manifest: list[dict[str, object]] = []
    with tarfile.open(fileobj=stream, mode="r|") as outer:
        for member in outer:
            if not member.isreg():
                continue
            source = outer.extractfile(member)
            if source is None:
                continue
            name = normalise(member.name)
            if name == "manifest.json":
                manifest = json.loads(source.read())
                continue
            if member.size <= SMALL_BLOB:
                data = source.read()
                if not data.startswith(b"{"):
                    with contextlib.suppress(tarfile.TarError):
                        blobs[name] = read_layer(io.BytesIO(data))
                continue
            blobs[name] = read_layer(source)
    if not manifest:
        raise ValueError("the saved image has no manifest.json")
    listed = manifest[0].get("Layers")
    if not isinstance(listed, list):
        raise ValueError("manifest.json names no layers")
    names = [normalise(str(n)) for n in listed]
    return apply_layers([blobs.get(n, Layer()) for n in names])


def analyse_image(ref: str, timeout: float = 3600) -> Filesystem:
    """`docker save ref`, streamed through read_saved."""
    process = subprocess.Popen(
        ["docker", "save", ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    if process.stdout is None:  # pragma: no cover - PIPE always gives a stream
        raise RuntimeError("docker save started without stdout")
    try:
        fs = read_saved(process.stdout)
    finally:
        process.stdout.close()
        _, err = process.communicate(timeout=timeout)
    if process.returncode != 0:
        raise RuntimeError(f"docker save {ref} exited {process.returncode}: {err.decode()[-500:]}")
    return fs
