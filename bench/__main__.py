"""`python -m bench [NAME ...] [--quick]`: run the benchmarks, write JSON, render the report.

python -m bench --quick                 all of them, few repetitions (a few minutes' worth)
python -m bench rebuild enter           only these
python -m bench report FILE.json        re-render docs/benchmarks.md and the chart from JSON
python -m bench --list                  the benchmarks and what each measures
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from bench import harness, tools
from bench.harness import STATUS_FAILED, BenchResult

BENCHMARKS = (
    ("rebuild", "bench.rebuild"),
    ("variant", "bench.variant"),
    ("offline", "bench.offline"),
    ("compression", "bench.compression"),
    ("waste", "bench.waste"),
    ("sharing", "bench.sharing"),
    ("enter", "bench.enter"),
)
RESULTS = tools.ROOT / "bench" / "results"
DOC = tools.ROOT / "docs" / "benchmarks.md"
CHART = tools.ROOT / "docs" / "benchmarks.png"


def module(name: str) -> ModuleType:
    return importlib.import_module(dict(BENCHMARKS)[name])


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(n for n, _ in BENCHMARKS)}",
    )
    p.add_argument("--quick", action="store_true", help="fewer repetitions, smaller inputs")
    p.add_argument("--reps", type=int, default=None, help="repetitions for every benchmark")
    p.add_argument(
        "--output", type=Path, default=None, help="result JSON (default: bench/results/)"
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="re-render docs/benchmarks.md even for a subset (default: only when all ran)",
    )
    p.add_argument("--no-report", action="store_true", help="do not re-render docs/benchmarks.md")
    p.add_argument("--keep-work", action="store_true", help="keep the scratch directory")
    p.add_argument(
        "--keep-cache",
        action="store_true",
        help="leave the BuildKit cache records the run created (default: removed by id; on a "
        "daemon shared with other builds, records they made during the run are removed too)",
    )
    p.add_argument(
        "--min-free-gb",
        type=float,
        default=None,
        help=f"refuse to start with less free disk (default: {tools.MIN_FREE_GB['quick']} quick, "
        f"{tools.MIN_FREE_GB['full']} full)",
    )
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in dict(BENCHMARKS)]
    if unknown:
        p.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(dict(BENCHMARKS))}"
        )
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be 1 or more")
    return args


def run_one(name: str, ctx: tools.Context) -> BenchResult:
    mod = module(name)
    started = time.monotonic()
    ctx.log(f"== {name}: {mod.TITLE}")
    try:
        result: BenchResult = mod.run(ctx)
    except (tools.BenchError, OSError, ValueError, KeyError) as exc:
        ctx.log(f"{name} failed: {exc}")
        ctx.log(traceback.format_exc())
        result = BenchResult(name, mod.TITLE, status=STATUS_FAILED, reason=str(exc)[-2000:])
    result.seconds = time.monotonic() - started
    ctx.log(f"== {name}: {result.status} in {result.seconds:.0f}s")
    return result


def default_output(quick: bool, names: list[str]) -> Path:
    """bench/results/<quick|full>[-<names>]-<date>.json (names only for a subset)."""
    stamp = time.strftime("%Y-%m-%d")
    subset = "" if not names else "-" + "-".join(names)
    return RESULTS / f"{'quick' if quick else 'full'}{subset}-{stamp}.json"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        from bench import report  # noqa: PLC0415 - matplotlib only when rendering

        source = Path(argv[1]) if len(argv) > 1 else report.latest(RESULTS)
        report.render(harness.read_results(source), source, DOC, CHART)
        print(f"wrote {DOC} and {CHART} from {source}", file=sys.stderr)
        return 0
    args = parse_args(argv)
    if args.list:
        for name, _ in BENCHMARKS:
            print(f"{name:12} {module(name).TITLE}")
        return 0
    names = args.names or [n for n, _ in BENCHMARKS]
    harness.default_python_environment()
    mode = "quick" if args.quick else "full"
    min_free = args.min_free_gb if args.min_free_gb is not None else tools.MIN_FREE_GB[mode]
    free = tools.require_free_disk(int(min_free * 1e9))  # before anything is created
    work = Path(tempfile.mkdtemp(prefix="bakery-bench-"))
    ctx = tools.Context(
        root=tools.ROOT, work=work, run_id=tools.new_run_id(), quick=args.quick,
        reps_override=args.reps,
    )  # fmt: skip
    output = args.output or default_output(args.quick, args.names)
    data: dict[str, Any] = {
        "schema": harness.SCHEMA,
        "created": harness.now_iso(),
        "mode": mode,
        "command": ["python", "-m", "bench", *argv],
        "run_id": ctx.run_id,
        "machine": harness.machine_info(tools.ROOT),
        "ratio_meaning": harness.RATIO_MEANING,
        "disk": {"free_bytes_before": {str(k): v for k, v in free.items()}},
        "benchmarks": {},
    }
    ctx.log(f"bench run {ctx.run_id}: {', '.join(names)} ({mode}); scratch {work}")
    run_all(names, ctx, output, data, keep_cache=args.keep_cache, keep_work=args.keep_work)
    if not harness.run_is_complete(data, names):
        ctx.log(f"incomplete run: results in {harness.partial_path(output)}; {output} untouched")
        return 1
    harness.publish_results(output, data)
    ctx.log(f"wrote {output}")
    if (args.report or not args.names) and not args.no_report:
        from bench import report  # noqa: PLC0415

        report.render(data, output, DOC, CHART)
        ctx.log(f"wrote {DOC} and {CHART}")
    return 0


def run_all(
    names: list[str], ctx: tools.Context, output: Path, data: dict[str, Any], *,
    keep_cache: bool, keep_work: bool,
) -> None:  # fmt: skip
    """Run the benchmarks (results so far in the partial file), then remove what they made."""
    data["disk"]["docker_system_df_before"] = tools.system_df()
    cache_before = tools.build_cache_ids()
    try:
        with tools.exclusive_run():
            for name in names:
                data["benchmarks"][name] = run_one(name, ctx).to_json()
                data["load_average_after"] = harness.load_average()
                harness.save_progress(output, data)  # a crash keeps what was done, aside
    finally:
        ctx.log("cleaning up")
        ctx.cleanup()
        if not keep_cache:
            pruned = tools.prune_new_cache(cache_before, ctx.log)
            data["disk"]["build_cache_records_removed"] = pruned
        if not keep_work:
            shutil.rmtree(ctx.work, ignore_errors=True)
        data["disk"]["docker_system_df_after"] = tools.system_df()
        harness.save_progress(output, data)


def entry() -> int:
    try:
        return main()
    except tools.BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (what this run created was cleaned up)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(entry())
