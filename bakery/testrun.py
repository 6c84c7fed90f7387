"""`python build.py test`: run the image suites against the selected variants' images.

Runs `pytest tests/image --variant ID` once per variant (so a crash in one image cannot hide
another's results), reads the JUnit XML, and reports variant × suite -> passed / failed /
skipped (with the reason). Results are written as JSON and JUnit XML, atomically, and every
passing image id is recorded so that `push` can refuse untested images.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from bakery import engine
from bakery.atomicfile import write_atomic
from bakery.defaults import PYTEST_TIMEOUT, RESULTS_DIR
from bakery.errors import EXIT_FAILED, EXIT_OK
from bakery.matrix import Selection, Variant, load_selection
from bakery.ui import err_console, out_console

SUITES = {
    "test_probe": "gpu-probing",
    "test_pairing": "version-pairing",
    "test_training": "training-smoke",
}
STATE_FILE = Path(".bakery/state/tested.json")
# Suites that do not apply to a flavour: every case skips by design there (test_training.py: a
# slim image's smoke run needs a host environment, which tests/slim provides). Any other suite
# must pass for an image to count as tested.
NOT_APPLICABLE: dict[str, frozenset[str]] = {"slim": frozenset({"training-smoke"})}
PYTEST_STOP_SECONDS = 60.0  # after a timeout: how long pytest may take to clean up


@dataclass(frozen=True)
class SuiteOptions:
    """What `test` runs: the selection's images, where results go, pytest's extras and limit."""

    matrix: Path = Path("matrix.toml")
    selection: Selection = field(default_factory=Selection)
    repository: str | None = None  # None: the matrix's
    results: Path = RESULTS_DIR  # relative to the matrix's folder
    json: bool = False
    pytest_args: tuple[str, ...] = ()
    timeout: float = PYTEST_TIMEOUT  # seconds for one variant's suites


@dataclass(frozen=True)
class SuiteResult:
    variant: str
    suite: str
    status: str  # passed | failed | skipped | not-run
    passed: int
    failed: int
    skipped: int
    detail: str  # first failure message or skip reason
    skip_reasons: tuple[str, ...] = ()  # every distinct reason a case of this suite skipped


def test_images(options: SuiteOptions) -> int:
    """Run the suites on each selected image, write and print the results, record the passes."""
    _, variants = load_selection(options.matrix, options.selection)
    root = options.matrix.resolve().parent
    console = err_console()
    results: list[SuiteResult] = []
    junit_dir = root / options.results
    for v in variants:
        image = v.ref(options.repository)
        console.print(f"{v.id}: testing {image}")
        results += run_variant(v, image, root, junit_dir, options)
    write_results(results, junit_dir / "results.json")
    untested = record_tested(variants, results, options.repository, root)
    report(results, options.json)
    for variant_id, reasons in untested.items():
        console.print(f"[yellow]not recorded as tested:[/] {variant_id}: {'; '.join(reasons)}")
    failed = any(r.status in ("failed", "not-run") for r in results)
    return EXIT_FAILED if failed or untested else EXIT_OK


def run_variant(
    v: Variant, image: str, root: Path, junit_dir: Path, options: SuiteOptions
) -> list[SuiteResult]:
    if engine.inspect_image(image) is None:
        why = f"{image} is not built (python build.py --variant {v.id})"
        return [SuiteResult(v.id, s, "not-run", 0, 0, 0, why) for s in SUITES.values()]
    junit = junit_dir / f"{v.id}.xml"
    # pytest writes its XML outside the results folder; only a whole file is copied in.
    with tempfile.TemporaryDirectory(prefix="bakery-junit-") as scratch:
        partial = Path(scratch) / junit.name
        command = [
            sys.executable, "-m", "pytest", str(root / "tests" / "image"), "--variant", v.id,
            f"--junitxml={partial}", "-q", "-rs", "-p", "no:cacheprovider",
            *(["--repository", options.repository] if options.repository else []),
            *options.pytest_args,
        ]  # fmt: skip
        started = time.monotonic()
        code, output = run_pytest(command, root, options.timeout)
        err_console().print(f"{v.id}: pytest {code} after {time.monotonic() - started:.0f}s")
        written = partial.exists() and partial.stat().st_size > 0
        if written:
            write_atomic(junit, partial.read_bytes())
    if not written or code.startswith("timed out"):
        # An interrupted pytest reports the case it was stopped in as passed: trust nothing.
        detail = f"pytest {code}: {output[-1500:]}"
        return [SuiteResult(v.id, s, "failed", 0, 1, 0, detail) for s in SUITES.values()]
    return parse_junit(v.id, junit)


def run_pytest(command: Sequence[str], root: Path, timeout: float) -> tuple[str, str]:
    """Run pytest; ("exited N" or "timed out", its output). A timeout interrupts it first
    (SIGINT: its fixtures remove their containers), then kills it."""
    process = subprocess.Popen(
        command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=timeout)
        return f"exited {process.returncode}", output
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=PYTEST_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        return f"timed out after {timeout:g}s", output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def suite_of(classname: str) -> str:
    """The suite a JUnit classname belongs to; a test file bakery does not know is its own."""
    parts = classname.split(".")
    module = next((p for p in parts if p in SUITES), None)
    if module is not None:
        return SUITES[module]
    return next((p for p in reversed(parts) if p.startswith("test_")), classname or "unknown")


def parse_junit(variant: str, path: Path) -> list[SuiteResult]:
    tree = ET.parse(path)  # noqa: S314 - our own pytest output
    counts: dict[str, dict[str, int]] = {
        s: {"passed": 0, "failed": 0, "skipped": 0} for s in SUITES.values()
    }
    failures: dict[str, str] = {}
    skips: dict[str, list[str]] = {}
    for case in tree.iter("testcase"):
        suite = suite_of(case.get("classname", ""))
        outcome, message = _case_outcome(case)
        counts.setdefault(suite, {"passed": 0, "failed": 0, "skipped": 0})[outcome] += 1
        if outcome == "failed":
            failures.setdefault(suite, f"{case.get('name')}: {message}")
        elif outcome == "skipped" and message not in skips.setdefault(suite, []):
            skips[suite].append(message)
    return [
        _suite_result(
            variant, suite, c, failures.get(suite) or next(iter(skips.get(suite, [])), ""),
            tuple(skips.get(suite, ())),
        )
        for suite, c in counts.items()
    ]  # fmt: skip


def _case_outcome(case: ET.Element) -> tuple[str, str]:
    for tag, outcome in (("failure", "failed"), ("error", "failed"), ("skipped", "skipped")):
        element = case.find(tag)
        if element is not None:
            return outcome, (element.get("message") or element.text or "").strip()[:300]
    return "passed", ""


def _suite_result(
    variant: str, suite: str, c: dict[str, int], detail: str, skip_reasons: tuple[str, ...]
) -> SuiteResult:
    if c["failed"]:
        status = "failed"
    elif c["passed"]:
        status = "passed"
    elif c["skipped"]:
        status = "skipped"
    else:
        status, detail = "not-run", "no test of this suite ran"
    return SuiteResult(
        variant, suite, status, c["passed"], c["failed"], c["skipped"], detail, skip_reasons
    )


def write_results(results: Sequence[SuiteResult], path: Path) -> None:
    records = [r.__dict__ for r in results]
    write_atomic(path, json.dumps(records, indent=2) + "\n")


def untested_reasons(v: Variant, mine: Sequence[SuiteResult]) -> list[str]:
    """Why `v`'s image does not count as tested; empty when every suite that applies passed."""
    exempt = NOT_APPLICABLE.get(v.flavour, frozenset())
    reasons = [] if mine else ["no suite ran"]
    for r in mine:
        if r.status == "passed" or (r.status == "skipped" and r.suite in exempt):
            continue
        reasons.append(f"{r.suite} {r.status}" + (f" ({r.detail[:160]})" if r.detail else ""))
    return reasons


