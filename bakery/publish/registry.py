"""Registry calls with retries, login/logout around a command, and the error that names a failed tag."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from rich.console import Console

from bakery import engine
from bakery.errors import DockerError
from bakery.publish.model import ENV_PASSWORD, ENV_USER, PublishOptions, TagRecord

# What a registry or the network says when trying again can help, and when it cannot.
_AUTH = ("unauthorized", "denied", "authentication required", "no basic auth credentials")


_PERMANENT = (
    *_AUTH,
    "manifest invalid",
    "name unknown",
    "not found",
    "invalid reference",
)


_TRANSIENT = (
    "connection refused",
    "connection reset",
    "broken pipe",
    "timeout",
    "timed out",
    "eof",
    "too many requests",
    "temporary failure",
    "service unavailable",
    "bad gateway",
    "internal server error",
    " 500 ",
    " 502 ",
    " 503 ",
    " 504 ",
)


T = TypeVar("T")


def is_transient(exc: DockerError) -> bool:
    """True when the registry or the network might answer differently if asked again."""
    text = f" {exc.what}\n{exc.stderr_tail} ".lower()
    if any(marker in text for marker in _PERMANENT):
        return False
    return any(marker in text for marker in _TRANSIENT)


def registry_message(exc: DockerError) -> str:
    """The registry's own words: the last line of docker's stderr."""
    lines = [line.strip() for line in exc.stderr_tail.splitlines() if line.strip()]
    return lines[-1].removeprefix("ERROR: ") if lines else exc.what


def with_retries(
    action: Callable[[], T],
    label: str,
    options: PublishOptions,
    console: Console,
    record: TagRecord | None = None,
) -> T:
    """Run `action`; retry transient DockerErrors with doubling, capped waits."""
    policy = options.retry
    for attempt in range(1, policy.attempts + 1):
        if record is not None:
            record.attempts += 1
        try:
            return action()
        except DockerError as exc:
            if attempt == policy.attempts or not is_transient(exc):
                raise
            wait = policy.delay(attempt)
            message = scrub(options, registry_message(exc))
            console.print(
                f"{label}: attempt {attempt}/{policy.attempts} failed ({message}); retrying in {wait:g}s"
            )
            time.sleep(wait)  # backoff between attempts at a remote registry
    raise DockerError(f"{label}: no attempt was made (--retries must be >= 0)")


def scrub(options: PublishOptions, text: str) -> str:
    return options.credentials.scrub(text) if options.credentials else text


def log_in(hosts: Iterable[str], options: PublishOptions, console: Console) -> None:
    credentials = options.credentials
    if credentials is None:
        return
    for host in sorted(set(hosts)):
        try:
            with_retries(
                functools.partial(
                    engine.login_registry, host, credentials.username, credentials.password
                ),
                f"docker login {host}",
                options,
                console,
            )
        except DockerError as exc:
            if any(marker in exc.stderr_tail.lower() for marker in (*_AUTH, "401")):
                exc.fix = (
                    f"check {ENV_USER} and {ENV_PASSWORD} (for GHCR: a token with write:packages)"
                )
            else:
                exc.fix = f"check that the registry {host} is up and reachable, then run again"
            raise
        console.print(f"logged in to {host} as {credentials.username}")


@contextmanager
def logged_in(hosts: Iterable[str], options: PublishOptions, console: Console) -> Iterator[None]:
    """log_in for the block, then `docker logout` of the hosts bakery logged in to: the
    credential store keeps no token after publishing (a login the user made stays theirs)."""
    try:
        log_in(hosts, options, console)
        yield
    finally:
        if options.credentials is not None:
            for host in sorted(set(hosts)):
                engine.logout_registry(host)
                console.print(f"logged out of {host}")


def failure(
    exc: DockerError, record: TagRecord, records: Sequence[TagRecord], report: Path
) -> DockerError:
    """The final error for a tag: names it, quotes the registry, says what made it."""
    made_it = [r.tag for r in records if r.status == "pushed"]
    message = registry_message(exc)
    login = ""
    if any(marker in message.lower() for marker in _AUTH):
        host = record.ref.split("/", 1)[0]
        login = f"log in with `docker login {host}` or set {ENV_USER} and {ENV_PASSWORD}; "
    return DockerError(
        f"{record.ref}: {message} (after {record.attempts} attempt(s))",
        command=exc.command,
        return_code=exc.return_code,
        stderr_tail=exc.stderr_tail,
        fix=f"{login}{len(made_it)} of {len(records)} tag(s) made it "
        f"({', '.join(made_it) or 'none'}); the report {report} lists them; "
        "run the command again to finish",
    )
