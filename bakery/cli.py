"""Command line: `python build.py [COMMAND] [selection] [options]`.

`main(argv) -> int` is the single boundary where bakery errors become
`error: what happened — why — what to do` on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import NoReturn

from rich.markup import escape
from rich.table import Table

from bakery import __version__
from bakery.bake import BAKE_FILE, render_bake
from bakery.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BakeryError,
    UsageError,
    printable,
)
from bakery.matrix import Matrix, Selection, Variant, load_matrix, select_variants
from bakery.render import RenderedFile, find_drift, render_matrix, write_rendered
from bakery.ui import err_console, out_console

log = logging.getLogger("bakery")

CORE_COMMANDS = ("build", "list", "generate", "base", "test")
# Modules that add their own subcommands: each has COMMANDS and register(sub, common, selection).
COMMAND_MODULES = (
    "bakery.bundle",
    "bakery.publish",
    "bakery.slim",
    "bakery.devbox",
    "bakery.doctor",
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
    stderr = err_console()
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except BakeryError as exc:
        if args.debug:
            log.exception("bakery error")
        stderr.print(f"[bold red]error:[/] {escape(exc.render())}", markup=True, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.print(
            "interrupted — nothing was tagged for the step that was running; re-run to resume from the cache"
        )
        return EXIT_INTERRUPTED


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
    extra = [name for module in COMMAND_MODULES for name in import_module(module).COMMANDS]
    return (*CORE_COMMANDS, *extra)


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
        force=True,
    )


class _Parser(argparse.ArgumentParser):
    """argparse, with the offending text escaped in its errors ("unrecognized arguments: ...")."""

    def error(self, message: str) -> NoReturn:
        super().error(printable(message))


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="build.py",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bakery {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--matrix",
        type=Path,
        default=Path("matrix.toml"),
        help="the matrix file (default: ./matrix.toml)",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks and docker commands")
    selection = argparse.ArgumentParser(add_help=False)
    group = selection.add_argument_group("selection")
    group.add_argument(
        "--target",
        action="append",
        default=[],
        help="rocm, cuda or cpu (build: default is the host's GPU)",
    )
    group.add_argument("--torch", action="append", default=[], help="torch version(s), e.g. 2.9.1")
    group.add_argument("--python", action="append", default=[], help="Python version(s), e.g. 3.11")
    group.add_argument("--flavour", action="append", default=[], help="full or slim")
    group.add_argument("--variant", action="append", default=[], help="glob(s) on the variant id")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_list(sub, [common, selection])
    _add_generate(sub, [common])
    _add_build(sub, [common, selection])
    _add_base(sub, [common])
    _add_test(sub, [common, selection])
    for module in COMMAND_MODULES:
        import_module(module).register(sub, common, selection)
    return parser


def _add_list(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = sub.add_parser(
        "list",
        parents=parents,
        help="show every variant the matrix yields",
        description="Show the variants (tag, base, torch stack, Python, wheel index). --json prints a list of objects for CI.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(handler=cmd_list)


def _add_generate(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = sub.add_parser(
        "generate",
        parents=parents,
        help="render images/<variant>/ from Dockerfile.in",
        description="Render Dockerfile.in for every variant into images/<variant>/, and docker-bake.json (one bake target per variant) beside it. --check writes nothing and exits 1 if images/ differs from a fresh render (run it in CI).",
    )
    p.add_argument("--check", action="store_true", help="fail on drift instead of writing")
    p.add_argument("--template", type=Path, default=Path("Dockerfile.in"))
    p.set_defaults(handler=cmd_generate)


def _add_build(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    from bakery import builder  # noqa: PLC0415 - keeps `list`/`generate` free of docker imports

    p = sub.add_parser(
        "build",
        parents=parents,
        help="build the selected variants (default command)",
        description=builder.BUILD_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    builder.add_build_arguments(p)
    p.set_defaults(handler=builder.cmd_build)


def _add_base(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    p = sub.add_parser(
        "base",
        parents=parents,
        help="bootstrap a Debian base image with debootstrap",
        description="Bootstrap a minimal Debian image with debootstrap from a Debian mirror (--debian-mirror) and import it with a sensible config (PATH, CMD, labels). Use it when no registry is reachable, then build with --base-map.",
    )
    p.add_argument("--suite", default="bookworm", help="Debian suite (default: bookworm)")
    p.add_argument("--tag", default=None, help="image tag (default: bakery/debian:<suite>)")
    p.add_argument(
        "--debian-mirror",
        "--mirror",
        dest="mirror",
        default=None,
        help="Debian mirror URL (default: the host's Debian mirror on Debian, http://deb.debian.org/debian elsewhere); credentials in it never reach the image or the log",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if the tag exists")
    p.set_defaults(handler=cmd_base)


def _add_test(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], parents: list[argparse.ArgumentParser]
) -> None:
    from bakery import testrun  # noqa: PLC0415

    p = sub.add_parser(
        "test",
        parents=parents,
        help="run the image test suites on built images",
        description="Run the testinfra suites (GPU probing, version pairing, training smoke) against the selected variants' images and print variant × suite results. Exit 1 if anything failed. The same suites run with plain pytest: pytest tests/image --variant ID or --image REF.",
    )
    testrun.add_test_arguments(p)
    p.set_defaults(handler=testrun.cmd_test)


def selection_from_args(args: argparse.Namespace) -> Selection:
    def split(values: list[str]) -> tuple[str, ...]:
        return tuple(item.strip() for value in values for item in value.split(",") if item.strip())

    return Selection(
        targets=split(args.target),
        torch=split(args.torch),
        python=split(args.python),
        flavours=split(args.flavour),
        variants=split(args.variant),
    )


def load_selected(args: argparse.Namespace) -> tuple[Matrix, list[Variant]]:
    matrix = load_matrix(args.matrix)
    return matrix, select_variants(matrix, selection_from_args(args))


def variant_record(v: Variant) -> dict[str, object]:
    """The JSON shape of a variant (what CI workflows consume from `list --json`)."""
    return {
        "id": v.id,
        "tag": v.tag,
        "image": v.image,
        "target": v.target,
        "accelerator": v.accelerator,
        "accelerator_version": v.index.version,
        "flavour": v.flavour,
        "torch": v.torch,
        "companions": dict(v.companions),
        "python": v.python,
        "index": v.index.name,
        "index_url": v.index.url,
        "pypi_equivalent": v.pypi_equivalent,
        "base": v.base,
        "base_digest": v.base_digest,
        "gpu_archs": list(v.gpu_archs),
        "dockerfile": f"images/{v.id}/Dockerfile",
    }


def built_sizes(variants: Sequence[Variant]) -> dict[str, int | None]:
    """Image size in bytes for each variant built locally; None if not built or no daemon."""
    from bakery import engine  # noqa: PLC0415 - list works without Docker

    if not engine.daemon_answers(timeout=5):
        return dict.fromkeys((v.id for v in variants), None)
    by_image = engine.image_sizes([v.image for v in variants])
    return {v.id: by_image.get(v.image) for v in variants}


def cmd_list(args: argparse.Namespace) -> int:
    _, variants = load_selected(args)
    sizes = built_sizes(variants)
    if args.json:
        print(json.dumps([{**variant_record(v), "size": sizes[v.id]} for v in variants], indent=2))
        return EXIT_OK
    table = Table(title=f"{len(variants)} variants from {args.matrix}")
    for column in ("variant", "image", "torch", "companions", "python", "index", "built"):
        table.add_column(column, overflow="fold")
    for v in variants:
        companions = " ".join(f"{n} {ver}" for n, ver in v.companions) or "—"
        torch = v.torch if v.flavour == "full" else f"host env ({v.torch})"
        size = sizes[v.id]
        built = f"{size / 1e9:.2f} GB" if size is not None else "—"
        table.add_row(v.id, v.image, torch, companions, v.python, v.index.name, built)
    out_console().print(table)
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    matrix = load_matrix(args.matrix)
    if not args.template.is_file():
        raise UsageError(
            f"template {args.template} not found",
            fix="run from the project root or pass --template",
        )
    root = args.matrix.resolve().parent
    files = render_matrix(matrix, args.template)
    files.append(RenderedFile(Path(BAKE_FILE), render_bake(matrix)))  # beside images/
    err = err_console()
    if args.check:
        drift = find_drift(files, root)
        for line in drift:
            err.print(f"drift: {line}")
        if drift:
            err.print(
                f"images/ or {BAKE_FILE} is out of date with {args.matrix} and {args.template}: run `python build.py generate` and commit the result"
            )
            return EXIT_FAILED
        err.print(f"images/ and {BAKE_FILE} match a fresh render ({len(matrix.variants)} variants)")
        return EXIT_OK
    changed = write_rendered(files, root)
    for path in changed:
        err.print(f"wrote {path}")
    err.print(f"{len(matrix.variants)} variants rendered, {len(changed)} files changed")
    return EXIT_OK


def cmd_base(args: argparse.Namespace) -> int:
    from bakery import base  # noqa: PLC0415 - docker-backed; imported only when used

    result = base.bootstrap_base(
        base.BaseOptions(suite=args.suite, tag=args.tag, mirror=args.mirror, force=args.force)
    )
    err_console().print(
        f"base image {result.tag} ({result.image_id[:19]}) {'created' if result.created else 'reused'}"
    )
    return EXIT_OK
