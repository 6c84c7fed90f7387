"""save: inspect the images, plan which layers a delta leaves out, stream `docker save` into a bundle.

`docker save` goes through the tar filter and zstd into a temporary file; only when the archive
is complete and checked does the new bundle replace the old (bakery.bundle.output).

Why a delta can leave layers out: `docker load` on the classic image store opens a layer file
only when the daemon lacks that layer's ChainID (moby image/tarexport/load.go,
shared/facts/docker-tools.md §3). The archive's own tags are removed at save time, so
nothing is tagged on the server before bakery (or load.sh) has checked the image ids.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rich.console import Console

from bakery import __version__, engine
from bakery.atomicfile import pending_file
from bakery.bundle.archive import SavedTar, blob_name, filter_saved_tar
from bakery.bundle.loader import render_loader
from bakery.bundle.manifest import (
    ARCHIVE_NAME,
    MANIFEST_NAME,
    Archive,
    Bundle,
    BundleImage,
    ImageConfig,
    Layer,
    Manifest,
    chain_ids,
    read_bundle,
)
from bakery.bundle.output import (
    SAVE_NAMES,
    check_output,
    install_bundle,
    remove_leftovers,
    writing_bundle,
)
from bakery.bundle.streams import Written, compress_to, progress_bar, size_text
from bakery.errors import BakeryError, UsageError

COMPONENT_LABELS = {
    "variant": "io.bakery.variant",
    "flavour": "io.bakery.flavour",
    "accelerator": "io.bakery.accelerator",
    "python": "io.bakery.python",
    "torch": "io.bakery.torch",
    "torchvision": "io.bakery.torchvision",
    "torch_source": "io.bakery.torch-source",
}


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
            f"  {', '.join(image.tags)}  {image.info.id[:19]}  {size_text(image.info.size)}, "
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


def save_bundle(plan: SavePlan, console: Console) -> Manifest:
    """Stream `docker save` through the filter and zstd; replace the old bundle only then."""
    estimate = sum(i.info.size for i in plan.images)
    with writing_bundle(plan.output):
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
