"""The `[[stack]]` tables: the application packages each Python range gets, pinned exactly."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from bakery.compat import COMPANIONS, is_version
from bakery.errors import shown
from bakery.matrix.checker import Checker
from bakery.matrix.model import StackSet

STACK_KEYS = ("python", "packages")
PACKAGE_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
VERSION_RE = re.compile(r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?")


def read_stack(c: Checker, value: Any) -> list[StackSet]:
    if value is None:
        c.add("stack", "missing", "add [[stack]] tables with python and packages")
        return []
    sets = []
    for path, table in c.tables(value, "stack", STACK_KEYS):
        spec = read_specifier(c, table, path)
        packages = read_packages(c, table.get("packages"), f"{path}.packages")
        if spec is not None and packages is not None:
            sets.append((spec, packages))
    return sets


def read_specifier(c: Checker, table: Mapping[str, Any], path: str) -> SpecifierSet | None:
    text = c.string(table, "python", path, hint='a specifier such as ">=3.11"')
    if text is None:
        return None
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        c.add(f"{path}.python", f"invalid specifier {shown(text)}", 'use e.g. ">=3.11" or "<3.11"')
        return None


def read_packages(c: Checker, value: Any, path: str) -> tuple[tuple[str, str], ...] | None:
    table = c.table(value, path)
    if table is None:
        return None
    result = []
    for name, version in table.items():
        where = f"{path}.{name}"
        if not PACKAGE_RE.fullmatch(str(name)):
            c.add(where, f"invalid package name {shown(name)}")
        elif str(name).lower() in ("torch", *COMPANIONS):
            c.add(
                where,
                "the torch stack comes from the target, not the application stack",
                f"remove {name} from [[stack]]; set targets.*.torch / companions",
            )
        elif not isinstance(version, str) or not is_exact_version(version):
            c.add(where, f"must be an exact version string, got {shown(version)}", 'e.g. "0.42.1"')
        else:
            result.append((str(name), version))
    return tuple(sorted(result))


def is_exact_version(text: str) -> bool:
    """A plain ASCII public version ("0.42.1", "1.0rc1"); it is written into requirements.txt."""
    return VERSION_RE.fullmatch(text) is not None and is_version(text)
