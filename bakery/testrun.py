"""`python build.py test`: run the image suites against the selected variants' images.

Runs `pytest tests/image --variant ID` once per variant (so a crash in one image cannot hide
another's results), reads the JUnit XML, and reports variant × suite -> passed / failed /
skipped (with the reason). Results are written as JSON and JUnit XML, atomically, and every
passing image id is recorded so that `push` can refuse untested images.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from bakery import engine
from bakery.errors import EXIT_FAILED, EXIT_OK
from bakery.matrix import Variant, load_matrix, select_variants
from bakery.render import write_atomic
from bakery.ui import err_console, out_console

SUITES = {
    "test_probe": "gpu-probing",
    "test_pairing": "version-pairing",
    "test_training": "training-smoke",
}
STATE_FILE = Path(".bakery/state/tested.json")


@dataclass(frozen=True)
class SuiteResult:
    variant: str
    suite: str
    status: str  # passed | failed | skipped | not-run
    passed: int
    failed: int
    skipped: int
    detail: str  # first failure message or skip reason


def add_test_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    p.add_argument(
        "--results",
        type=Path,
        default=Path(".bakery/test-results"),
        help="where to write results.json and junit XML",
    )
    p.add_argument("--repository", default=None, help="override the matrix's repository")
    p.add_argument(
        "--pytest-arg", action="append", default=[], help="extra argument for pytest (repeatable)"
    )


def cmd_test(args: argparse.Namespace) -> int:
    from bakery.cli import selection_from_args  # noqa: PLC0415 - avoids an import cycle

    matrix = load_matrix(args.matrix)
    variants = select_variants(matrix, selection_from_args(args))
    root = args.matrix.resolve().parent
    console = err_console()
    results: list[SuiteResult] = []
    junit_dir = root / args.results
    for v in variants:
        image = f"{args.repository or v.project.repository}:{v.tag}"
        console.print(f"{v.id}: testing {image}")
        results += run_variant(v, image, root, junit_dir, args)
    write_results(results, junit_dir / "results.json")
    record_tested(variants, results, args, root)
    report(results, args.json)
    return EXIT_FAILED if any(r.status in ("failed", "not-run") for r in results) else EXIT_OK


def run_variant(
    v: Variant, image: str, root: Path, junit_dir: Path, args: argparse.Namespace
) -> list[SuiteResult]:
    if engine.inspect_image(image) is None:
        return [
            SuiteResult(
                v.id,
                s,
                "not-run",
                0,
                0,
                0,
                f"{image} is not built (python build.py --variant {v.id})",
            )
            for s in SUITES.values()
        ]
    junit_dir.mkdir(parents=True, exist_ok=True)
    junit = junit_dir / f"{v.id}.xml"
    with tempfile.NamedTemporaryFile(suffix=".xml", dir=junit_dir, delete=False) as tmp:
        partial = Path(tmp.name)
    command = [
        sys.executable, "-m", "pytest", str(root / "tests" / "image"), "--variant", v.id,
        f"--junitxml={partial}", "-q", "-rs", "-p", "no:cacheprovider",
        *(["--repository", args.repository] if args.repository else []), *args.pytest_arg,
    ]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=3600, check=False
    )
    err_console().print(
        f"{v.id}: pytest exited {proc.returncode} after {time.monotonic() - started:.0f}s"
    )
    if not partial.exists() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        tail = (proc.stdout + proc.stderr)[-1500:]
        return [
            SuiteResult(v.id, s, "failed", 0, 1, 0, f"pytest did not run: {tail}")
            for s in SUITES.values()
        ]
    partial.replace(junit)
    return parse_junit(v.id, junit)


def parse_junit(variant: str, path: Path) -> list[SuiteResult]:
    tree = ET.parse(path)  # noqa: S314 - our own pytest output
    counts: dict[str, dict[str, int]] = {
        s: {"passed": 0, "failed": 0, "skipped": 0} for s in SUITES.values()
    }
    failures: dict[str, str] = {}
    skips: dict[str, str] = {}
    for case in tree.iter("testcase"):
        suite = SUITES.get(case.get("classname", "").rsplit(".", 1)[-1])
        if suite is None:
            continue
        outcome, message = _case_outcome(case)
        counts[suite][outcome] += 1
        if outcome == "failed":
            failures.setdefault(suite, f"{case.get('name')}: {message}")
        elif outcome == "skipped":
            skips.setdefault(suite, message)
    details = {**skips, **failures}
    return [_suite_result(variant, suite, c, details.get(suite, "")) for suite, c in counts.items()]


def _case_outcome(case: ET.Element) -> tuple[str, str]:
    for tag, outcome in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
        element = case.find(tag)
        if element is not None:
            return outcome, (element.get("message") or element.text or "").strip()[:300]
    return "passed", ""


def _suite_result(variant: str, suite: str, c: dict[str, int], detail: str) -> SuiteResult:
    if c["failed"]:
        status = "failed"
    elif c["passed"]:
        status = "passed"
    elif c["skipped"]:
        status = "skipped"
    else:
        status, detail = "not-run", "no test of this suite ran"
    return SuiteResult(variant, suite, status, c["passed"], c["failed"], c["skipped"], detail)


def write_results(results: Sequence[SuiteResult], path: Path) -> None:
    records = [r.__dict__ for r in results]
    write_atomic(path, json.dumps(records, indent=2) + "\n")


def record_tested(
    variants: Sequence[Variant],
    results: Sequence[SuiteResult],
    args: argparse.Namespace,
    root: Path,
) -> None:
    """Remember the image ids whose suites all passed (or skipped with a reason)."""
    state_path = root / STATE_FILE
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else {}
    for v in variants:
        mine = [r for r in results if r.variant == v.id]
        if not mine or any(r.status in ("failed", "not-run") for r in mine):
            continue
        info = engine.inspect_image(f"{args.repository or v.project.repository}:{v.tag}")
        if info is not None:
            state[info.id] = {
                "variant": v.id,
                "tested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "suites": {r.suite: r.status for r in mine},
            }
    write_atomic(state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")


def report(results: Sequence[SuiteResult], as_json: bool) -> None:
    if as_json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
        return
    table = Table(title="image test results")
    for column in ("variant", "suite", "result", "passed", "failed", "skipped", "detail"):
        table.add_column(column, overflow="fold")
    styles = {"passed": "green", "failed": "bold red", "skipped": "yellow", "not-run": "red"}
    for r in results:
        table.add_row(
            r.variant,
            r.suite,
            f"[{styles[r.status]}]{r.status}[/]",
            str(r.passed),
            str(r.failed),
            str(r.skipped),
            r.detail[:160],
        )
    out_console().print(table)
