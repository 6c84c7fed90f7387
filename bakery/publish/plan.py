"""The push plan: options from the request, each variant's image, tested or not, and its tags."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from bakery import engine
from bakery.errors import UsageError, printable, shown
from bakery.matrix import Matrix, Variant
from bakery.publish.model import (
    REGISTRY_RE,
    REPORT_DIR,
    Credentials,
    Destination,
    PublishOptions,
    PublishRequest,
    PushStep,
    RetryPolicy,
    TagHook,
    TagRecord,
)
from bakery.publish.tags import default_pythons, moving_tags, tags_for
from bakery.release import read_revision
from bakery.testrun import STATE_FILE, is_tested_record


def publish_options(request: PublishRequest, credentials: Credentials | None) -> PublishOptions:
    root = request.matrix.resolve().parent
    local = request.repository or _matrix_repository(request)
    registry = request.registry or local.rpartition("/")[0]
    check_registry(registry, "--to" if request.command == "promote" else "--registry")
    if request.retries < 0 or request.retry_delay < 0:
        raise UsageError("--retries and --retry-delay cannot be negative")
    report = request.report or REPORT_DIR / f"{request.command}-report.json"
    return PublishOptions(
        root=root,
        destination=Destination(registry, local.rpartition("/")[2]),
        report=report if report.is_absolute() else root / report,
        retry=RetryPolicy(attempts=request.retries + 1, first_delay=request.retry_delay),
        untested=request.untested,
        dry_run=bool(request.dry_run),
        credentials=credentials,
    )


def _matrix_repository(request: PublishRequest) -> str:
    from bakery.matrix import load_matrix  # noqa: PLC0415

    return load_matrix(request.matrix).project.repository


def check_registry(registry: str, flag: str) -> None:
    if not registry:
        raise UsageError("no registry to publish to", fix=f"pass {flag} HOST[/NAMESPACE]")
    if not REGISTRY_RE.fullmatch(registry):
        raise UsageError(
            f"{flag} {shown(registry)} is not a registry path",
            "registry paths are a host[:port] and lowercase path components",
            f"e.g. {flag} ghcr.io/{printable(registry.rpartition('/')[2].lower()) or 'owner'}",
        )


def load_tested(root: Path) -> dict[str, Any]:
    """image id -> what `build.py test` recorded for it (variant, tested_at, suites)."""
    path = root / STATE_FILE
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"{path} is not readable JSON ({exc})",
            fix="delete it and run `python build.py test` again",
        ) from exc
    return state if isinstance(state, dict) else {}


def was_tested(tested: Mapping[str, Any], image_id: str, variant: Variant) -> bool:
    return is_tested_record(tested.get(image_id), variant.id)


def plan_push(
    matrix: Matrix, variants: Sequence[Variant], request: PublishRequest
) -> list[PushStep]:
    """Each selected variant's local image, whether it passed the tests, and its tags."""
    moving = moving_tags(matrix.variants, default_pythons(request.matrix))
    tested = load_tested(request.matrix.resolve().parent)
    revision = read_revision(request.matrix.resolve().parent)
    repository = request.repository or matrix.project.repository
    steps, missing = [], []
    for v in variants:
        source = v.ref(repository)
        info = engine.inspect_image(source)
        if info is None:
            missing.append(f"{source} (python build.py --variant {v.id})")
            continue
        steps.append(
            PushStep(
                v, source, info.id, was_tested(tested, info.id, v), tags_for(v, moving, revision)
            )
        )
    if missing:
        raise UsageError(
            f"{len(missing)} selected image(s) are not built: {', '.join(missing)}",
            fix="build them first, or narrow the selection",
        )
    return steps


def push_steps(
    matrix: Matrix,
    variants: Sequence[Variant],
    request: PublishRequest,
    options: PublishOptions,
    console: Console,
) -> list[PushStep]:
    """The push plan; a dry run without a daemon still shows images and tags, unchecked."""
    if options.dry_run and not engine.daemon_answers(timeout=5):
        console.print(
            "note: no Docker daemon answers, so this plan does not check that the images are "
            "built and tested"
        )
        moving = moving_tags(matrix.variants, default_pythons(request.matrix))
        repository = request.repository or matrix.project.repository
        return [PushStep(v, v.ref(repository), "", False, tags_for(v, moving)) for v in variants]
    engine.check_engine()
    return plan_push(matrix, variants, request)


def check_tested(steps: Sequence[PushStep], options: PublishOptions, console: Console) -> None:
    """Refuse images that did not pass the tests, unless --untested says otherwise (loudly)."""
    untested = [s for s in steps if not s.tested]
    if not untested:
        return
    names = ", ".join(
        f"{s.variant.id} ({s.image_id.removeprefix('sha256:')[:12]})" for s in untested
    )
    if not options.untested:
        raise UsageError(
            f"refusing to publish {len(untested)} image(s) that did not pass the tests: {names}",
            f"no passing run of `python build.py test` is recorded for these image ids in {STATE_FILE}",
            "run `python build.py test` with the same selection (or `release`), or pass --untested",
        )
    console.print(
        f"[bold yellow]warning:[/] publishing {len(untested)} UNTESTED image(s) because "
        f"--untested was given: {names}"
    )


def print_plan(
    steps: Sequence[PushStep], options: PublishOptions, console: Console, verb: str
) -> None:
    tags = sum(len(s.tags) for s in steps)
    console.print(
        f"{verb} plan: {len(steps)} image(s), {tags} tag(s) to {options.destination.repository}"
    )
    for s in steps:
        mark = "" if s.tested else "  [bold yellow](untested)[/]"
        mark = mark if s.image_id else "  (not checked: no daemon)"
        console.print(f"  {s.variant.id}: {s.source}{mark}")
        console.print(f"      tags: {', '.join(s.tags)}")
    how = "BAKERY_REGISTRY_USER" if options.credentials else "the Docker credential store"
    console.print(f"credentials from {how}; report {options.report}")
    if options.dry_run:
        console.print("dry run: nothing was pushed")


def tag_records(steps: Sequence[PushStep], options: PublishOptions) -> list[TagRecord]:
    """One report line per tag to publish, in plan order, none attempted yet."""
    return [
        TagRecord(t, options.destination.ref(t), s.variant.id, s.image_id, s.tested)
        for s in steps
        for t in s.tags
    ]


def for_each_tag(
    steps: Sequence[PushStep],
    records: Sequence[TagRecord],
    publish_tag: Callable[[PushStep, TagRecord], None],
    on_tag_verified: TagHook | None,
) -> None:
    """Publish every tag of every step in plan order; call the test seam after each one."""
    for step in steps:
        for record in (r for r in records if r.variant == step.variant.id):
            publish_tag(step, record)
            if on_tag_verified is not None:
                on_tag_verified(record)
