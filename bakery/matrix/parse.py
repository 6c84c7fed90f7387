"""Parsed TOML data to a `Matrix`: every section checked in file order, then the variants expanded.

Every problem is collected and raised together as one `ConfigError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bakery.errors import ConfigError, ConfigProblem
from bakery.matrix.check_env import read_apt_packages
from bakery.matrix.check_project import read_project
from bakery.matrix.check_rules import apply_excludes, apply_includes
from bakery.matrix.check_stack import read_stack
from bakery.matrix.check_targets import read_targets
from bakery.matrix.checker import Checker
from bakery.matrix.expand import check_duplicates, check_expanded_ranges, expand_target
from bakery.matrix.model import Matrix, Variant

TOP_KEYS = ("project", "targets", "stack", "exclude", "include", "apt_packages")


def parse_matrix(data: Mapping[str, Any], path: Path) -> Matrix:
    """Validate already-parsed TOML data; only ConfigError ever escapes."""
    checker = Checker(str(path))
    variants = check_matrix(checker, data)
    if checker.problems:
        raise ConfigError(checker.problems)
    if checker.project is None:  # pragma: no cover - a missing project is always a problem
        raise ConfigError([ConfigProblem(str(path), "project", "missing")])
    return Matrix(path=path, project=checker.project, variants=tuple(variants))


def check_matrix(c: Checker, data: Mapping[str, Any]) -> list[Variant]:
    """The variants `data` yields; none once any section has a problem (they are in `c`)."""
    c.keys(data, TOP_KEYS, "")
    c.project = read_project(c, data.get("project"))
    c.apt = read_apt_packages(c, data, "")
    stack_sets = read_stack(c, data.get("stack"))
    targets = read_targets(c, data.get("targets"))
    if c.project is None or c.problems:
        return []
    variants = [v for t in targets for v in expand_target(c, t, stack_sets)]
    variants = apply_excludes(c, variants, data.get("exclude", []))
    check_expanded_ranges(c, variants, targets)
    from_targets = len(variants)
    variants = apply_includes(c, variants, targets, stack_sets, data.get("include", []))
    check_duplicates(c, variants, from_targets)
    return variants
