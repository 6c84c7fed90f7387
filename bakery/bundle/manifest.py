"""The bundle manifest: its model, how it is written, and how it is read and checked.

manifest.json is written last and is what makes a directory a bundle: it names the images, their
tags, ids and layer chains, and every archive with its size and sha256. Reading one checks every
key and names the key and the file on any problem.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bakery.defaults import LOADER_NAME as LOADER_NAME  # noqa: PLC0414 - re-exported for mypy
from bakery.errors import BundleError, UsageError

FORMAT = "bakery-bundle"
FORMAT_VERSION = 1
KINDS = ("full", "delta", "export")
ARCHIVE_NAME = "images.tar.zst"
MANIFEST_NAME = "manifest.json"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
EMPTY_MAP: Mapping[str, str] = MappingProxyType({})


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
