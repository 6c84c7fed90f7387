"""`python build.py [build]`: plan, print the plan, build each variant with BuildKit, verify, tag.

An image is tagged only after its contents were read back and match the variant, so an
interrupted or failed build never leaves a tag pointing at the wrong thing; a re-run resumes
from the BuildKit cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bakery import argtypes, engine, interpreters, verified
from bakery.buildkit import (
    DAEMON_DRIVER,
    CacheSpec,
    cache_hosts,
    check_driver,
    describe_builder,
    parse_caches,
)
from bakery.errors import EXIT_OK, BakeryError, DockerError, GuardError, UsageError, redact
from bakery.host import detect_host_target as detect_host_target  # noqa: PLC0414 - re-exported
from bakery.host import find_ca_bundle
from bakery.localwheels import check_local_wheels
from bakery.matrix import Selection, Variant, load_matrix, select_variants
from bakery.pipsources import (
    PipSources,
    check_local_dirs,
    sources_from_flags,
    sources_from_host,
)
from bakery.release import OCI, oci_labels, read_revision
from bakery.render import find_drift, render_variant
from bakery.ui import err_console

if TYPE_CHECKING:
    from bakery.publish import Credentials

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


@dataclass(frozen=True)
class BuildStep:
    """One planned build: everything decided before docker is called."""

    variant: Variant
    dockerfile: Path
    image: str
    torch_source: str
    torch_source_reason: str
    build_args: Mapping[str, str]
    base_context: tuple[str, str] | None  # (FROM reference, docker-image://replacement)
    log_path: Path
    interpreter_source: str = ""


@dataclass(frozen=True)
class BuildResult:
    step: BuildStep
    image_id: str
    size: int
    seconds: float
    steps_total: int
    steps_cached: int
    steps_run: tuple[str, ...]


def add_build_arguments(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--repository", default=None, help="override the matrix's repository")
    p.add_argument("--uid", type=argtypes.user_id, default=None, help="uid of the image's user")
    p.add_argument("--gid", type=argtypes.user_id, default=None, help="gid of the image's user")
    p.add_argument(
        "--network",
        default=None,
        help="network for RUN steps, e.g. host to reach a mirror on localhost",
    )
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


def default_variant(variants: Sequence[Variant], target: str) -> Variant:
    """The target's default image: full flavour, the newest torch, on the base's own Python
    (else the newest Python)."""
    from packaging.version import Version  # noqa: PLC0415

    mine = [v for v in variants if v.target == target]
    if not mine:
        raise UsageError(f"the matrix has no variant for target {target!r}", fix="pass --target")
    return max(
        mine,
        key=lambda v: (
            v.flavour == "full",
            Version(v.torch),
            v.python == v.base_python,
            Version(v.python),
        ),
    )


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
    from bakery.cli import selection_from_args  # noqa: PLC0415 - avoids an import cycle

    return selection_from_args(args)


def check_rendered(variants: Sequence[Variant], root: Path) -> None:
    template = (root / "Dockerfile.in").read_text(encoding="utf-8")
    drift = [
        d
        for v in variants
        for d in find_drift(render_variant(v, template), root)
        if "stale" not in d
    ]
    if drift:
        raise UsageError(
            f"images/ is out of date for the selection ({drift[0]}{' …' if len(drift) > 1 else ''})",
            "the Dockerfiles must match matrix.toml and Dockerfile.in",
            "run `python build.py generate` (and commit images/)",
        )


def plan_builds(variants: Sequence[Variant], options: BuildOptions) -> list[BuildStep]:
    check_local_dirs(options.pip)
    indexes = {v.index.name for v in variants if v.flavour == "full"}
    if "*" in options.torch_index_urls and len(indexes) > 1:
        raise UsageError(
            f"--torch-index-url {redact(options.torch_index_urls['*'])} would serve {len(indexes)} different indexes ({', '.join(sorted(indexes))})",
            "one mirror URL cannot hold both builds",
            "name the index: --torch-index-url rocm6.3=URL (repeat per index)",
        )
    interpreter_source = interpreters.check_interpreter_sources(
        variants, options.python_mirror, options.ca_cert
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    steps = []
    for v in variants:
        source, reason = choose_torch_source(v, options)
        args = {"TORCH_SOURCE": source} if v.flavour == "full" else {}
        if options.uid is not None:
            args["BAKERY_UID"] = str(options.uid)
        if options.gid is not None:
            args["BAKERY_GID"] = str(options.gid)
        repository = options.repository or v.project.repository
        mapped = options.base_map.get(v.base_ref) or options.base_map.get(v.base)
        steps.append(BuildStep(
            variant=v, dockerfile=Path("images") / v.id / "Dockerfile",
            image=f"{repository}:{v.tag}", torch_source=source, torch_source_reason=reason,
            build_args=args, base_context=(v.base_ref, mapped) if mapped else None,
            log_path=options.root / options.log_dir / f"{v.id}-{stamp}.log",
            interpreter_source=interpreter_source,
        ))  # fmt: skip
    check_local_wheels([s.variant for s in steps if s.torch_source == "local"], options.pip)
    return steps


def choose_torch_source(v: Variant, options: BuildOptions) -> tuple[str, str]:
    if v.flavour == "slim":
        return "none", "slim: torch comes from the host environment at run time"
    policy = options.torch_source
    if policy == "pypi" and not v.pypi_equivalent:
        raise UsageError(
            f"--torch-source pypi for {v.id}: PyPI's torch {v.torch} is not the {v.index.name} build",
            f"only {', '.join(v.index.pypi_equivalent) or 'no releases'} match on PyPI",
            "use --torch-source index (or local with a mirror of the index)",
        )
    if policy in ("index", "pypi", "local"):
        return policy, "asked for with --torch-source"
    url = torch_index_for(v, options)
    if index_reachable(url, options.ca_cert):
        return "index", f"{redact(url)} is reachable"
    if v.pypi_equivalent:
        return (
            "pypi",
            f"{v.index.url} is unreachable; PyPI's torch {v.torch} is the same {v.index.name} build",
        )
    if options.pip.local_dirs():
        return "local", f"{v.index.url} is unreachable; torch must come from local pip sources"
    raise UsageError(
        f"cannot get torch {v.torch} for {v.id}: {v.index.url} is unreachable",
        f"PyPI's torch {v.torch} is not the {v.index.name} build and no local pip source is set",
        "pass --find-links DIR with the wheels, or --index-url of a mirror of the index",
    )


_REACHABLE: dict[str, bool] = {}


def index_reachable(url: str, ca_cert: Path | None, timeout: float = 5.0) -> bool:
    if url not in _REACHABLE:
        import ssl  # noqa: PLC0415

        context = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
        try:
            request = urllib.request.Request(url.rstrip("/") + "/torch/", method="HEAD")  # noqa: S310 - https index URL from committed data
            with urllib.request.urlopen(request, timeout=timeout, context=context):  # noqa: S310
                _REACHABLE[url] = True
        except (urllib.error.URLError, OSError, ValueError):
            _REACHABLE[url] = False
    return _REACHABLE[url]


LARGE_CONTEXT = 1_000_000_000


def folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


SOURCE_SIZES = Path(".bakery") / "source-sizes.json"


def folder_stamp(folder: Path) -> list[int]:
    """Modification times of `folder` and its direct subfolders: adding, removing or renaming a
    wheel (find-links) or a project's file (a simple index, one folder per project) moves one."""
    stamps = [folder.stat().st_mtime_ns]
    with os.scandir(folder) as entries:
        stamps += sorted(e.stat().st_mtime_ns for e in entries if e.is_dir(follow_symlinks=False))
    return stamps


