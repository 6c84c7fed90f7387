"""2. A second variant of the same stack: bytes downloaded and time, with bakery's pip cache mount
vs the same Dockerfile with the cache mount removed, and pip vs uv (a content-keyed cache).

Both sides build bakery's pip step (Dockerfile.in: `RUN --mount=type=cache,id=bakery-pip,
target=/root/.cache/pip,sharing=locked … with-build-secrets pip install -c constraints.txt -r
requirements.txt`), same secrets and local sources; the baseline's Dockerfile is the same text
with that one `--mount=type=cache` line removed. The cache id is this run's own (not bakery-pip),
so the cache starts empty and the benchmark can prune it afterwards.

The uv side installs the same requirements with `uv pip install` (uv==0.13.9 from a `uv-tool`
stage, bind-mounted; UV_CACHE_DIR in its own cache mount, UV_LINK_MODE=copy,
UV_PYTHON_DOWNLOADS=never, UV_COMPILE_BYTECODE=1 as pip compiles too, `--index-strategy
unsafe-best-match` as pip picks the best match across its indexes), same constraints, secrets and
local sources: with-build-secrets translates the pip configuration into uv's variables. Without
caching headers uv also refetches what it cached, so this side, like Dockerfile.in, resolves offline
from its cache first (an offline dry run decides) and online only for what the cache lacks. Install time is
measured inside the step (`date +%s%N` around the install), so the build's other steps and the
uv-tool stage do not count; "cold" is the first variant's install, with an empty cache.

A "variant" here is the same Dockerfile with a different `ENV BENCH_VARIANT=…` before the pip
step — what a second Python, flavour or accelerator does to bakery's real Dockerfiles
(`ENV BAKERY_VARIANT` differs, so no layer below the pip step can be reused). Real second Pythons
cannot be built on this machine: the only local torch wheel is cp311 and python-build-standalone
(GitHub) is unreachable.

Protocol: one first variant per side (untimed; it fills the cache on bakery's side), then per
repetition a fresh second variant on each side, interleaved. Bytes downloaded are the eth0 receive
counter of the pip step's own network namespace (BuildKit gives every RUN one; read with
`cat /proc/net/dev` at the end of the step), so other traffic on the host is not counted.
--quick installs only the part of the application stack that does not pull torch (diffusers,
transformers, safetensors, pillow and their dependencies); the full run installs the variant's
torch constraint and whole requirements.txt (torch itself comes from the local wheel, so its
bytes are never downloaded on either side).
"""

from __future__ import annotations

import functools
import re
import shutil
import ssl
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import tools
from bench.harness import (
    BAKERY,
    BASELINE,
    BenchResult,
    Comparison,
    Sample,
    Series,
    run_interleaved,
)
from bench.tools import CPU_VARIANT, Context

NAME = "variant"
TITLE = "Second variant of the same stack: pip cache mount vs none, pip vs uv"
UV = "uv"  # the third side: bakery's steps with uv instead of pip
UV_VERSION = "0.13.9"
INSTALL_NS = re.compile(r"bench-install-ns (\d+)")
TORCH_DEPENDENT = {"accelerate", "peft"}  # they require torch: PyPI's is a multi-GB CUDA build
NETDEV = re.compile(r"^\s*(\w+):\s*(\d+)\s+(\d+)")

DOCKERFILE = """\
# bench/variant.py: bakery's pip step ({side}). Generated for one run; do not edit.
FROM scratch AS pip-local-0
FROM scratch AS pip-local-1
FROM scratch AS pip-local-2
FROM scratch AS pip-local-3
FROM {base} AS system
SHELL ["/bin/sh", "-eu", "-c"]
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
       ca-certificates python3 python3-venv procps tini
COPY --chmod=0755 with-build-secrets /usr/local/bin/with-build-secrets
{uv_stage}
FROM system
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV BENCH_VARIANT={variant}
COPY constraints.txt requirements.txt /opt/bakery/
{steps}"""

