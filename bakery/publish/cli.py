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
from collections.abc import Callable
from pathlib import Path

from bakery import argtypes
from bakery.errors import EXIT_OK, BakeryError
from bakery.publish.credentials import scrubbed, take_credentials
from bakery.publish.model import TagHook
from bakery.publish.promote import run_promote
from bakery.publish.push import run_push
from bakery.ui import err_console

COMMANDS: tuple[str, ...] = ("push", "release", "promote")


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
    with scrubbed(credentials):
        return run_push(args, credentials, on_tag_verified)


def cmd_release(args: argparse.Namespace) -> int:
    from bakery import builder, testrun  # noqa: PLC0415

    credentials = take_credentials()
    with scrubbed(credentials):
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
    with scrubbed(credentials):
        return run_promote(args, credentials, on_tag_verified)