def remembered_folder_size(folder: Path, cache: Path) -> int:
    """folder_size, walked again only when folder_stamp changed: a multi-GB local index took
    seconds to walk on every build (issue 17)."""
    try:
        stamp = folder_stamp(folder)
    except OSError:
        return folder_size(folder)
    try:
        records = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        records = {}
    if not isinstance(records, dict):
        records = {}
    seen = records.get(str(folder))
    if isinstance(seen, dict) and seen.get("stamp") == stamp:
        return int(seen.get("size", 0))
    size = folder_size(folder)
    records[str(folder)] = {"stamp": stamp, "size": size}
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(records), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass  # no cache: the next build walks the folder again
    finally:
        tmp.unlink(missing_ok=True)
    return size


def print_plan(steps: Sequence[BuildStep], options: BuildOptions, console: Console) -> None:
    console.print(f"build plan: {len(steps)} variant(s), {options.jobs} at a time")
    for s in steps:
        base = (
            f"{s.base_context[1]} (mapped from {s.variant.base})"
            if s.base_context
            else s.variant.base_ref
        )
        console.print(f"  {s.variant.id} -> {s.image}")
        index = redact(torch_index_for(s.variant, options))
        where = f" ({index})" if s.torch_source == "index" else ""
        console.print(f"      torch from {s.torch_source}{where}: {s.torch_source_reason}")
        console.print(f"      base {base}")
    console.print(f"pip sources: {redact(options.pip.describe())}")
    for line in dict.fromkeys(s.interpreter_source for s in steps):
        console.print(redact(line))
    for folder in options.pip.local_dirs():
        size = remembered_folder_size(folder, options.root / SOURCE_SIZES)
        if size > LARGE_CONTEXT:
            console.print(
                f"warning: local pip source {folder} holds {size / 1e9:.1f} GB; BuildKit copies a "
                "build context like it into its cache (again for each new context), so builds start "
                "slowly and the cache grows — point --find-links at a folder of just the wheels you "
                "need, or serve the index over http and build with --network host"
            )
    ca = (
        f"CA bundle {options.ca_cert} (BuildKit secret 'ca')" if options.ca_cert else "no CA bundle"
    )
    console.print(f"{ca}; logs in {options.root / options.log_dir}")
    if options.builder is not None or options.builder_driver != DAEMON_DRIVER:
        console.print(describe_builder(options.builder, options.builder_driver))
    revision = options.labels.get(f"{OCI}.revision")
    console.print(
        f"labels: revision {revision[:12]}, created {options.labels.get(f'{OCI}.created', '?')}"
        if revision
        else "labels: no git revision here (not a checkout): no revision/source labels"
    )
    for flag, caches in (("from", options.cache_from), ("to", options.cache_to)):
        for cache in caches:
            console.print(f"cache {flag} {redact(cache.value)}")
    if options.dry_run:
        console.print("dry run: nothing was built")


