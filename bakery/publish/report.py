"""The JSON report (written atomically, also when a run fails half-way) and the results table."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from bakery.atomicfile import write_atomic
from bakery.errors import DockerError
from bakery.publish.model import PublishOptions, TagRecord
from bakery.publish.registry import failure, scrub
from bakery.ui import out_console


@contextmanager
def reporting(
    command: str, options: PublishOptions, records: Sequence[TagRecord], console: Console
) -> Iterator[None]:
    """Write the report and print the table however the block ends; name the tag that failed."""
    started = _now()
    try:
        yield
    except DockerError as exc:
        failed = next((r for r in records if r.status == "failed"), None)
        if failed is None:
            raise
        raise failure(exc, failed, records, options.report) from exc
    finally:
        write_report(command, options, records, started)
        print_table(records)
        console.print(f"report: {options.report}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_report(
    command: str, options: PublishOptions, records: Sequence[TagRecord], started: str
) -> None:
    report = {
        "command": command,
        "repository": options.destination.repository,
        "started_at": started,
        "finished_at": _now(),
        "complete": all(r.status == "pushed" for r in records),
        "tags": [asdict(r) for r in records],
    }
    text = scrub(options, json.dumps(report, indent=2) + "\n")
    write_atomic(options.report, text)


def print_table(records: Sequence[TagRecord]) -> None:
    table = Table(
        title=f"{sum(r.status == 'pushed' for r in records)}/{len(records)} tags published"
    )
    for column in ("tag", "variant", "status", "digest", "size", "attempts"):
        table.add_column(column, overflow="fold")
    styles = {"pushed": "green", "failed": "bold red", "not-attempted": "yellow"}
    for r in records:
        table.add_row(
            r.ref,
            r.variant,
            f"[{styles[r.status]}]{r.status}[/]",
            r.digest[:19] or "—",
            f"{r.size / 1e6:.1f} MB" if r.size else "—",
            str(r.attempts),
        )
    out_console().print(table)
