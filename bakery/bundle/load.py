"""load: check the daemon, stream the archive into `docker load`, check the ids, tag, probe.

`verify_bundle` checks everything it can without Docker first (bakery.bundle.archive), then the
daemon (image store, free space, for a delta the base layers); the archive streams through
`zstd -d` into `docker load`; the image ids are checked before any tag is applied.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console

from bakery import engine
from bakery.bundle.archive import archive_problems, check_size, verify_archive
from bakery.bundle.manifest import Bundle, BundleImage, Layer, Manifest, chain_ids
from bakery.bundle.streams import (
    CHUNK,
    STOP_SECONDS,
    Worker,
    progress_bar,
    size_text,
    stop_process,
    zstd_process,
)
from bakery.errors import BakeryError, BundleError, UsageError
from bakery.host import gpu_access

LOAD_MARGIN = 256 << 20  # free space beyond twice the tar: docker load unpacks, then applies
PROBE_TIMEOUT = 300.0
CONTAINERD_PROBLEM = (
    "the Docker daemon uses the containerd image store",
    "bundles are verified on the classic store only (image ids and layer skipping differ)",
    'turn it off (daemon.json: "features": {"containerd-snapshotter": false}) or use export/import',
)


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
            f"not enough free space for the load in {root}: {size_text(free)} free, about {size_text(need)} needed",
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
    zstd = zstd_process(["-d", "-c"], subprocess.PIPE)
    worker = Worker(lambda: _feed_file(path, zstd.stdin, advance))
    worker.start()
    try:
        if zstd.stdout is None:  # cannot happen with PIPE; keeps types honest
            raise BakeryError("zstd started without pipes")
        outcome = engine.load_images(zstd.stdout)
    except BaseException:
        stop_process(zstd)
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
    if not has_probe(image):
        return None
    env = dict(item.partition("=")[::2] for item in image.config.env)
    access = gpu_access(env.get("BAKERY_ACCELERATOR", "cpu"))
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
