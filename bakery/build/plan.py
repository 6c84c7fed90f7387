"""Plan before acting: the default variant, the torch source, one frozen `BuildStep` per variant,
the printed plan, and bases mapped or bootstrapped before any build."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from bakery import interpreters
from bakery.build.options import BuildOptions, torch_index_for
from bakery.build.sizes import LARGE_CONTEXT, SOURCE_SIZES, remembered_folder_size
from bakery.buildkit import DAEMON_DRIVER, describe_builder
from bakery.errors import UsageError, redact
from bakery.host import detect_host_target
from bakery.localwheels import check_local_wheels
from bakery.matrix import Selection, Variant, load_matrix
from bakery.pipsources import check_local_dirs
from bakery.release import OCI
from bakery.render import find_drift, render_variant


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
            image=v.ref(repository), torch_source=source, torch_source_reason=reason,
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


def default_selection(matrix_path: Path, console: Console) -> Selection:
    """No selection flags: the host target's default variant only, and how to build the rest."""
    target, reason = detect_host_target()
    variants = load_matrix(matrix_path).variants
    chosen = default_variant(variants, target)
    count = sum(v.target == target for v in variants)
    console.print(
        f"no selection given: building [bold]{chosen.id}[/], the default of {target} ({reason}); "
        f"`--target {target}` builds all {count} {target} variants, `python3 build.py list` shows every variant"
    )
    return Selection(variants=(chosen.id,))
