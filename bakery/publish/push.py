"""`push`: tag, push, read back and verify every tag of the planned images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console

from bakery import engine
from bakery.errors import EXIT_OK, DockerError, GuardError
from bakery.matrix import load_selection
from bakery.publish.model import (
    Credentials,
    PublishOptions,
    PublishRequest,
    PushStep,
    TagHook,
    TagRecord,
)
from bakery.publish.plan import (
    check_tested,
    for_each_tag,
    print_plan,
    publish_options,
    push_steps,
    tag_records,
)
from bakery.publish.registry import logged_in, registry_message, scrub, with_retries
from bakery.publish.report import reporting
from bakery.ui import err_console


def run_push(
    request: PublishRequest,
    credentials: Credentials | None = None,
    on_tag_verified: TagHook | None = None,
) -> int:
    """Plan, print, check, push and verify every tag, then report (also when a push fails)."""
    console = err_console()
    options = publish_options(request, credentials)
    matrix, variants = load_selection(request.matrix, request.selection)
    steps = push_steps(matrix, variants, request, options, console)
    print_plan(steps, options, console, "push")
    if options.dry_run:
        return EXIT_OK
    check_tested(steps, options, console)
    records = tag_records(steps, options)
    with (
        reporting("push", options, records, console),
        logged_in([options.destination.host], options, console),
    ):
        for_each_tag(steps, records, lambda s, r: push_tag(s, r, options, console), on_tag_verified)
    return EXIT_OK


def push_tag(step: PushStep, record: TagRecord, options: PublishOptions, console: Console) -> None:
    """Tag, push, read the tag back from the registry, compare; untag locally afterwards."""
    engine.tag_image(step.image_id, record.ref)
    try:
        pushed = with_retries(
            lambda: engine.push_image(record.ref), f"push {record.ref}", options, console, record
        )
        served = with_retries(
            lambda: engine.registry_manifest(record.ref), f"verify {record.ref}", options, console
        )
    except DockerError as exc:
        record.status, record.error = "failed", scrub(options, registry_message(exc))
        raise
    finally:
        if record.ref != step.source:
            engine.remove_image(record.ref, force=False)
    record.size = verify_push(record, pushed, served)
    record.status, record.digest, record.image_digest = "pushed", served.digest, served.digest
    console.print(f"{record.ref}: {served.digest} verified")


def verify_push(record: TagRecord, pushed: str, served: engine.RegistryManifest) -> int:
    """The registry serves what docker pushed, and it is the tested image; return its size."""
    if served.digest != pushed:
        record.status = "failed"
        record.error = f"registry serves {served.digest}, docker pushed {pushed}"
        raise GuardError(
            f"{record.ref}: the registry serves {served.digest}, but docker pushed {pushed}",
            "another push to the same tag raced this one, or the registry changed the manifest",
            "push again; if it repeats, look at who else writes to this repository",
        )
    document = served.document()
    config = str(document.get("config", {}).get("digest", ""))
    if record.image_id not in (config, served.digest):
        record.status = "failed"
        record.error = f"registry image config {config} is not image {record.image_id}"
        raise GuardError(
            f"{record.ref} in the registry is not image {record.image_id}",
            f"its config digest is {config}",
            "push again; if it repeats, look at who else writes to this repository",
        )
    return manifest_size(document)


def manifest_size(document: Mapping[str, Any]) -> int:
    """Bytes of the compressed config and layers a single-image manifest names."""
    blobs = [document.get("config", {}), *document.get("layers", [])]
    return sum(int(blob.get("size", 0)) for blob in blobs if isinstance(blob, Mapping))
