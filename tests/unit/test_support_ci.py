"""support.ci: a test that cannot run here skips on a developer machine and fails under CI.

Both outcomes are caught and compared by type: a broken helper that skips under CI must fail
these tests, not turn them into skips.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support import ci

REASON = "image x:y is not built (python build.py --variant y)"


def outcome(call: Callable[[], object]) -> BaseException:
    """What `call` raised: pytest's fail or skip outcome (anything else propagates)."""
    try:
        call()
    except (pytest.fail.Exception, pytest.skip.Exception) as raised:
        return raised
    raise AssertionError("neither skipped nor failed")


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " true "])
def test_ci_true_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert ci.in_ci()
    raised = outcome(lambda: ci.skip_or_fail(REASON))
    assert type(raised) is pytest.fail.Exception, f"skipped under CI={value!r}: {raised}"
    assert "may not pass by skipping" in str(raised)
    assert REASON in str(raised)


@pytest.mark.parametrize("value", [None, "", "false", "0", "no"])
def test_outside_ci_skips_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not ci.in_ci()
    raised = outcome(lambda: ci.skip_or_fail(REASON))
    assert type(raised) is pytest.skip.Exception, f"failed with CI={value!r}: {raised}"
    assert str(raised) == REASON


def test_require_daemon_names_the_host_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """No daemon at a socket nobody listens on: a skip naming it and the fix; a failure in CI."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/arch-tests-no-daemon.sock")
    raised = outcome(ci.require_daemon)
    assert type(raised) is pytest.skip.Exception, raised
    assert "DOCKER_HOST=unix:///nonexistent/arch-tests-no-daemon.sock" in str(raised)
    assert "scripts/install-engine.sh" in str(raised)
    monkeypatch.setenv("CI", "true")
    assert type(outcome(ci.require_daemon)) is pytest.fail.Exception
