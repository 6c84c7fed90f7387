"""What every command group shares: the parent parsers and the selection they parse.

Each option every command may take is declared once here and reaches a subcommand through
`parents=[...]`: `--matrix`/`--debug` (every command), the selection flags
(`--target/--torch/--python/--flavour/--variant`) and `--repository`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from bakery.errors import printable

if TYPE_CHECKING:
    from bakery.matrix import Selection

# `sub.add_parser` of the top-level parser: each group adds its commands through it.
AddParser = Callable[..., argparse.ArgumentParser]
Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse, with the offending text escaped in its errors ("unrecognized arguments: ...")."""

    def error(self, message: str) -> NoReturn:
        super().error(printable(message))


@dataclass(frozen=True)
class Parents:
    """The shared option groups; a command names the ones it takes."""

    common: argparse.ArgumentParser
    selection: argparse.ArgumentParser
    repository: argparse.ArgumentParser


def make_parents() -> Parents:
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
    repository = argparse.ArgumentParser(add_help=False)
    repository.add_argument(
        "--repository",
        default=None,
        help="the images' repository (default: the matrix's [project] repository)",
    )
    return Parents(common, selection, repository)


def add_command(
    add: AddParser,
    name: str,
    parents: Sequence[argparse.ArgumentParser],
    summary: str,
    description: str,
    *,
    raw: bool = True,
) -> argparse.ArgumentParser:
    """One subcommand; `raw`: its description keeps its line breaks (else argparse wraps it)."""
    parser: argparse.ArgumentParser = add(
        name,
        parents=list(parents),
        help=summary,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter,
    )
    return parser


def selection_of(args: argparse.Namespace) -> Selection:
    """The selection flags of a command that takes the selection parent."""
    from bakery.matrix import Selection  # noqa: PLC0415 - lazy: --help imports no library

    return Selection.from_flags(args.target, args.torch, args.python, args.flavour, args.variant)


def after_dashes(command: Sequence[str]) -> tuple[str, ...]:
    """argparse.REMAINDER keeps the `--` that separates bakery's options from the command."""
    items = list(command)
    return tuple(items[1:] if items[:1] == ["--"] else items)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """`--env` and `--gpus` of the commands that start containers (bakery.gpuselect)."""
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a variable in the container (repeatable), e.g. the probe's advice "
        "--env HSA_OVERRIDE_GFX_VERSION=11.0.0",
    )
    p.add_argument(
        "--gpus",
        default=None,
        metavar="N,N|all",
        help="which GPUs: ROCm passes only their render nodes and sets HIP_VISIBLE_DEVICES; "
        'NVIDIA uses --gpus "device=N,N" (default: all)',
    )
