"""The one place consoles are made: progress and messages on stderr, data on stdout."""

from __future__ import annotations

from rich.console import Console


def err_console() -> Console:
    """stderr; never wraps lines, so messages and paths stay whole in logs and CI output."""
    probe = Console(stderr=True)
    return Console(
        stderr=True,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        width=None if probe.is_terminal else 160,
    )


def out_console() -> Console:
    """stdout, for tables; wide enough in CI logs not to fold every column."""
    probe = Console(highlight=False)
    return Console(highlight=False, emoji=False, width=None if probe.is_terminal else 160)