def read_state(path: Path) -> dict[str, Any]:
    """The tested-images record; a damaged one is kept aside (with a warning), not trusted."""
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        problem = f"is not valid JSON ({str(exc)[:80]})"
    else:
        if isinstance(state, dict):
            return state
        problem = "does not hold a JSON object"
    aside = path.with_name(path.name + ".damaged")
    os.replace(path, aside)
    err_console().print(
        f"[yellow]warning:[/] {path} {problem} — kept as {aside}; starting a new record "
        "(images tested before must be tested again before `push`)"
    )
    return {}


def record_tested(
    variants: Sequence[Variant],
    results: Sequence[SuiteResult],
    repository: str | None,
    root: Path,
) -> dict[str, list[str]]:
    """Record the image ids whose suites all passed; return variant id -> why not, for the rest.

    GPU-only cases may skip (their reasons are recorded); a suite that passed nothing may only
    be skipped where it does not apply (NOT_APPLICABLE).
    """
    state_path = root / STATE_FILE
    state = read_state(state_path)
    untested: dict[str, list[str]] = {}
    for v in variants:
        mine = [r for r in results if r.variant == v.id]
        reasons = untested_reasons(v, mine)
        info = engine.inspect_image(v.ref(repository))
        if info is None:
            reasons = reasons or ["the image is gone"]
        if reasons or info is None:
            untested[v.id] = reasons
            continue
        state[info.id] = {
            "variant": v.id,
            "verdict": "passed",
            "tested_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "suites": {r.suite: r.status for r in mine},
            "skipped": {r.suite: list(r.skip_reasons) for r in mine if r.skip_reasons},
        }
    write_atomic(state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    return untested


def is_tested_record(record: object, variant_id: str) -> bool:
    """Whether a tested.json record says this variant's image passed (see record_tested)."""
    return (
        isinstance(record, dict)
        and record.get("variant") == variant_id
        and record.get("verdict") == "passed"
    )


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
