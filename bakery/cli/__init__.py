"""Command line: `python build.py [COMMAND] [selection] [options]`.

`main(argv) -> int` is the single boundary where bakery errors become
`error: what happened — why — what to do` on stderr and an exit code.

The package is the only place that knows argparse (bakery-probe, a script copied alone into
images, keeps its own); no library module imports it or argparse. One module per command
group, each with its COMMANDS and `register(add, parents)`; a handler turns its arguments into
a frozen options object and calls the library:

    matrix   list, generate
    build    build, base
    testing  test
    bundle   save, load, export, import
    publish  push, release, promote
    slim     run, compose
    devbox   up, enter, status, job, logs, stop
    doctor   doctor
    common   the parent parsers (--matrix/--debug, the selection flags, --repository)
    argtypes argparse `type=` functions for numeric options
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import TYPE_CHECKING

from bakery import __version__
from bakery.cli.common import Handler, Parser, make_parents
from bakery.errors import EXIT_INTERRUPTED, BakeryError

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger("bakery")

# The command groups, in --help order: each has COMMANDS and register(add, parents).
GROUPS = (
    "bakery.cli.matrix",
    "bakery.cli.build",
    "bakery.cli.testing",
    "bakery.cli.bundle",
    "bakery.cli.publish",
    "bakery.cli.slim",
    "bakery.cli.devbox",
    "bakery.cli.doctor",
)
DESCRIPTION = """\
bakery builds GPU training images (ROCm 6.3, CUDA 12.8, CPU) from matrix.toml.

  python build.py list                     every variant the matrix yields
  python build.py generate [--check]       render images/<variant>/ from Dockerfile.in
  python build.py --target cpu             build the selected variants (no command = build)
  python build.py base                     bootstrap a Debian base image with debootstrap
  python build.py test --target cpu        run the image test suites on built images

Selection flags (--target, --torch, --python, --flavour, --variant) take comma-separated values
and can be repeated; --variant takes globs on the variant id (e.g. '*rocm6.3-py3.12').
Run `python build.py COMMAND --help` for a command's options.
"""


def main(argv: Sequence[str] | None = None, *, exec_enter: bool = False) -> int:
    """Run one command. `exec_enter` (the entry points only): `enter` on a running dev container
    replaces this process with `docker exec` instead of running it as a child."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if exec_enter and args_list[:1] == ["enter"]:
        from bakery.devbox.fast import enter_fast  # noqa: PLC0415 - skips the full CLI

        enter_fast(args_list[1:])  # execs docker exec, or returns having done nothing
    parser = build_parser()
    args = parser.parse_args(_with_default_command(args_list))
    _setup_logging(args.debug)
    try:
        handler: Handler = args.handler
        return handler(args)
    except BakeryError as exc:
        if args.debug:
            log.exception("bakery error")
        _report_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        _stderr().print(
            "interrupted — nothing was tagged for the step that was running; re-run to resume from the cache"
        )
        return EXIT_INTERRUPTED


def _stderr() -> Console:
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    return err_console()


def _report_error(exc: BakeryError) -> None:
    """`error: what happened — why — what to do`, escaped so no markup of the message shows."""
    from rich.markup import escape  # noqa: PLC0415 - lazy: --help imports no library

    _stderr().print(f"[bold red]error:[/] {escape(exc.render())}", markup=True, soft_wrap=True)


def main_exit() -> None:
    """Console-script entry point."""
    sys.exit(main(exec_enter=True))


def _with_default_command(argv: list[str]) -> list[str]:
    """`python build.py --target rocm` means `python build.py build --target rocm`."""
    if any(a in ("-h", "--help", "--version") for a in argv[:1]):
        return argv
    first_positional = next((a for a in argv if not a.startswith("-")), None)
    if first_positional in all_commands():
        return argv
    return ["build", *argv]


def all_commands() -> tuple[str, ...]:
    return tuple(name for group in GROUPS for name in import_module(group).COMMANDS)


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = Parser(
        prog="build.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bakery {__version__}")
    parents = make_parents()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        import_module(group).register(sub.add_parser, parents)
    return parser
