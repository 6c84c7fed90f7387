"""argparse `type=` functions for numeric options, shared by every command.

A bad number is refused while the command line is parsed, so it exits with the usage code (2)
and argparse's `argument --uid: ...` prefix names the option; the message shows the value
escaped and says what is allowed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from bakery.defaults import MAX_ID
from bakery.errors import shown


def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """A type accepting a whole number in [low, high] (no upper bound when high is None)."""
    allowed = (
        f"a whole number from {low} to {high}" if high is not None else f"a whole number >= {low}"
    )

    def parse(text: str) -> int:
        try:
            value = int(text.strip(), 10) if text.strip().isascii() else None
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{shown(text)} is not valid: use {allowed}")
        return value

    return parse


def seconds(*, allow_zero: bool) -> Callable[[str], float]:
    """A type accepting a finite, non-negative (or positive) number of seconds."""
    allowed = "a number of seconds >= 0" if allow_zero else "a number of seconds > 0"

    def parse(text: str) -> float:
        try:
            value = float(text) if text.strip().isascii() else math.nan
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{shown(text)} is not valid: use {allowed}")
        return value

    return parse


user_id = whole_number(0, MAX_ID)
