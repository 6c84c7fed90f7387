"""export/import: one flattened layer per image, the config carried in the manifest.

For users who must flatten an image: `docker import` starts from an empty config, so `import`
re-applies ENV, ENTRYPOINT, CMD, WORKDIR, USER and labels from the export's manifest with
`--change`, and checks that the imported image got them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from bakery import __version__, engine
from bakery.atomicfile import PendingFile, pending_file
from bakery.bundle.archive import check_size
from bakery.bundle.manifest import (
    MANIFEST_NAME,
    Archive,
    Bundle,
    BundleImage,
    ImageConfig,
    Manifest,
    read_bundle,
)
from bakery.bundle.output import check_output, install_bundle, remove_leftovers, writing_bundle
from bakery.bundle.save import PlannedImage, bundle_image
from bakery.bundle.streams import CHUNK, Written, compress_to, copy_stream, progress_bar
from bakery.errors import BundleError, UsageError


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
    with writing_bundle(output), contextlib.ExitStack() as stack:
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


def export_bundle_of(source: Path) -> tuple[Bundle, str | None] | None:
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
