"""support.ci: a test that cannot run here skips on a developer machine and fails under CI."""

from __future__ import annotations

import pytest
from support import ci

REASON = "image x:y is not built (python build.py --variant y)"


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " true "])
def test_ci_true_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert ci.in_ci()
    with pytest.raises(pytest.fail.Exception, match="may not pass by skipping") as failed:
        ci.skip_or_fail(REASON)
    assert REASON in str(failed.value)


@pytest.mark.parametrize("value", [None, "", "false", "0", "no"])
def test_outside_ci_skips_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not ci.in_ci()
    with pytest.raises(pytest.skip.Exception) as skipped:
        ci.skip_or_fail(REASON)
    assert str(skipped.value) == REASON


def test_require_daemon_names_the_host_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """No daemon at a socket nobody listens on: skipped (CI unset) with what to do."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/arch-tests-no-daemon.sock")
    with pytest.raises(pytest.skip.Exception) as skipped:
        ci.require_daemon()
    assert "DOCKER_HOST=unix:///nonexistent/arch-tests-no-daemon.sock" in str(skipped.value)
    assert "scripts/install-engine.sh" in str(skipped.value)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        ci.require_daemon()
