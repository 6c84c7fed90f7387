"""`build` (the default command) and `base`: arguments to `BuildOptions`, then plan, print, build.

The order is the project's rule: resolve the selection into frozen `BuildStep`s, print the
plan, and only then touch Docker (`--dry-run` stops after the plan, `--bake-file` writes the
host override instead of building).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from bakery.cli import argtypes
from bakery.cli.common import AddParser, Parents, add_command, selection_of
from bakery.defaults import TORCH_SOURCES
from bakery.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from bakery.build import BuildOptions
    from bakery.matrix import Selection
    from bakery.publish import Credentials

COMMANDS: tuple[str, ...] = ("build", "base")

BUILD_DESCRIPTION = """\
Build the selected variants with BuildKit (docker buildx, through python-on-whales).

With no --target, bakery picks the host's accelerator (/dev/kfd -> rocm, /dev/nvidia* -> cuda,
otherwise cpu) and says so. Each build's full log goes to .bakery/logs/; the run ends with a
summary table. Images are tagged <repository>:<tag> only after their torch stack was read back.

Behind proxies and air gaps:
  --ca-cert PEM        CA bundle for HTTPS steps (default: $PIP_CERT, $REQUESTS_CA_BUNDLE,
                       $SSL_CERT_FILE), passed as a BuildKit secret, never stored in a layer
  --index-url/--extra-index-url/--find-links
                       pip sources (default: the host's `pip config list` and PIP_*);
                       local directories are bind-mounted as named build contexts
  --torch-source       auto (default): the accelerator's index if reachable, else PyPI where
                       its wheel is the same build (CUDA 12.8 for torch 2.8-2.10), else local
                       sources only; index | pypi | local force one
  --base-map FROM=TO   build FROM a mirror or local image instead (e.g. the one `base` makes)
  --bootstrap-base     map Debian bases to a debootstrapped local image, creating it if needed
  --python-mirror URL|DIR
                       where uv gets interpreters other than the base's Python (default:
                       GitHub's python-build-standalone; the plan refuses if unreachable)
"""


def register(add: AddParser, parents: Parents) -> None:
    """Add `build` and `base`."""
    p = add_command(
        add,
        "build",
        [parents.common, parents.selection, parents.repository],
        "build the selected variants (default command)",
        BUILD_DESCRIPTION,
    )
    add_build_arguments(p)
    p.set_defaults(handler=cmd_build)
    p = add_command(
        add,
        "base",
        [parents.common],
        "bootstrap a Debian base image with debootstrap",
        "Bootstrap a minimal Debian image with debootstrap from a Debian mirror (--debian-mirror) and import it with a sensible config (PATH, CMD, labels). Use it when no registry is reachable, then build with --base-map.",
        raw=False,
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


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    """The build options, in --help order."""
    _add_run_arguments(p)
    _add_source_arguments(p)
    _add_image_arguments(p)
    _add_buildkit_arguments(p)


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """How the run goes: plan only, parallel jobs, JSON summary, cache use."""
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument(
        "--jobs",
        type=argtypes.whole_number(1, 64),
        default=1,
        help="build N variants at once (default 1)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument(
        "--no-cache", action="store_true", help="ignore the BuildKit cache: run every step again"
    )


def _add_source_arguments(p: argparse.ArgumentParser) -> None:
    """Where torch, pip packages, bases and interpreters come from."""
    p.add_argument("--torch-source", choices=TORCH_SOURCES, default="auto")
    p.add_argument(
        "--torch-index-url",
        action="append",
        default=[],
        metavar="[INDEX=]URL",
        help="a mirror of an accelerator's wheel index (e.g. rocm6.3=https://mirror/whl/rocm6.3); "
        "passed as a secret, so credentials in it never reach the image",
    )
    p.add_argument("--ca-cert", type=Path, default=None, help="CA bundle (PEM) for HTTPS steps")
    p.add_argument("--index-url", default=None)
    p.add_argument("--extra-index-url", action="append", default=[])
    p.add_argument("--find-links", action="append", default=[])
    p.add_argument("--no-host-pip", action="store_true", help="ignore the host's pip config")
    p.add_argument("--base-map", action="append", default=[], metavar="FROM=TO")
    p.add_argument("--bootstrap-base", action="store_true")
    p.add_argument(
        "--python-mirror",
        default="",
        metavar="URL|DIR",
        help="a copy of python-build-standalone's releases for Pythons the base lacks; "
        "a URL is passed as a secret, a folder as a named build context",
    )


def _add_image_arguments(p: argparse.ArgumentParser) -> None:
    """The image's user, and the network of its RUN steps (--repository: a parent parser)."""
    p.add_argument("--uid", type=argtypes.user_id, default=None, help="uid of the image's user")
    p.add_argument("--gid", type=argtypes.user_id, default=None, help="gid of the image's user")
    p.add_argument(
        "--network",
        default=None,
        help="network for RUN steps, e.g. host to reach a mirror on localhost",
    )


def _add_buildkit_arguments(p: argparse.ArgumentParser) -> None:
    """Which buildx builder builds, the BuildKit cache it shares, or a bake file instead."""
    p.add_argument(
        "--builder",
        default=None,
        metavar="NAME",
        help="a buildx builder instance of any driver (docker-container, kubernetes, remote); "
        "default: the current one. A builder outside the daemon builds with --load",
    )
    p.add_argument(
        "--cache-from",
        action="append",
        default=[],
        metavar="SPEC",
        help="import BuildKit cache, as buildx takes it: type=registry,ref=HOST/REPO:TAG | "
        "type=local,src=DIR | type=gha | a bare reference; repeatable. Registry logins like pushes",
    )
    p.add_argument(
        "--cache-to",
        action="append",
        default=[],
        metavar="SPEC",
        help="export BuildKit cache: type=registry,ref=...,mode=max | type=local,dest=DIR | "
        "type=gha | type=inline (the only one the docker driver can export)",
    )
    p.add_argument(
        "--bake-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="write this host's part of the plan (local pip contexts, mapped bases, torch source, "
        "secret files) as a bake file to use beside docker-bake.json, and build nothing",
    )


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    """The build's arguments as a frozen `BuildOptions` (pip sources and CA resolved here)."""
    from bakery.build import BuildOptions, parse_base_map, parse_torch_index_urls  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.buildkit import parse_caches  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.host import find_ca_bundle  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.pipsources import PipSources, sources_from_flags, sources_from_host  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.release import oci_labels, read_revision  # noqa: PLC0415 - lazy: --help imports no library

    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} is not a positive number", fix="use --jobs 1 or more")
    explicit = args.index_url or args.extra_index_url or args.find_links
    if explicit:
        pip = sources_from_flags(args.index_url, args.extra_index_url, args.find_links)
    elif args.no_host_pip:
        pip = PipSources()
    else:
        pip = sources_from_host()
    root = args.matrix.resolve().parent
    return BuildOptions(
        root=root, jobs=args.jobs, dry_run=args.dry_run, json=args.json,
        torch_source=args.torch_source, pip=pip, ca_cert=find_ca_bundle(args.ca_cert),
        base_map=parse_base_map(args.base_map), bootstrap_base=args.bootstrap_base,
        repository=args.repository, uid=args.uid, gid=args.gid, network=args.network,
        torch_index_urls=parse_torch_index_urls(args.torch_index_url),
        no_cache=args.no_cache, bake_file=args.bake_file, builder=args.builder or None,
        cache_from=parse_caches(args.cache_from, "--cache-from"),
        cache_to=parse_caches(args.cache_to, "--cache-to"),
        labels=oci_labels(root, read_revision(root)),
        python_mirror=args.python_mirror,
    )  # fmt: skip


