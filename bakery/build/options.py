"""The build's options: the frozen `BuildOptions`, and how the command line becomes one."""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bakery import argtypes
from bakery.buildkit import CacheSpec, parse_caches
from bakery.errors import UsageError
from bakery.host import find_ca_bundle
from bakery.matrix import Variant
from bakery.pipsources import PipSources, sources_from_flags, sources_from_host
from bakery.release import oci_labels, read_revision

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

TORCH_SOURCES = ("auto", "index", "pypi", "local")


@dataclass(frozen=True)
class BuildOptions:
    root: Path
    jobs: int = 1
    dry_run: bool = False
    json: bool = False
    torch_source: str = "auto"
    pip: PipSources = field(default_factory=PipSources)
    ca_cert: Path | None = None
    base_map: Mapping[str, str] = field(default_factory=dict)
    bootstrap_base: bool = False
    repository: str | None = None
    uid: int | None = None
    gid: int | None = None
    log_dir: Path = Path(".bakery/logs")
    network: str | None = None
    torch_index_urls: Mapping[str, str] = field(default_factory=dict)  # index name -> mirror URL
    no_cache: bool = False
    bake_file: Path | None = None  # write this host's bake override there instead of building
    builder: str | None = None  # buildx builder instance; None: the current one (as before)
    builder_driver: str = "docker"  # resolved before building when --builder/--cache-to is given
    cache_from: tuple[CacheSpec, ...] = ()
    cache_to: tuple[CacheSpec, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # OCI labels (bakery.release)
    python_mirror: str = ""  # URL or folder for uv's interpreter downloads (bakery.interpreters)


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
    """The image's repository and user, and the network of its RUN steps."""
    p.add_argument("--repository", default=None, help="override the matrix's repository")
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


def parse_torch_index_urls(values: Sequence[str]) -> dict[str, str]:
    """`rocm6.3=URL` pairs; a bare URL stands for every index (checked against the plan)."""
    result = {}
    for value in values:
        name, sep, url = value.partition("=")
        if sep and "://" not in name:
            result[name] = url
        else:
            result["*"] = value
    return result


def torch_index_for(v: Variant, options: BuildOptions) -> str:
    return (
        options.torch_index_urls.get(v.index.name)
        or options.torch_index_urls.get("*")
        or v.index.url
    )


def parse_base_map(values: Sequence[str]) -> dict[str, str]:
    result = {}
    for value in values:
        source, sep, target = value.partition("=")
        if not sep or not source or not target:
            raise UsageError(
                f"--base-map {value!r} is not FROM=TO",
                fix="e.g. --base-map docker.io/library/debian:bookworm-slim=bakery/debian:bookworm",
            )
        result[source] = target
    return result
