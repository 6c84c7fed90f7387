"""Run the plan: build each step (jobs at a time), live status lines, cancel on Ctrl+C, verify,
tag, and the summary table."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from bakery import engine, interpreters
from bakery.build.options import BuildOptions, torch_index_for
from bakery.build.plan import BuildStep
from bakery.build.secrets import build_secrets
from bakery.build.spec import build_spec
from bakery.build.verify import REUSED, as_guard_error, verify_once
from bakery.buildkit import cache_hosts, check_driver
from bakery.errors import BakeryError, DockerError

if TYPE_CHECKING:
    from bakery.publish import Credentials


@dataclass(frozen=True)
class BuildResult:
    step: BuildStep
    image_id: str
    size: int
    seconds: float
    steps_total: int
    steps_cached: int
    steps_run: tuple[str, ...]


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
    from bakery.publish import take_credentials  # noqa: PLC0415 - only a cache registry needs it

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
