"""`python build.py [build]`: the command, from parsed arguments to a finished run."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from bakery import engine
from bakery.build.options import BuildOptions, options_from_args, torch_index_for
from bakery.build.plan import (
    BuildStep,
    check_rendered,
    default_variant,
    plan_builds,
    prepare_bases,
    print_plan,
)
from bakery.build.run import report_results, run_builds
from bakery.buildkit import cache_hosts, check_driver
from bakery.errors import EXIT_OK
from bakery.host import detect_host_target
from bakery.matrix import Selection, load_matrix, select_variants
from bakery.ui import err_console

if TYPE_CHECKING:
    from bakery.publish import Credentials


def _no_selection(args: argparse.Namespace) -> bool:
    return not any((args.target, args.torch, args.python, args.flavour, args.variant))


def _select_default(args: argparse.Namespace, console: Console) -> None:
    """No selection flags: the host target's default variant only, and how to build the rest."""
    target, reason = detect_host_target()
    variants = load_matrix(args.matrix).variants
    chosen = default_variant(variants, target)
    count = sum(v.target == target for v in variants)
    console.print(
        f"no selection given: building [bold]{chosen.id}[/], the default of {target} ({reason}); "
        f"`--target {target}` builds all {count} {target} variants, `python3 build.py list` shows every variant"
    )
    args.variant = [chosen.id]


def cmd_build(args: argparse.Namespace, credentials: Credentials | None = None) -> int:
    """Build the selection; `credentials` (release passes its own) log in to cache registries."""
    console = err_console()
    if _no_selection(args):
        _select_default(args, console)
    options = options_from_args(args)
    matrix = load_matrix(args.matrix)
    variants = select_variants(matrix, _selection(args))
    check_rendered(variants, options.root)
    options = resolve_builder(options)
    steps = plan_builds(variants, options)
    print_plan(steps, options, console)
    if options.bake_file is not None:
        return write_bake_file(steps, options, console)
    if options.dry_run:
        return EXIT_OK
    engine.check_engine()
    steps = prepare_bases(steps, options, console)
    with cache_logins(options, credentials, console):
        results = run_builds(steps, options, console)
    report_results(results, options, console)
    return EXIT_OK


def resolve_builder(options: BuildOptions) -> BuildOptions:
    """Ask buildx for the builder's driver when it matters; refuse what it cannot do."""
    if options.builder is None and not options.cache_to:
        return options
    driver = engine.builder_driver(options.builder or "")
    check_driver(driver, options.builder or "(current)", options.cache_to)
    return replace(options, builder_driver=driver)


@contextmanager
def cache_logins(
    options: BuildOptions, credentials: Credentials | None, console: Console
) -> Iterator[None]:
    """Log in to registry caches with BAKERY_REGISTRY_USER/PASSWORD (like pushes); log out after."""
    from bakery.publish import take_credentials  # noqa: PLC0415 - avoids an import cycle

    hosts = cache_hosts((*options.cache_from, *options.cache_to))
    if credentials is None and hosts:
        credentials = take_credentials()
    if credentials is None or not hosts:
        yield
        return
    try:
        for host in hosts:
            engine.login_registry(host, credentials.username, credentials.password)
            console.print(f"logged in to cache registry {host} as {credentials.username}")
        yield
    finally:
        for host in hosts:
            engine.logout_registry(host)


def write_bake_file(steps: Sequence[BuildStep], options: BuildOptions, console: Console) -> int:
    from bakery.bake import BAKE_FILE, ENV_SECRETS, target_name, write_host_override  # noqa: PLC0415

    path = write_host_override(options.bake_file or Path(), steps, options)
    names = " ".join(target_name(s.variant.id) for s in steps)
    console.print(f"wrote {path}; build with:")
    console.print(f"  docker buildx bake -f {BAKE_FILE} -f {path} {names}")
    if any(torch_index_for(s.variant, options) != s.variant.index.url for s in steps):
        console.print(f"  (with {ENV_SECRETS['torch-index']}=<mirror URL> in the environment)")
    console.print("bake builds skip bakery's torch read-back before tagging: run `build.py test`")
    return EXIT_OK


def _selection(args: argparse.Namespace) -> Selection:
    return Selection.from_flags(args.target, args.torch, args.python, args.flavour, args.variant)