MOUNTS = """\
--mount=type=secret,id=ca \\
    --mount=type=secret,id=pipconf \\
    --mount=type=bind,from=pip-local-0,target=/mnt/pip-local-0 \\
    --mount=type=bind,from=pip-local-1,target=/mnt/pip-local-1 \\
    --mount=type=bind,from=pip-local-2,target=/mnt/pip-local-2 \\
    --mount=type=bind,from=pip-local-3,target=/mnt/pip-local-3 \\
"""

STEP = """\
RUN {cache}{mounts}    start=$(date +%s%N) \\
    && {command} \\
    && echo "bench-install-ns $(( $(date +%s%N) - start ))" \\
    && cat /proc/net/dev
"""

UV_STAGE = f"""\
FROM system AS uv-tool
RUN {MOUNTS}    python3 -m venv /opt/uv && with-build-secrets /opt/uv/bin/pip install uv=={UV_VERSION}
"""

PIP_INSTALL = "with-build-secrets pip install {args}"
# What Dockerfile.in's uv_install renders to (offline from uv's cache first, online if it lacks
# something): the same text, so the bench measures bakery's own steps.
UV_INSTALL = """\
set -- /opt/uv/bin/uv pip install --python /opt/venv/bin/python \\
      --index-strategy unsafe-best-match {args} \\
    && export UV_CACHE_DIR=/root/.cache/uv UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
UV_COMPILE_BYTECODE=1 \\
    && if with-build-secrets "$@" --offline --dry-run >/dev/null 2>&1; \
then set -- "$@" --offline; \\
       else echo "uv: not everything is in its cache: resolving online" >&2; fi \\
    && with-build-secrets \"$@\""""


def cache_line(cache_id: str, side: str = BAKERY) -> str:
    if side == UV:
        return (
            f"--mount=type=cache,id={cache_id},target=/root/.cache/uv,sharing=locked \\\n    "
            "--mount=type=bind,from=uv-tool,source=/opt/uv,target=/opt/uv \\\n    "
        )
    return f"--mount=type=cache,id={cache_id},target=/root/.cache/pip,sharing=locked \\\n    "


def render(side: str, variant: str, cache_id: str | None, full: bool) -> str:
    """The Dockerfile of one side: BASELINE (pip, no cache), BAKERY (pip + cache) or UV."""
    cache = cache_line(cache_id, side) if cache_id else ""
    install = UV_INSTALL if side == UV else PIP_INSTALL
    steps = []
    args = ["-c /opt/bakery/constraints.txt -r /opt/bakery/requirements.txt"]
    if full:
        args.insert(0, "-c /opt/bakery/constraints.txt torch")
    for arg in args:
        command = install.format(args=arg)
        steps.append(STEP.format(cache=cache, mounts=MOUNTS, command=command))
    return DOCKERFILE.format(
        side=side, base=tools.BASE_IMAGE, variant=variant, steps="\n".join(steps),
        uv_stage=UV_STAGE if side == UV else "",
    )  # fmt: skip


def stack_requirements(root: Path, full: bool) -> str:
    text = (root / "images" / CPU_VARIANT / "requirements.txt").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not full:
        lines = [
            ln for ln in lines if re.split(r"[=<>!~ ]", ln, maxsplit=1)[0] not in TORCH_DEPENDENT
        ]
    return "\n".join(lines) + "\n"


def received_bytes(log_text: str) -> int:
    """Sum of eth0 receive counters printed by the pip steps (one netns per RUN step)."""
    total = 0
    for line in log_text.splitlines():
        rest = re.sub(r"^#\d+ \d+\.\d+ ", "", line)
        match = NETDEV.match(rest)
        if match and match.group(1) == "eth0":
            total += int(match.group(2))
    return total


def install_seconds(log_text: str) -> float:
    """Sum of the install commands' own durations printed by the steps (`bench-install-ns N`)."""
    return sum(int(m.group(1)) for m in INSTALL_NS.finditer(log_text)) / 1e9


def pip_counts(log_text: str) -> dict[str, int]:
    return {
        "downloading": len(re.findall(r" Downloading \S+", log_text)),
        "using_cached": len(re.findall(r" Using cached \S+", log_text)),
    }


CACHE_HEADERS = ("cache-control", "etag", "last-modified", "expires")


