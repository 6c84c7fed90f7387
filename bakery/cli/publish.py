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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bakery.cli import argtypes
from bakery.cli.build import add_build_arguments, build_selection
from bakery.cli.build import options_from_args as build_options
from bakery.cli.common import AddParser, Parents, add_command, selection_of
from bakery.cli.testing import add_suite_arguments, suite_options
from bakery.errors import EXIT_OK, BakeryError

if TYPE_CHECKING:
    from bakery.publish import PublishRequest, TagHook

COMMANDS: tuple[str, ...] = ("push", "release", "promote")


def register(add: AddParser, parents: Parents) -> None:
    """Add `push`, `release` and `promote`."""
    shared = [parents.common, parents.selection, parents.repository]
    p = add_command(
        add,
        "push",
        shared,
        "push tested images to a registry, verify digests, write a report",
        __doc__ or "",
    )
    _add_push_arguments(p, standalone=True)
    p.set_defaults(handler=cmd_push)
    p = add_command(
        add,
        "release",
        shared,
        "build, test and push the selection in one go",
        "Build the selection, run the image suites, and push what passed (see `push --help`). Nothing is pushed unless every selected variant passed.",
        raw=False,
    )
    add_build_arguments(p)
    add_suite_arguments(p)
    _add_push_arguments(p, standalone=False)
    p.set_defaults(handler=cmd_release)
    p = add_command(
        add,
        "promote",
        shared,
        "copy tested images between registries by digest, without rebuilding",
        "Copy the selected variants' images from --from to --to by digest, with all their tags (see `push --help` for the moving tags). Digests come from push reports (--push-report), or from --from when the image passed the tests on this machine.",
        raw=False,
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
        p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
        p.add_argument(
            "--untested",
            action="store_true",
            help="publish images that did not pass `build.py test` (said loudly)",
        )


def publish_request(args: argparse.Namespace, command: str) -> PublishRequest:
    """push/promote's arguments (release: its push step, which never takes --untested)."""
    from bakery.publish import PublishRequest  # noqa: PLC0415 - lazy: --help imports no library

    return PublishRequest(
        command=command,
        matrix=args.matrix,
        selection=selection_of(args),
        registry=args.registry,
        repository=args.repository,
        report=args.report,
        retries=args.retries,
        retry_delay=args.retry_delay,
        untested=bool(getattr(args, "untested", False)),
        dry_run=bool(args.dry_run),
        source=getattr(args, "source", ""),
        push_reports=tuple(getattr(args, "push_report", ())),
    )


def cmd_push(args: argparse.Namespace, on_tag_verified: TagHook | None = None) -> int:
    from bakery.publish import run_push, scrubbed, take_credentials  # noqa: PLC0415 - lazy: --help imports no library

    credentials = take_credentials()
    with scrubbed(credentials):
        return run_push(publish_request(args, "push"), credentials, on_tag_verified)


def cmd_release(args: argparse.Namespace) -> int:
    """Build, test, push one selection (no selection: the host's default variant, all three)."""
    from bakery.build import default_selection  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.publish import run_push, scrubbed, take_credentials  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.testrun import test_images  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    credentials = take_credentials()
    with scrubbed(credentials):
        selection = selection_of(args)
        if selection.empty:
            selection = default_selection(args.matrix, err_console())
        build_selection(args.matrix, selection, build_options(args), credentials)
        if args.dry_run:
            err_console().print("dry run: nothing was built, tested or pushed")
            return EXIT_OK
        if test_images(replace(suite_options(args), selection=selection)) != EXIT_OK:
            raise BakeryError(
                "the image tests did not all pass: nothing was pushed",
                fix="see the results table above; fix the image and run `python build.py release` again",
            )
        request = replace(publish_request(args, "push"), selection=selection, untested=False)
        return run_push(request, credentials)


def cmd_promote(args: argparse.Namespace, on_tag_verified: TagHook | None = None) -> int:
    from bakery.publish import run_promote, scrubbed, take_credentials  # noqa: PLC0415 - lazy: --help imports no library

    credentials = take_credentials()
    with scrubbed(credentials):
        return run_promote(publish_request(args, "promote"), credentials, on_tag_verified)
