"""`promote`: copy tested images between registries by digest (skopeo), nothing rebuilt."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from bakery import engine
from bakery.errors import EXIT_OK, DockerError, GuardError, UsageError
from bakery.matrix import Matrix, Variant, load_selection
from bakery.publish.model import (
    Credentials,
    Destination,
    PublishOptions,
    PublishRequest,
    PushStep,
    TagHook,
    TagRecord,
)
from bakery.publish.plan import (
    check_registry,
    check_tested,
    for_each_tag,
    load_tested,
    print_plan,
    publish_options,
    tag_records,
    was_tested,
)
from bakery.publish.push import manifest_size
from bakery.publish.registry import logged_in, registry_message, scrub, with_retries
from bakery.publish.report import reporting
from bakery.publish.tags import default_pythons, moving_tags, tags_for
from bakery.release import read_revision
from bakery.ui import err_console


def run_promote(
    request: PublishRequest,
    credentials: Credentials | None = None,
    on_tag_verified: TagHook | None = None,
) -> int:
    """Copy each selected variant's tested digest from --from to --to under all its tags."""
    console = err_console()
    options = publish_options(request, credentials)
    check_registry(request.source, "--from")
    source = Destination(request.source, options.destination.name)
    matrix, variants = load_selection(request.matrix, request.selection)
    engine.check_engine()
    with logged_in([source.host, options.destination.host], options, console):
        return _promote(request, matrix, variants, source, options, console, on_tag_verified)


def _promote(
    request: PublishRequest,
    matrix: Matrix,
    variants: Sequence[Variant],
    source: Destination,
    options: PublishOptions,
    console: Console,
    on_tag_verified: TagHook | None,
) -> int:
    steps = plan_promote(matrix, variants, request, source, options, console)
    print_plan(steps, options, console, "promote")
    if options.dry_run:
        return EXIT_OK
    check_tested(steps, options, console)
    records = tag_records(steps, options)
    with reporting("promote", options, records, console):
        for_each_tag(steps, records, lambda s, r: copy_tag(s, r, options, console), on_tag_verified)
    return EXIT_OK


def plan_promote(
    matrix: Matrix,
    variants: Sequence[Variant],
    request: PublishRequest,
    source: Destination,
    options: PublishOptions,
    console: Console,
) -> list[PushStep]:
    """The digest to copy for each variant: from the push reports, else read from --from."""
    moving = moving_tags(matrix.variants, default_pythons(request.matrix))
    revision = read_revision(options.root)
    reported = read_push_reports(request.push_reports, source) if request.push_reports else None
    tested = load_tested(options.root)
    steps, missing = [], []
    for v in variants:
        if reported is not None:
            found = reported.get(v.tag)
            if found is None:
                missing.append(v.id)
                continue
            digest, image_id, is_tested = found["digest"], found["image_id"], True
        else:
            served = with_retries(
                functools.partial(engine.registry_manifest, source.ref(v.tag)),
                f"read {source.ref(v.tag)}",
                options,
                console,
            )
            digest = served.digest
            image_id = str(served.document().get("config", {}).get("digest", ""))
            is_tested = was_tested(tested, image_id, v) or was_tested(tested, digest, v)
        steps.append(
            PushStep(
                v,
                f"{source.repository}@{digest}",
                image_id,
                is_tested,
                tags_for(v, moving, revision),
            )
        )
    if missing:
        raise UsageError(
            f"the push reports name no pushed digest for {len(missing)} selected variant(s): {', '.join(missing)}",
            fix="pass the reports of the pushes that tested them, or narrow the selection",
        )
    return steps


def read_push_reports(paths: Sequence[Path], source: Destination) -> dict[str, dict[str, str]]:
    """full tag -> {digest, image_id} of every verified push to `source` in the reports."""
    files = [f for p in paths for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]
    found: dict[str, dict[str, str]] = {}
    for path in files:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"push report {path} is not readable JSON ({exc})") from exc
        if (
            report.get("command") not in ("push", "release")
            or report.get("repository") != source.repository
        ):
            raise UsageError(
                f"{path} is not a report of a push to {source.repository}",
                f"it is a {report.get('command')!r} report for {report.get('repository')!r}",
                "pass the reports `python build.py push --registry <--from>` wrote",
            )
        for entry in report.get("tags", []):
            # The full tag is the variant id; moving tags follow from the matrix, not the report.
            if entry.get("status") == "pushed" and entry.get("tag") == entry.get("variant"):
                found[entry["tag"]] = {"digest": entry["digest"], "image_id": entry["image_id"]}
    return found


def copy_tag(step: PushStep, record: TagRecord, options: PublishOptions, console: Console) -> None:
    """Copy the digest to the tag, then check the tag serves exactly that image."""
    digest = step.source.rpartition("@")[2]
    try:
        with_retries(
            lambda: engine.copy_image(step.source, record.ref),
            f"copy to {record.ref}",
            options,
            console,
            record,
        )
        served = with_retries(
            lambda: engine.registry_manifest(record.ref), f"verify {record.ref}", options, console
        )
        inner = with_retries(
            lambda: engine.registry_manifest(f"{options.destination.repository}@{digest}"),
            f"verify {options.destination.repository}@{digest}",
            options,
            console,
        )
    except DockerError as exc:
        record.status, record.error = "failed", scrub(options, registry_message(exc))
        raise
    verify_copy(record, digest, served, inner)
    record.status, record.digest, record.image_digest = "pushed", served.digest, digest
    record.size = manifest_size(inner.document())
    console.print(f"{record.ref}: {served.digest} verified (image {digest})")


def verify_copy(
    record: TagRecord,
    digest: str,
    served: engine.RegistryManifest,
    inner: engine.RegistryManifest,
) -> None:
    """The tag serves exactly `digest` (no wrapping index), and the copy's bytes hash to it."""
    if inner.digest != digest or served.digest != digest:
        record.status, record.error = "failed", f"tag serves {served.digest}, not image {digest}"
        raise GuardError(
            f"{record.ref} does not serve the tested image {digest}",
            f"the registry serves {served.digest} ({served.media_type}) for the tag",
            "promote again; if it repeats, look at who else writes to this repository",
        )
