"""`list` and `generate`: the matrix's variants, and images/<variant>/ rendered from them.

Neither talks to Docker unless a variant's size is asked for (`list`, when a daemon answers).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bakery.cli.common import AddParser, Parents, add_command, selection_of
from bakery.defaults import BAKE_FILE
from bakery.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from bakery.matrix import Variant

COMMANDS: tuple[str, ...] = ("list", "generate")


def register(add: AddParser, parents: Parents) -> None:
    """Add `list` and `generate`."""
    p = add_command(
        add,
        "list",
        [parents.common, parents.selection],
        "show every variant the matrix yields",
        "Show the variants (tag, base, torch stack, Python, wheel index). --json prints a list of objects for CI.",
        raw=False,
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(handler=cmd_list)
    p = add_command(
        add,
        "generate",
        [parents.common],
        "render images/<variant>/ from Dockerfile.in",
        "Render Dockerfile.in for every variant into images/<variant>/, and docker-bake.json (one bake target per variant) beside it. --check writes nothing and exits 1 if images/ differs from a fresh render (run it in CI).",
        raw=False,
    )
    p.add_argument("--check", action="store_true", help="fail on drift instead of writing")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="--check renders again even when nothing it reads changed since the last full check",
    )
    p.add_argument("--template", type=Path, default=Path("Dockerfile.in"))
    p.set_defaults(handler=cmd_generate)


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
    from bakery.matrix import load_selection  # noqa: PLC0415 - lazy: --help imports no library

    _, variants = load_selection(args.matrix, selection_of(args))
    sizes = built_sizes(variants)
    if args.json:
        print(json.dumps([{**variant_record(v), "size": sizes[v.id]} for v in variants], indent=2))
        return EXIT_OK
    rows = [
        (
            v.id, v.image,
            v.torch if v.flavour == "full" else f"host env ({v.torch})",
            " ".join(f"{n} {ver}" for n, ver in v.companions) or "—",
            v.python, v.index.name,
            built_text(sizes[v.id]),
        )
        for v in variants
    ]  # fmt: skip
    print(f"{len(variants)} variants from {args.matrix}")
    print(
        plain_table(("variant", "image", "torch", "companions", "python", "index", "built"), rows)
    )
    return EXIT_OK


def built_text(size: int | None) -> str:
    return f"{size / 1e9:.2f} GB" if size is not None else "—"


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns aligned with spaces, as `docker image ls` prints them: greppable, and no table
    library to import (rich's alone took longer than the rest of `list`; issue 17)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def cmd_generate(args: argparse.Namespace) -> int:
    if args.check and not args.no_cache and checked_unchanged(args.matrix, args.template):
        return EXIT_OK
    return generate(args.matrix, args.template, check=args.check)


def checked_unchanged(matrix_path: Path, template: Path) -> bool:
    """True (and says so) when nothing generate reads or wrote changed since a full check."""
    from bakery import rendercache  # noqa: PLC0415 - light: no jinja2, no matrix validation

    root = matrix_path.resolve().parent
    count = rendercache.checked_count(root, matrix_path, template, BAKE_FILE)
    if count is None:
        return False
    sys.stderr.write(  # plain: rich's import alone would cost more than the whole check
        f"images/ and {BAKE_FILE} match a fresh render ({count} variants; nothing they are "
        "rendered from changed since the last full check: --no-cache renders again)\n"
    )
    return True


def generate(matrix_path: Path, template: Path, *, check: bool) -> int:
    """Render every variant (and the bake file); `check`: compare with what is on disk instead."""
    from bakery import rendercache  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bake import render_bake  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.matrix import load_matrix  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.render import RenderedFile, find_drift, render_matrix, write_rendered  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    matrix = load_matrix(matrix_path)
    if not template.is_file():
        raise UsageError(
            f"template {template} not found",
            fix="run from the project root or pass --template",
        )
    root = matrix_path.resolve().parent
    files = render_matrix(matrix, template)
    files.append(RenderedFile(Path(BAKE_FILE), render_bake(matrix)))  # beside images/
    err = err_console()
    if check:
        drift = find_drift(files, root)
        for line in drift:
            err.print(f"drift: {line}")
        if drift:
            err.print(
                f"images/ or {BAKE_FILE} is out of date with {matrix_path} and {template}: run `python build.py generate` and commit the result"
            )
            return EXIT_FAILED
        err.print(f"images/ and {BAKE_FILE} match a fresh render ({len(matrix.variants)} variants)")
        rendercache.remember(root, matrix_path, template, BAKE_FILE, len(matrix.variants))
        return EXIT_OK
    changed = write_rendered(files, root)
    rendercache.remember(root, matrix_path, template, BAKE_FILE, len(matrix.variants))
    for path in changed:
        err.print(f"wrote {path}")
    err.print(f"{len(matrix.variants)} variants rendered, {len(changed)} files changed")
    return EXIT_OK
