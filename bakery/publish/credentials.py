"""Registry credentials from the environment, and errors scrubbed of the password."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from bakery.errors import BakeryError, DockerError, UsageError
from bakery.publish.model import ENV_PASSWORD, ENV_USER, Credentials


def take_credentials(environ: Mapping[str, str] | None = None) -> Credentials | None:
    """BAKERY_REGISTRY_USER/PASSWORD, the password removed from os.environ; None if unset."""
    env = os.environ if environ is None else environ
    user, password = env.get(ENV_USER, ""), env.get(ENV_PASSWORD, "")
    if environ is None:
        os.environ.pop(ENV_PASSWORD, None)
    if not user and not password:
        return None
    if not user or not password:
        missing = ENV_USER if not user else ENV_PASSWORD
        raise UsageError(
            f"{missing} is not set, but {ENV_USER if missing == ENV_PASSWORD else ENV_PASSWORD} is",
            fix=f"set both {ENV_USER} and {ENV_PASSWORD}, or neither and use `docker login`",
        )
    return Credentials(user, password)


@contextmanager
def scrubbed(credentials: Credentials | None) -> Iterator[None]:
    """Whatever error leaves the block carries no trace of the password."""
    try:
        yield
    except BakeryError as exc:
        if credentials is not None:
            _scrub_error(exc, credentials)
        raise


def _scrub_error(exc: BakeryError, credentials: Credentials) -> None:
    exc.what, exc.why, exc.fix = (credentials.scrub(s) for s in (exc.what, exc.why, exc.fix))
    if isinstance(exc, DockerError):
        exc.stderr_tail = credentials.scrub(exc.stderr_tail)
        exc.command = tuple(credentials.scrub(part) for part in exc.command)
    exc.args = (exc.what,)
