"""Options shared by every test folder (pytest reads addoption only from top-level conftests)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bakery images")
    group.addoption(
        "--variant",
        action="append",
        default=[],
        help="run the image suites against this matrix variant's image (repeatable)",
    )
    group.addoption(
        "--image",
        action="append",
        default=[],
        help="run the image suites against this image reference (repeatable; its variant is read from its labels)",
    )
    group.addoption(
        "--repository",
        default=None,
        help="repository the variants' images are tagged under (default: the matrix's)",
    )
