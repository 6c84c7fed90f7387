"""Options and fixtures shared by every test folder (pytest reads addoption and pytest_plugins
only from top-level conftests). This file also puts tests/ on sys.path, so every folder imports
the shared helpers as `support.<module>` (tests/support/__init__.py lists them)."""

from __future__ import annotations

import pytest

pytest_plugins = ["support.fixtures"]


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