def http_cache_headers(package: str) -> dict[str, Any]:
    """The HTTP caching headers PyPI's answers carry here (pip caches only what they allow).

    Evidence for the notes: an intercepting proxy that strips Cache-Control, ETag and
    Last-Modified leaves pip's HTTP cache nothing it may store, so a cache mount stays empty.
    """
    from bakery.pipsources import find_ca_bundle  # noqa: PLC0415

    ca = find_ca_bundle(None)
    context = ssl.create_default_context(cafile=str(ca) if ca else None)
    found: dict[str, Any] = {}
    try:
        page_url = f"https://pypi.org/simple/{package}/"
        with urllib.request.urlopen(page_url, timeout=20, context=context) as page:
            html = page.read().decode("utf-8", "replace")
            found[page_url] = {h: page.headers.get(h) for h in CACHE_HEADERS}
        match = re.search(r'href="(https://[^"#]+\.whl)', html)
        if match:
            head = urllib.request.Request(match.group(1), method="HEAD")  # noqa: S310 - https only
            with urllib.request.urlopen(head, timeout=20, context=context) as wheel:  # noqa: S310
                found[match.group(1)] = {h: wheel.headers.get(h) for h in CACHE_HEADERS}
    except (OSError, ValueError) as exc:
        found["error"] = str(exc)
    return found


def _counts(log_text: str) -> str:
    counts = pip_counts(log_text)
    return f"{counts['downloading']} downloaded, {counts['using_cached']} from its cache"


def prepare(ctx: Context, full: bool) -> Path:
    context = ctx.project_dir("variant")
    shutil.copy(ctx.root / "bakery" / "data" / "with-build-secrets", context)
    shutil.copy(ctx.root / "images" / CPU_VARIANT / "constraints.txt", context)
    (context / "requirements.txt").write_text(stack_requirements(ctx.root, full), encoding="utf-8")
    return context


SIDE_LABELS = {BASELINE: "pip, no cache mount", BAKERY: "pip, cache mount", UV: "uv, cache mount"}


def run(ctx: Context) -> BenchResult:
    reps = ctx.reps(quick=2, full=3)
    full = not ctx.quick
    result = BenchResult(NAME, TITLE, method=__doc__ or "")
    context = prepare(ctx, full)
    cache_ids = {BAKERY: ctx.name("pip"), UV: ctx.name("uv")}
    for cache_id in cache_ids.values():
        ctx.on_cleanup(f"cache mount {cache_id}", functools.partial(_prune, ctx, cache_id))
    contexts, secrets = tools.host_pip_build_inputs(ctx.work / "secrets")
    result.params = {
        "repetitions": reps,
        "packages": (context / "requirements.txt").read_text(encoding="utf-8").split(),
        "torch_step": full,
        "bakery_cache_mount": cache_line(cache_ids[BAKERY]).split(" \\")[0],
        "uv_cache_mount": cache_line(cache_ids[UV], UV).split(" \\")[0],
        "uv_install": " ".join(UV_INSTALL.replace("\\\n", " ").split()),
        "baseline": "the same Dockerfile without the --mount=type=cache line",
    }

    def build(side: str, variant: str, log_name: str) -> tuple[tools.BuildRun, str]:
        dockerfile = context / f"Dockerfile.{log_name}"
        dockerfile.write_text(render(side, variant, cache_ids.get(side), full), encoding="utf-8")
        done = tools.build(
            context, dockerfile, ctx.work / "logs" / f"variant-{log_name}.log",
            contexts=contexts, secrets=secrets,
        )  # fmt: skip
        ctx.on_cleanup(f"image {done.image_id[:19]}", lambda: tools.remove_untagged(done.image_id))
        return done, done.log_path.read_text(encoding="utf-8", errors="replace")

    cold = first_variants(ctx, result, build)
    measure_second_variants(ctx, result, build, reps)
    result.comparisons.insert(0, cold)
    explain_pip_cache(result)
    return result


Builder = Callable[[str, str, str], tuple[tools.BuildRun, str]]