def prepare_bases(
    steps: Sequence[BuildStep], options: BuildOptions, console: Console
) -> list[BuildStep]:
    if not options.bootstrap_base:
        return list(steps)
    from bakery import base  # noqa: PLC0415

    result = []
    for step in steps:
        suite = _debian_suite(step.variant.base)
        if step.base_context is None and suite:
            made = base.bootstrap_base(base.BaseOptions(suite=suite))
            how = "bootstrapped" if made.created else "reused"
            console.print(f"base {step.variant.base} -> {made.tag} ({how})")
            step = replace(step, base_context=(step.variant.base_ref, made.tag))  # noqa: PLW2901
        result.append(step)
    return result


def _debian_suite(image: str) -> str:
    name, _, tag = image.rpartition(":")
    if not name.endswith("debian"):
        return ""
    return tag.removesuffix("-slim")


@contextmanager
def build_secrets(
    options: BuildOptions, torch_index: str | None = None, python_mirror: str | None = None
) -> Iterator[tuple[engine.Secret, ...]]:
    """Secret files for one build, in a private temp dir removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="bakery-secrets-"))
    try:
        secrets = []
        pipconf = tmp / "pip.conf"
        pipconf.write_text(options.pip.pip_conf(), encoding="utf-8")
        secrets.append(engine.Secret("pipconf", pipconf))
        if options.ca_cert is not None:
            secrets.append(engine.Secret("ca", options.ca_cert))
        if torch_index is not None:
            path = tmp / "torch-index"
            path.write_text(torch_index, encoding="utf-8")
            secrets.append(engine.Secret("torch-index", path))
        if python_mirror is not None:
            path = tmp / "python-mirror"
            path.write_text(python_mirror, encoding="utf-8")
            secrets.append(engine.Secret("python-mirror", path))
        for path in tmp.iterdir():
            path.chmod(0o600)
        yield tuple(secrets)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def named_contexts(step: BuildStep, options: BuildOptions) -> dict[str, Path | str]:
    """Local pip folders as pip-local-N and a mapped base as docker-image://<ref>."""
    named: dict[str, Path | str] = {
        f"pip-local-{i}": d for i, d in enumerate(options.pip.local_dirs())
    }
    if step.base_context is not None:
        named[familiar_name(step.base_context[0])] = f"docker-image://{step.base_context[1]}"
    if options.python_mirror and interpreters.needs_interpreter(step.variant):
        folder = interpreters.mirror_context(options.python_mirror)
        if folder is not None:
            named[interpreters.CONTEXT] = folder
    return named


