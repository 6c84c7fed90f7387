"""Helpers every test folder shares (tests/ is on sys.path because tests/conftest.py lives here)."""

from __future__ import annotations

import os


def in_ci() -> bool:
    """CI sets CI=true; there a missing Docker engine or image must fail a test, never skip it."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
