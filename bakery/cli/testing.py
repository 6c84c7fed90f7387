"""`test`: the image suites against the selected variants' images (bakery.testrun)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from bakery.cli.common import AddParser, Parents, add_command, selection_of
from bakery.defaults import PYTEST_TIMEOUT, RESULTS_DIR

if TYPE_CHECKING:
    from bakery.testrun import SuiteOptions

COMMANDS: tuple[str, ...] = ("test",)


def register(add: AddParser, parents: Parents) -> None:
    """Add `test`."""
    p = add_command(
        add,
        "test",
        [parents.common, parents.selection, parents.repository],
        "run the image test suites on built images",
        "Run the testinfra suites (GPU probing, version pairing, training smoke) against the selected variants' images and print variant × suite results. Exit 1 if anything failed. The same suites run with plain pytest: pytest tests/image --variant ID or --image REF.",
        raw=False,
    )
    p.add_argument("--json", action="store_true", help="print results as JSON on stdout")
    add_suite_arguments(p)
    p.set_defaults(handler=cmd_test)


def add_suite_arguments(p: argparse.ArgumentParser) -> None:
    """test's own options (release takes them too, beside build's --json)."""
    p.add_argument(
        "--results",
        type=Path,
        default=RESULTS_DIR,
        help="where to write results.json and junit XML",
    )
    p.add_argument(
        "--pytest-arg", action="append", default=[], help="extra argument for pytest (repeatable)"
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=PYTEST_TIMEOUT,
        metavar="SECONDS",
        help="stop one variant's suites after this long (default: %(default)g)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds above 0 (e.g. --timeout 1800)"
        )
    return value


def suite_options(args: argparse.Namespace) -> SuiteOptions:
    from bakery.testrun import SuiteOptions  # noqa: PLC0415 - lazy: --help imports no library

    return SuiteOptions(
        matrix=args.matrix,
        selection=selection_of(args),
        repository=args.repository,
        results=args.results,
        json=args.json,
        pytest_args=tuple(args.pytest_arg),
        timeout=args.timeout,
    )


def cmd_test(args: argparse.Namespace) -> int:
    from bakery.testrun import test_images  # noqa: PLC0415 - lazy: --help imports no library

    return test_images(suite_options(args))
