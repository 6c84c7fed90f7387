"""`python build.py push | release | promote`: publish tested images to a registry.

push      pushes the selected variants' images under their full tag and the moving tags that
          point at them — only images whose id passed `python build.py test` (recorded in
          .bakery/state/tested.json); `--untested` overrides that and says so. Every tag is
          verified in the registry, and the run ends with a table and a JSON report
          (tag -> digest, size), written atomically, also when the run fails half-way.
release   build, test and push the selection in one go.
promote   copy tested images from one registry to another by digest: nothing is rebuilt, and
          nothing goes through a daemon, so the copy is the image that was tested.

Moving tags, from matrix.toml alone. A target's default Python is the newest version in its
`python` list. Then `<torch>-<accelerator>[-slim]` points at that torch on the default Python,
and `<accelerator>[-slim]` at the newest torch on the default Python (rocm6.3 ->
2.9.1-rocm6.3-py3.12). A torch without a default-Python variant gets no moving tag.

Credentials come from Docker's credential store (`docker login`), or from BAKERY_REGISTRY_USER
and BAKERY_REGISTRY_PASSWORD, which bakery passes to `docker login --password-stdin` for every
registry the command talks to. The password is removed from bakery's environment first (no child
process sees it) and never appears in output, logs or reports.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from packaging.version import Version
from rich.console import Console
from rich.table import Table

from bakery import argtypes, engine
from bakery.atomicfile import write_atomic
from bakery.errors import (
    EXIT_OK,
    BakeryError,
    ConfigError,
    ConfigProblem,
    DockerError,
    GuardError,
    UsageError,
    printable,
    shown,
)
from bakery.matrix import Matrix, Variant
from bakery.release import Revision, immutable_tags, read_revision
from bakery.testrun import STATE_FILE, is_tested_record
from bakery.ui import err_console, out_console

COMMANDS: tuple[str, ...] = ("push", "release", "promote")

ENV_USER = "BAKERY_REGISTRY_USER"
ENV_PASSWORD = "BAKERY_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a password
REPORT_DIR = Path(".bakery/publish")
MAX_RETRY_DELAY = 60.0
REGISTRY_RE = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*")
# What a registry or the network says when trying again can help, and when it cannot.
_AUTH = ("unauthorized", "denied", "authentication required", "no basic auth credentials")
_PERMANENT = (
    *_AUTH,
    "manifest invalid",
    "name unknown",
    "not found",
    "invalid reference",
)
_TRANSIENT = (
    "connection refused",
    "connection reset",
    "broken pipe",
    "timeout",
    "timed out",
    "eof",
    "too many requests",
    "temporary failure",
    "service unavailable",
    "bad gateway",
    "internal server error",
    " 500 ",
    " 502 ",
    " 503 ",
    " 504 ",
)

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Types


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def scrub(self, text: str) -> str:
        return text.replace(self.password, "***") if self.password else text


@dataclass(frozen=True)
class Destination:
    """Where images go: `<registry>/<name>:<tag>`, e.g. ghcr.io/owner + bakery."""

    registry: str
    name: str

    @property
    def host(self) -> str:
        return self.registry.split("/", 1)[0]

    @property
    def repository(self) -> str:
        return f"{self.registry}/{self.name}"

    def ref(self, tag: str) -> str:
        return f"{self.repository}:{tag}"


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all; the wait doubles from `first_delay` up to MAX_RETRY_DELAY."""

    attempts: int = 5
    first_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        return float(min(self.first_delay * 2 ** (attempt - 1), MAX_RETRY_DELAY))


@dataclass(frozen=True)
class PushStep:
    """One variant to publish: its local image (or source digest) and every tag it gets."""

    variant: Variant
    source: str  # local image reference (push) or digest reference in --from (promote)
    image_id: str  # the id `build.py test` recorded (config digest on the classic store)
    tested: bool
    tags: tuple[str, ...]  # full tag first, then the moving tags