def familiar_name(ref: str) -> str:
    """docker.io/library/debian:x -> debian:x: the spelling both `buildx build` and `buildx bake`
    match against a FROM line (bake ignores a context named docker.io/library/...)."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def build_spec(
    step: BuildStep, options: BuildOptions, secrets: tuple[engine.Secret, ...]
) -> engine.BuildSpec:
    """What bakery hands to `docker buildx build` for `step` (tags come after verification)."""
    return engine.BuildSpec(
        context=options.root, dockerfile=options.root / step.dockerfile, tags=(),
        build_args=dict(step.build_args), secrets=secrets, labels=dict(options.labels),
        build_contexts=named_contexts(step, options), log_path=step.log_path,
        network=options.network, no_cache=options.no_cache, builder=options.builder,
        cache_from=tuple(c.value for c in options.cache_from),
        cache_to=tuple(c.value for c in options.cache_to),
        load=options.builder_driver != DAEMON_DRIVER,
    )  # fmt: skip


def build_one(
    step: BuildStep, options: BuildOptions, status: _Status, cancel: threading.Event | None = None
) -> BuildResult:
    step.log_path.parent.mkdir(parents=True, exist_ok=True)
    mirror = torch_index_for(step.variant, options)
    torch_index = mirror if mirror != step.variant.index.url else None
    python_mirror = None
    if options.python_mirror and interpreters.needs_interpreter(step.variant):
        python_mirror = interpreters.mirror_secret(options.python_mirror)
    with build_secrets(options, torch_index, python_mirror) as secrets:
        spec = build_spec(step, options, secrets)
        try:
            outcome = engine.build_image(
                spec, on_step=lambda name: status.update(step, name), cancel=cancel
            )
        except DockerError as exc:
            raise as_guard_error(step, exc) from exc
    _check_not_cancelled(step, cancel)
    status.update(step, "verifying the image")
    info = engine.inspect_image(outcome.image_id)
    if not verify_once(step, outcome, info, options.root):
        status.update(step, REUSED)
    _check_not_cancelled(step, cancel)
    engine.tag_image(outcome.image_id, step.image)
    status.update(step, "done")
    return BuildResult(
        step=step, image_id=outcome.image_id, size=info.size if info else 0,
        seconds=outcome.seconds, steps_total=outcome.steps_total,
        steps_cached=outcome.steps_cached, steps_run=outcome.steps_run,
    )  # fmt: skip


def as_guard_error(step: BuildStep, exc: DockerError) -> BakeryError:
    """A failed `bakery-probe guard` build step is a guard failure (exit 5), not a docker one."""
    lines = [line.strip() for line in exc.stderr_tail.splitlines() if "bakery-probe guard:" in line]
    if "bakery-probe guard" not in exc.what or not lines:
        return exc
    found = "; ".join(
        dict.fromkeys(line.split("bakery-probe guard:", 1)[1].strip() for line in lines)
    )
    return GuardError(
        f"{step.variant.id}: the torch guard stopped the build — the installed torch stack is not the variant's",
        found,
        f"a later pip step or the wrong index replaced it; pin it in the stack or fix the sources (log: {step.log_path})",
    )


REUSED = "read-back reused: only the code layers are new over layers already verified"


def verify_once(
    step: BuildStep, outcome: engine.BuildOutcome, info: engine.ImageInfo | None, root: Path
) -> bool:
    """Read the stack back unless only code steps ran over layers already read back and found
    right (bakery.verified); True when it ran."""
    command = verify_command(step)
    key = verified.verification_key(step.variant.id, command, info) if info else ""
    if info and verified.reusable(verified.load_records(root), key, info.layers, outcome.steps_run):
        return False
    verify_image(step, outcome.image_id)
    if info:
        verified.remember(root, key, info.layers)
    return True


def verify_command(step: BuildStep) -> list[str]:
    """The read-back: the torch guard (full) or the Python version (slim), run in the image."""
    v = step.variant
    if v.flavour == "full":
        return [
            "bakery-probe", "guard", "--torch", v.torch, "--accelerator", v.accelerator,
            "--accelerator-version", v.index.version, "--local", v.index.local,
            "--source", step.torch_source,
            *(f"--companion={n}={ver}" for n, ver in v.companions),
        ]  # fmt: skip
    return [
        "python",
        "-c",
        f"import sys; sys.exit(sys.version_info[:2] != {tuple(int(p) for p in v.python.split('.'))})",
    ]


def verify_image(step: BuildStep, image_id: str) -> None:
    """Read the versions back from the built image; refuse to tag on any difference."""
    v = step.variant
    command = verify_command(step)
    # no network: the read-back needs none, and a builder host may have no bridge at all
    result = engine.run_container(image_id, command, timeout=300, network="none")
    if result.return_code != 0:
        raise GuardError(
            f"{step.image} was built but not tagged: its contents differ from variant {v.id}",
            (result.stderr or result.stdout).strip()[-800:],
            f"see the build log {step.log_path}; fix the pins or sources and rebuild",
        )


class _Status:
    """One live line per variant: the current step and the elapsed time."""

    def __init__(self, steps: Sequence[BuildStep], console: Console) -> None:
        self._lock = threading.Lock()
        self._state = {s.variant.id: ("waiting", 0.0) for s in steps}
        self._console = console
        self._live: Live | None = None

    def update(self, step: BuildStep, text: str) -> None:
        with self._lock:
            _, started = self._state[step.variant.id]
            self._state[step.variant.id] = (text, started or time.monotonic())
            if self._live is not None:
                self._live.update(self.render())
            elif not self._console.is_terminal and text in ("done", "verifying the image", REUSED):
                self._console.print(f"{step.variant.id}: {text}")

    def render(self) -> Table:
        table = Table.grid(padding=(0, 2))
        now = time.monotonic()
        for vid, (text, started) in self._state.items():
            elapsed = f"{now - started:5.0f}s" if started else "     "
            table.add_row(vid, elapsed, text[:100])
        return table

    @contextmanager
    def live(self) -> Iterator[None]:
        if not self._console.is_terminal:
            yield
            return
        with Live(self.render(), console=self._console, refresh_per_second=4) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None


def _check_not_cancelled(step: BuildStep, cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise BakeryError(f"{step.variant.id}: interrupted; {step.image} was not tagged")


def run_builds(
    steps: Sequence[BuildStep], options: BuildOptions, console: Console
) -> list[BuildResult]:
    status = _Status(steps, console)
    for s in steps:
        console.print(f"{s.variant.id}: log {s.log_path}")
    cancel = threading.Event()
    with status.live(), ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = [pool.submit(build_one, s, options, status, cancel) for s in steps]
        results, errors = [], []
        try:
            for future in futures:
                try:
                    results.append(future.result())
                except BakeryError as exc:
                    errors.append(exc)
        except KeyboardInterrupt:
            # Ctrl+C reaches only this thread: stop the workers' builds and start no more.
            pool.shutdown(wait=False, cancel_futures=True)
            engine.cancel_builds(cancel)
            raise
    if errors:
        if results:
            report_results(results, options, console)
        raise errors[0]
    return results


def report_results(results: Sequence[BuildResult], options: BuildOptions, console: Console) -> None:
    if options.json:
        print(json.dumps([result_record(r) for r in results], indent=2))
        return
    table = Table(title="built")
    for column in ("variant", "tag", "image id", "size", "time", "cached steps", "torch from"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.step.variant.id, r.step.image, r.image_id.removeprefix("sha256:")[:12],
            f"{r.size / 1e9:.2f} GB", f"{r.seconds:.0f}s", f"{r.steps_cached}/{r.steps_total}",
            r.step.torch_source,
        )  # fmt: skip
    console.print(table)


def result_record(r: BuildResult) -> dict[str, object]:
    return {
        "variant": r.step.variant.id,
        "image": r.step.image,
        "image_id": r.image_id,
        "size": r.size,
        "seconds": round(r.seconds, 1),
        "steps_total": r.steps_total,
        "steps_cached": r.steps_cached,
        "steps_run": list(r.steps_run),
        "torch_source": r.step.torch_source,
        "log": str(r.step.log_path),
    }
