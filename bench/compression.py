"""4. Bundle compression: zstd as bakery uses it vs gzip, time and size, on the cpu image.

bakery's bundles pipe `docker save` through `zstd -3 -T0` (bakery.bundle: DEFAULT_LEVEL and
`compress_to`); the baseline is `docker save | gzip` (gzip's default level 6), what most
"move an image without a registry" guides show. To measure the compressors and not the daemon,
the image is saved once to a tar file (page-cached after the first read) and each repetition
compresses that file to disk with each tool, interleaved, then decompresses the result to
/dev/null. The time of the `docker save` itself, common to both, is reported separately.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from bench import tools
from bench.harness import BAKERY, BASELINE, BenchResult, Sample, run_interleaved
from bench.tools import CPU_VARIANT, Context

NAME = "compression"
TITLE = "Bundle compression: zstd -3 -T0 (bakery) vs gzip"
ZSTD = ["zstd", "-3", "-T0", "-q", "-c"]  # bakery.bundle compress_to: -{DEFAULT_LEVEL} -T0 -c
GZIP = ["gzip", "-c"]
UNZSTD = ["zstd", "-d", "-q", "-c"]
GUNZIP = ["gzip", "-d", "-c"]


def cpu_image(ctx: Context) -> str:
    from bakery.matrix import load_matrix  # noqa: PLC0415

    matrix = load_matrix(ctx.root / "matrix.toml")
    return f"{matrix.project.repository}:{CPU_VARIANT}"


def run(ctx: Context) -> BenchResult:
    reps = ctx.reps(quick=2, full=3)
    image = cpu_image(ctx)
    result = BenchResult(NAME, TITLE, method=__doc__ or "")
    facts = tools.image_facts(image)
    if facts is None:
        result.status = "skipped"
        result.reason = f"{image} is not built here (python build.py --variant {CPU_VARIANT})"
        return result
    work = ctx.work / "compression"
    work.mkdir(parents=True, exist_ok=True)
    tar = work / "image.tar"
    ctx.log(f"compression: docker save {image}")
    save_seconds = tools.timed_shell(f"docker save {shlex.quote(image)} > {shlex.quote(str(tar))}")
    tar_bytes = tar.stat().st_size
    result.params = {
        "image": image,
        "image_id": facts.id,
        "repetitions": reps,
        "bakery": " ".join(ZSTD),
        "baseline": " ".join(GZIP),
    }
    result.add_value("docker save (common to both)", save_seconds, "s")
    result.add_value("uncompressed tar", tar_bytes, "B")

    size = result.compare("compressed size", "B", "gzip", "zstd -3 -T0")
    compress = result.compare("compression time", "s", "gzip", "zstd -3 -T0")
    decompress = result.compare("decompression time", "s", "gzip -d", "zstd -d")

    def one(side: str, tool: list[str], untool: list[str]) -> Callable[[int], None]:
        def measure(rep: int) -> None:
            out = work / f"image.tar.{side}"
            seconds = tools.timed_shell(
                f"{shlex.join(tool)} < {shlex.quote(str(tar))} > {shlex.quote(str(out))}"
            )
            nbytes = out.stat().st_size
            back = tools.timed_shell(f"{shlex.join(untool)} < {shlex.quote(str(out))} > /dev/null")
            out.unlink()
            extra = {"ratio_to_tar": round(nbytes / tar_bytes, 4)}
            size.side(side).samples.append(Sample(nbytes, extra))
            compress.side(side).samples.append(Sample(seconds))
            decompress.side(side).samples.append(Sample(back))

        return measure

    run_interleaved(
        {BASELINE: one(BASELINE, GZIP, GUNZIP), BAKERY: one(BAKERY, ZSTD, UNZSTD)}, reps, ctx.log
    )
    tar.unlink()
    result.notes.append(
        "zstd -T0 uses every core (2 here); gzip is single-threaded, as `docker save | gzip` is."
    )
    return result