@dataclass
class TagRecord:
    """One line of the report."""

    tag: str
    ref: str
    variant: str
    image_id: str
    tested: bool
    status: str = "not-attempted"  # pushed | failed | not-attempted
    digest: str = ""  # what the registry serves for the tag (verified)
    image_digest: str = ""  # the image manifest inside (equals digest after push)
    size: int = 0  # bytes of the compressed config and layers
    attempts: int = 0  # pushes (or copies) tried; reading the tag back is not counted
    error: str = ""


@dataclass(frozen=True)
class PublishOptions:
    root: Path
    destination: Destination
    report: Path
    retry: RetryPolicy
    untested: bool = False
    dry_run: bool = False
    credentials: Credentials | None = None


# The test seam: called after each tag is pushed and verified (tests stop the registry here).
TagHook = Callable[[TagRecord], None]


# ---------------------------------------------------------------------------------------------
# Command line


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    selection: argparse.ArgumentParser,
) -> None:
    """Add `push`, `release` and `promote`."""
    from bakery import builder, testrun  # noqa: PLC0415 - docker-backed modules, as in cli

    p = sub.add_parser(
        "push",
        parents=[common, selection],
        help="push tested images to a registry, verify digests, write a report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_push_arguments(p, standalone=True)
    p.set_defaults(handler=cmd_push)

    p = sub.add_parser(
        "release",
        parents=[common, selection],
        help="build, test and push the selection in one go",
        description="Build the selection, run the image suites, and push what passed (see `push --help`). Nothing is pushed unless every selected variant passed.",
    )
    builder.add_build_arguments(p)
    _add_missing_arguments(p, testrun.add_test_arguments)
    _add_push_arguments(p, standalone=False)
    p.set_defaults(handler=cmd_release)

    p = sub.add_parser(
        "promote",
        parents=[common, selection],
        help="copy tested images between registries by digest, without rebuilding",
        description="Copy the selected variants' images from --from to --to by digest, with all their tags (see `push --help` for the moving tags). Digests come from push reports (--push-report), or from --from when the image passed the tests on this machine.",
    )
    p.add_argument("--from", dest="source", required=True, metavar="REGISTRY_A")
    p.add_argument("--to", dest="registry", required=True, metavar="REGISTRY_B")
    p.add_argument(
        "--push-report",
        action="append",
        type=Path,
        default=[],
        help="a push report (file or folder of *.json) naming the tested digests; repeatable",
    )
    _add_push_arguments(p, standalone=True, destination=False)
    p.set_defaults(handler=cmd_promote)


def _add_push_arguments(
    p: argparse.ArgumentParser, *, standalone: bool, destination: bool = True
) -> None:
    if destination:
        p.add_argument(
            "--registry",
            default=None,
            help="where to push, e.g. ghcr.io/OWNER (default: the matrix repository's)",
        )
    p.add_argument(
        "--report", type=Path, default=None, help="JSON report path (default: .bakery/publish/)"
    )
    p.add_argument(
        "--retries",
        type=argtypes.whole_number(0, 100),
        default=4,
        help="retries per registry call (default 4)",
    )
    p.add_argument(
        "--retry-delay",
        type=argtypes.seconds(allow_zero=True),
        default=2.0,
        help="seconds before the first retry; doubles each time, at most 60 (default 2)",
    )
    if standalone:
        p.add_argument("--repository", default=None, help="the local images' repository")
        p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
        p.add_argument(
            "--untested",
            action="store_true",
            help="publish images that did not pass `build.py test` (said loudly)",
        )


def _add_missing_arguments(
    p: argparse.ArgumentParser, add: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Add the options `add` defines that `p` lacks (release takes test's options as they are)."""
    scratch = argparse.ArgumentParser(add_help=False)
    add(scratch)
    present = {action.dest for action in p._actions}
    for action in scratch._actions:
        if action.dest not in present:
            p._add_action(action)


def cmd_push(args: argparse.Namespace, on_tag_verified: TagHook | None = None) -> int:
    credentials = take_credentials()
    with _scrubbed(credentials):
        return run_push(args, credentials, on_tag_verified)


def cmd_release(args: argparse.Namespace) -> int:
    from bakery import builder, testrun  # noqa: PLC0415

    credentials = take_credentials()
    with _scrubbed(credentials):
        builder.cmd_build(args, credentials)
        if args.dry_run:
            err_console().print("dry run: nothing was built, tested or pushed")
            return EXIT_OK
        if testrun.cmd_test(args) != EXIT_OK:
            raise BakeryError(
                "the image tests did not all pass: nothing was pushed",
                fix="see the results table above; fix the image and run `python build.py release` again",
            )
        args.untested = False
        return run_push(args, credentials)


def cmd_promote(args: argparse.Namespace, on_tag_verified: TagHook | None = None) -> int:
    credentials = take_credentials()
    with _scrubbed(credentials):
        return run_promote(args, credentials, on_tag_verified)


def take_credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """BAKERY_REGISTRY_USER/PASSWORD, the password removed from os.environ; None if unset."""
    env = os.environ if environ is None else environ
    user, password = env.get(ENV_USER, ""), env.get(ENV_PASSWORD, "")
    if environ is None:
        os.environ.pop(ENV_PASSWORD, None)
    if not user and not password:
        return None
    if not user or not password:
        missing = ENV_USER if not user else ENV_PASSWORD
        raise UsageError(
            f"{missing} is not set, but {ENV_USER if missing == ENV_PASSWORD else ENV_PASSWORD} is",
            fix=f"set both {ENV_USER} and {ENV_PASSWORD}, or neither and use `docker login`",
        )
    return Credentials(user, password)


@contextmanager
def _scrubbed(credentials: Credentials | None) -> Iterator[None]:
    """Whatever error leaves the block carries no trace of the password."""
    try:
        yield
    except BakeryError as exc:
        if credentials is not None:
            _scrub_error(exc, credentials)
        raise


def _scrub_error(exc: BakeryError, credentials: Credentials) -> None:
    exc.what, exc.why, exc.fix = (credentials.scrub(s) for s in (exc.what, exc.why, exc.fix))
    if isinstance(exc, DockerError):
        exc.stderr_tail = credentials.scrub(exc.stderr_tail)
        exc.command = tuple(credentials.scrub(part) for part in exc.command)
    exc.args = (exc.what,)


# ---------------------------------------------------------------------------------------------
# Moving tags


def default_pythons(matrix_path: Path) -> dict[str, str]:
    """target -> its default Python: the newest version in its `python` list in matrix.toml."""
    data = tomllib.loads(matrix_path.read_text(encoding="utf-8"))
    targets: Mapping[str, Any] = data.get("targets", {})
    return {
        name: max(table["python"], key=Version)
        for name, table in targets.items()
        if isinstance(table, Mapping) and table.get("python")
    }


def moving_tags(variants: Iterable[Variant], defaults: Mapping[str, str]) -> dict[str, str]:
    """Every moving tag -> the id of the variant it points at (computed on the whole matrix)."""
    groups: dict[tuple[str, str, str], list[Variant]] = {}
    for v in variants:
        if v.python == defaults.get(v.target):
            groups.setdefault((v.target, v.index.tag_part, v.flavour), []).append(v)
    tags: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for (target, accelerator, flavour), members in sorted(groups.items(), key=lambda g: g[0]):
        suffix = "-slim" if flavour == "slim" else ""
        newest = max(members, key=lambda v: Version(v.torch))
        wanted = {f"{v.torch}-{accelerator}{suffix}": v.id for v in members}
        wanted[f"{accelerator}{suffix}"] = newest.id
        for tag, vid in wanted.items():
            if tags.get(tag, vid) != vid:
                problems.append(
                    ConfigProblem(
                        "matrix.toml",
                        f"targets.{target}",
                        f"moving tag {tag!r} would point at both {tags[tag]} and {vid}",
                        "targets on one wheel index share its moving tags: keep one target per index",
                    )
                )
            tags.setdefault(tag, vid)
    if problems:
        raise ConfigError(problems)
    return tags


def tags_for(
    variant: Variant, moving: Mapping[str, str], revision: Revision | None = None
) -> tuple[str, ...]:
    """The full tag, the immutable ones (commit, version), then the moving tags, most specific
    first."""
    mine = sorted((t for t, vid in moving.items() if vid == variant.id), key=lambda t: (-len(t), t))
    return (variant.tag, *immutable_tags(variant.tag, revision), *mine)


# ---------------------------------------------------------------------------------------------
# Planning


def publish_options(args: argparse.Namespace, credentials: Credentials | None) -> PublishOptions:
    root = args.matrix.resolve().parent
    local = args.repository or _matrix_repository(args)
    registry = args.registry or local.rpartition("/")[0]
    _check_registry(registry, "--to" if args.command == "promote" else "--registry")
    if args.retries < 0 or args.retry_delay < 0:
        raise UsageError("--retries and --retry-delay cannot be negative")
    report = args.report or REPORT_DIR / f"{args.command}-report.json"
    return PublishOptions(
        root=root,
        destination=Destination(registry, local.rpartition("/")[2]),
        report=report if report.is_absolute() else root / report,
        retry=RetryPolicy(attempts=args.retries + 1, first_delay=args.retry_delay),
        untested=bool(getattr(args, "untested", False)),
        dry_run=bool(args.dry_run),
        credentials=credentials,
    )


def _matrix_repository(args: argparse.Namespace) -> str:
    from bakery.matrix import load_matrix  # noqa: PLC0415

    return load_matrix(args.matrix).project.repository


def _check_registry(registry: str, flag: str) -> None:
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
    matrix: Matrix, variants: Sequence[Variant], args: argparse.Namespace
) -> list[PushStep]:
    """Each selected variant's local image, whether it passed the tests, and its tags."""
    moving = moving_tags(matrix.variants, default_pythons(args.matrix))
    tested = load_tested(args.matrix.resolve().parent)
    revision = read_revision(args.matrix.resolve().parent)
    repository = args.repository or matrix.project.repository
    steps, missing = [], []
    for v in variants:
        source = f"{repository}:{v.tag}"
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


def _push_steps(
    matrix: Matrix,
    variants: Sequence[Variant],
    args: argparse.Namespace,
    options: PublishOptions,
    console: Console,
) -> list[PushStep]:
    """The push plan; a dry run without a daemon still shows images and tags, unchecked."""
    if options.dry_run and not engine.daemon_answers(timeout=5):
        console.print(
            "note: no Docker daemon answers, so this plan does not check that the images are "
            "built and tested"
        )
        moving = moving_tags(matrix.variants, default_pythons(args.matrix))
        repository = args.repository or matrix.project.repository
        return [
            PushStep(v, f"{repository}:{v.tag}", "", False, tags_for(v, moving)) for v in variants
        ]
    engine.check_engine()
    return plan_push(matrix, variants, args)


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


# ---------------------------------------------------------------------------------------------
# Registry calls with retries


def is_transient(exc: DockerError) -> bool:
    """True when the registry or the network might answer differently if asked again."""
    text = f" {exc.what}\n{exc.stderr_tail} ".lower()
    if any(marker in text for marker in _PERMANENT):
        return False
    return any(marker in text for marker in _TRANSIENT)


def registry_message(exc: DockerError) -> str:
    """The registry's own words: the last line of docker's stderr."""
    lines = [line.strip() for line in exc.stderr_tail.splitlines() if line.strip()]
    return lines[-1].removeprefix("ERROR: ") if lines else exc.what


def with_retries(
    action: Callable[[], T],
    label: str,
    options: PublishOptions,
    console: Console,
    record: TagRecord | None = None,
) -> T:
    """Run `action`; retry transient DockerErrors with doubling, capped waits."""
    policy = options.retry
    for attempt in range(1, policy.attempts + 1):
        if record is not None:
            record.attempts += 1
        try:
            return action()
        except DockerError as exc:
            if attempt == policy.attempts or not is_transient(exc):
                raise
            wait = policy.delay(attempt)
            message = _scrub(options, registry_message(exc))
            console.print(
                f"{label}: attempt {attempt}/{policy.attempts} failed ({message}); retrying in {wait:g}s"
            )
            time.sleep(wait)  # backoff between attempts at a remote registry
    raise DockerError(f"{label}: no attempt was made (--retries must be >= 0)")


def _scrub(options: PublishOptions, text: str) -> str:
    return options.credentials.scrub(text) if options.credentials else text


def log_in(hosts: Iterable[str], options: PublishOptions, console: Console) -> None:
    credentials = options.credentials
    if credentials is None:
        return
    for host in sorted(set(hosts)):
        try:
            with_retries(
                functools.partial(
                    engine.login_registry, host, credentials.username, credentials.password
                ),
                f"docker login {host}",
                options,
                console,
            )
        except DockerError as exc:
            if any(marker in exc.stderr_tail.lower() for marker in (*_AUTH, "401")):
                exc.fix = (
                    f"check {ENV_USER} and {ENV_PASSWORD} (for GHCR: a token with write:packages)"
                )
            else:
                exc.fix = f"check that the registry {host} is up and reachable, then run again"
            raise
        console.print(f"logged in to {host} as {credentials.username}")


@contextmanager
def logged_in(hosts: Iterable[str], options: PublishOptions, console: Console) -> Iterator[None]:
    """log_in for the block, then `docker logout` of the hosts bakery logged in to: the
    credential store keeps no token after publishing (a login the user made stays theirs)."""
    try:
        log_in(hosts, options, console)
        yield
    finally:
        if options.credentials is not None:
            for host in sorted(set(hosts)):
                engine.logout_registry(host)
                console.print(f"logged out of {host}")


def failure(
    exc: DockerError, record: TagRecord, records: Sequence[TagRecord], report: Path
) -> DockerError:
    """The final error for a tag: names it, quotes the registry, says what made it."""
    made_it = [r.tag for r in records if r.status == "pushed"]
    message = registry_message(exc)
    login = ""
    if any(marker in message.lower() for marker in _AUTH):
        host = record.ref.split("/", 1)[0]
        login = f"log in with `docker login {host}` or set {ENV_USER} and {ENV_PASSWORD}; "
    return DockerError(
        f"{record.ref}: {message} (after {record.attempts} attempt(s))",
        command=exc.command,
        return_code=exc.return_code,
        stderr_tail=exc.stderr_tail,
        fix=f"{login}{len(made_it)} of {len(records)} tag(s) made it "
        f"({', '.join(made_it) or 'none'}); the report {report} lists them; "
        "run the command again to finish",
    )


# ---------------------------------------------------------------------------------------------
# Push


def run_push(
    args: argparse.Namespace,
    credentials: Credentials | None = None,
    on_tag_verified: TagHook | None = None,
) -> int:
    """Plan, print, check, push and verify every tag, then report (also when a push fails)."""
    from bakery.cli import load_selected  # noqa: PLC0415 - avoids an import cycle

    console = err_console()
    options = publish_options(args, credentials)
    matrix, variants = load_selected(args)
    steps = _push_steps(matrix, variants, args, options, console)
    print_plan(steps, options, console, "push")
    if options.dry_run:
        return EXIT_OK
    check_tested(steps, options, console)
    records = [
        TagRecord(t, options.destination.ref(t), s.variant.id, s.image_id, s.tested)
        for s in steps
        for t in s.tags
    ]
    with (
        _reporting("push", options, records, console),
        logged_in([options.destination.host], options, console),
    ):
        for step in steps:
            for record in (r for r in records if r.variant == step.variant.id):
                push_tag(step, record, options, console)
                if on_tag_verified is not None:
                    on_tag_verified(record)
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
        record.status, record.error = "failed", _scrub(options, registry_message(exc))
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


# ---------------------------------------------------------------------------------------------
# Promote


def run_promote(
    args: argparse.Namespace,
    credentials: Credentials | None = None,
    on_tag_verified: TagHook | None = None,
) -> int:
    """Copy each selected variant's tested digest from --from to --to under all its tags."""
    from bakery.cli import load_selected  # noqa: PLC0415

    console = err_console()
    options = publish_options(args, credentials)
    _check_registry(args.source, "--from")
    source = Destination(args.source, options.destination.name)
    matrix, variants = load_selected(args)
    engine.check_engine()
    with logged_in([source.host, options.destination.host], options, console):
        return _promote(args, matrix, variants, source, options, console, on_tag_verified)


def _promote(
    args: argparse.Namespace,
    matrix: Matrix,
    variants: Sequence[Variant],
    source: Destination,
    options: PublishOptions,
    console: Console,
    on_tag_verified: TagHook | None,
) -> int:
    steps = plan_promote(matrix, variants, args, source, options, console)
    print_plan(steps, options, console, "promote")
    if options.dry_run:
        return EXIT_OK
    check_tested(steps, options, console)
    records = [
        TagRecord(t, options.destination.ref(t), s.variant.id, s.image_id, s.tested)
        for s in steps
        for t in s.tags
    ]
    with _reporting("promote", options, records, console):
        for step in steps:
            for record in (r for r in records if r.variant == step.variant.id):
                copy_tag(step, record, options, console)
                if on_tag_verified is not None:
                    on_tag_verified(record)
    return EXIT_OK


def plan_promote(
    matrix: Matrix,
    variants: Sequence[Variant],
    args: argparse.Namespace,
    source: Destination,
    options: PublishOptions,
    console: Console,
) -> list[PushStep]:
    """The digest to copy for each variant: from the push reports, else read from --from."""
    moving = moving_tags(matrix.variants, default_pythons(args.matrix))
    revision = read_revision(options.root)
    reported = read_push_reports(args.push_report, source) if args.push_report else None
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
        record.status, record.error = "failed", _scrub(options, registry_message(exc))
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


# ---------------------------------------------------------------------------------------------
# Report


@contextmanager
def _reporting(
    command: str, options: PublishOptions, records: Sequence[TagRecord], console: Console
) -> Iterator[None]:
    """Write the report and print the table however the block ends; name the tag that failed."""
    started = _now()
    try:
        yield
    except DockerError as exc:
        failed = next((r for r in records if r.status == "failed"), None)
        if failed is None:
            raise
        raise failure(exc, failed, records, options.report) from exc
    finally:
        write_report(command, options, records, started)
        print_table(records)
        console.print(f"report: {options.report}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_report(
    command: str, options: PublishOptions, records: Sequence[TagRecord], started: str
) -> None:
    report = {
        "command": command,
        "repository": options.destination.repository,
        "started_at": started,
        "finished_at": _now(),
        "complete": all(r.status == "pushed" for r in records),
        "tags": [asdict(r) for r in records],
    }
    text = _scrub(options, json.dumps(report, indent=2) + "\n")
    write_atomic(options.report, text)


def print_table(records: Sequence[TagRecord]) -> None:
    table = Table(
        title=f"{sum(r.status == 'pushed' for r in records)}/{len(records)} tags published"
    )
    for column in ("tag", "variant", "status", "digest", "size", "attempts"):
        table.add_column(column, overflow="fold")
    styles = {"pushed": "green", "failed": "bold red", "not-attempted": "yellow"}
    for r in records:
        table.add_row(
            r.ref,
            r.variant,
            f"[{styles[r.status]}]{r.status}[/]",
            r.digest[:19] or "—",
            f"{r.size / 1e6:.1f} MB" if r.size else "—",
            str(r.attempts),
        )
    out_console().print(table)