def cmd_build(args: argparse.Namespace, credentials: Credentials | None = None) -> int:
    """Build the selection; `credentials` (release passes its own) log in to cache registries."""
    return build_selection(args.matrix, selection_of(args), options_from_args(args), credentials)


def build_selection(
    matrix_path: Path,
    selection: Selection,
    options: BuildOptions,
    credentials: Credentials | None = None,
) -> int:
    """No selection: the host target's default variant. Plan, print, then build (or bake)."""
    from bakery import build, engine  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bake import write_bake_file  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.matrix import load_selection  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    console = err_console()
    if selection.empty:
        selection = build.default_selection(matrix_path, console)
    _, variants = load_selection(matrix_path, selection)
    build.check_rendered(variants, options.root)
    options = build.resolve_builder(options)
    steps = build.plan_builds(variants, options)
    build.print_plan(steps, options, console)
    if options.bake_file is not None:
        return write_bake_file(steps, options, console)
    if options.dry_run:
        return EXIT_OK
    engine.check_engine()
    steps = build.prepare_bases(steps, options, console)
    with build.cache_logins(options, credentials, console):
        results = build.run_builds(steps, options, console)
    build.report_results(results, options, console)
    return EXIT_OK


def cmd_base(args: argparse.Namespace) -> int:
    from bakery import base  # noqa: PLC0415 - docker-backed; imported only when used
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    result = base.bootstrap_base(
        base.BaseOptions(suite=args.suite, tag=args.tag, mirror=args.mirror, force=args.force)
    )
    err_console().print(
        f"base image {result.tag} ({result.image_id[:19]}) {'created' if result.created else 'reused'}"
    )
    return EXIT_OK
