"""The one rule for a test that cannot run here: skip with a reason, except in CI, where it fails.

CI sets CI=true; there a missing Docker engine or image must fail the suite, never let it pass
by skipping (issue 16). Docker imports stay inside the functions: the stylelora tests load this
package inside an image that has no Docker client library.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

INSTALL_ENGINE = "start one with `sudo scripts/install-engine.sh`"


def in_ci() -> bool:
    """True under CI (CI=1/true/yes, any case)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def skip_or_fail(reason: str) -> NoReturn:
    """Skip with `reason` on a developer machine; fail with it in CI."""
    if in_ci():
        pytest.fail(f"CI=true: a test may not pass by skipping: {reason}", pytrace=False)
    pytest.skip(reason)


def require_daemon() -> None:
    """Skip or fail (see skip_or_fail) unless a Docker daemon answers."""
    from bakery import engine  # noqa: PLC0415 - see the module docstring

    if not engine.daemon_answers():
        host = os.environ.get("DOCKER_HOST", "<unset>")
        skip_or_fail(f"no Docker daemon answers (DOCKER_HOST={host}); {INSTALL_ENGINE}")


def require_image(ref: str, fix: str) -> None:
    """Skip or fail unless image `ref` exists locally; `fix` is the command that builds it."""
    from bakery import engine  # noqa: PLC0415 - see the module docstring

    if engine.inspect_image(ref) is None:
        skip_or_fail(f"{ref} is not built ({fix})")