def first_variants(ctx: Context, result: BenchResult, build: Builder) -> Comparison:
    """One first variant per side, empty caches: their install time is the cold install time."""
    ctx.log("variant: first variant on each side (fills the caches; cold install time)")
    cold = Comparison(
        "cold install time (first variant, empty cache)", "s",
        Series(SIDE_LABELS[BAKERY]), Series(SIDE_LABELS[UV]),
        "the install commands' own time inside the steps; ratio above 1: uv is faster",
    )  # fmt: skip
    for side in (BASELINE, BAKERY, UV):
        first, text = build(side, f"{ctx.run_id}-first-{side}", f"first-{side}")
        result.add_value(
            f"{SIDE_LABELS[side]}: first variant bytes downloaded", received_bytes(text), "B",
            f"build {first.seconds:.0f} s, install {install_seconds(text):.1f} s; "
            f"pip: {_counts(text)}",
        )  # fmt: skip
        if side in (BAKERY, UV):
            cold.side(BAKERY if side == UV else BASELINE).samples.append(
                Sample(install_seconds(text))
            )
    return cold


def measure_second_variants(ctx: Context, result: BenchResult, build: Builder, reps: int) -> None:
    """Per repetition a fresh second variant on each side, interleaved."""
    pip_cache = (
        result.compare("second variant build time", "s", "no cache mount", "bakery cache mount"),
        result.compare(
            "second variant bytes downloaded", "B", "no cache mount", "bakery cache mount"
        ),
    )
    uv_cache = (
        result.compare("second variant install time: pip vs uv", "s", "pip", "uv"),
        result.compare("second variant bytes downloaded: pip vs uv", "B", "pip", "uv"),
    )

    def side_fn(side: str) -> Callable[[int], None]:
        def one(rep: int) -> None:
            done, text = build(side, f"{ctx.run_id}-second-{rep}-{side}", f"second-{rep}-{side}")
            extra = {"pip": pip_counts(text), "steps_run": len(done.steps_run)}
            got = received_bytes(text)
            if side != UV:
                pip_cache[0].side(side).samples.append(Sample(done.seconds, extra))
                pip_cache[1].side(side).samples.append(Sample(got, extra))
            if side != BASELINE:
                uv_side = BAKERY if side == UV else BASELINE
                uv_cache[0].side(uv_side).samples.append(Sample(install_seconds(text), extra))
                uv_cache[1].side(uv_side).samples.append(Sample(got, extra))

        return one

    ctx.log(f"variant: {reps} second variant(s) per side, interleaved")
    run_interleaved({side: side_fn(side) for side in (BASELINE, BAKERY, UV)}, reps, ctx.log)


def explain_pip_cache(result: BenchResult) -> None:
    """Notes: why pip's cache mount saved nothing (if so), and what the bytes count."""
    downloaded = next(c for c in result.comparisons if c.name == "second variant bytes downloaded")
    hits = sum(s.extra["pip"]["using_cached"] for s in downloaded.bakery.samples)
    if hits == 0:
        headers = http_cache_headers("diffusers")
        result.params["http_cache_headers"] = headers
        stripped = all(
            not any(v.get(h) for h in CACHE_HEADERS)
            for v in headers.values()
            if isinstance(v, dict)
        )
        result.notes.append(
            "pip printed no `Using cached` line on bakery's side: the cache mount held nothing "
            "pip would reuse."
            + (
                " The HTTPS proxy here answers without Cache-Control, ETag or Last-Modified "
                "(checked on PyPI's index page and a wheel, see params.http_cache_headers), so "
                "pip's HTTP cache may store nothing; pip caches only wheels it builds itself. "
                "Behind a proxy that keeps PyPI's headers (Cache-Control: max-age=365000000, "
                "immutable) the cache mount would be filled; not measurable here."
                if stripped
                else ""
            )
        )
    result.notes.append(
        "Bytes are everything the install step's network namespace received (package files and "
        "index pages through the HTTPS proxy); local wheels and indexes are bind mounts, not "
        "network. uv, too, treats what it cached as stale without those headers and fetches it again; "
        "its side resolves offline from the cache first (as Dockerfile.in does), so a second "
        "variant downloads only what the cache lacks."
    )


def _prune(ctx: Context, cache_id: str) -> None:
    pruned = tools.prune_cache_mounts(cache_id)
    ctx.log(f"pruned {pruned} BuildKit cache mount(s) of {cache_id}")
