"""The problem collector every section check writes to, and the generic key and value checks.

Each check adds a `ConfigProblem` (file, key path, what is wrong, the fix) and carries on, so one
run reports every problem in the file; `bakery.matrix.parse` raises them together.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bakery.errors import ConfigProblem, shown
from bakery.matrix.model import Project


def closest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest valid name, or ''."""
    options = list(choices)
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not match and len(word) >= 3:
        match = [c for c in options if c.startswith(word) or word.startswith(c)][:1]
    return f' (did you mean "{match[0]}"?)' if match else ""


def describe_choices(choices: Iterable[str]) -> str:
    return ", ".join(f'"{c}"' for c in choices)


def type_name(value: Any) -> str:
    return {
        bool: "a boolean", int: "an integer", float: "a number", str: "a string",
        list: "a list", dict: "a table",
    }.get(type(value), type(value).__name__)  # fmt: skip


@dataclass
class Checker:
    """The problems found so far in one file, and what later sections need from earlier ones."""

    file: str
    problems: list[ConfigProblem] = field(default_factory=list)
    project: Project | None = None
    apt: tuple[str, ...] = ()  # the top-level apt_packages, which every variant gets

    def add(self, key: str, message: str, fix: str = "") -> None:
        self.problems.append(ConfigProblem(self.file, key, message, fix))

    def keys(self, table: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.add(
                    where,
                    f"unknown key{closest(str(key), allowed)}",
                    f"valid keys here: {describe_choices(allowed)}",
                )

    def table(self, value: Any, path: str, required: bool = True) -> Mapping[str, Any] | None:
        if value is None:
            if required:
                self.add(path, "missing", "add this table; see README 'The matrix'")
            return None
        if not isinstance(value, Mapping):
            self.add(path, f"must be a table, got {type_name(value)} {shown(value)}")
            return None
        return value

    def tables(
        self, value: Any, name: str, allowed: Sequence[str]
    ) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Each table of the array `[[name]]` with its path, its keys checked; none if no array."""
        if not isinstance(value, list):
            self.add(name, f"must be an array of tables ([[{name}]]), got {type_name(value)}")
            return
        for i, entry in enumerate(value):
            path = f"{name}[{i}]"
            table = self.table(entry, path)
            if table is not None:
                self.keys(table, allowed, path)
                yield path, table

    def string(
        self,
        table: Mapping[str, Any],
        key: str,
        path: str,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        required: bool = True,
    ) -> str | None:
        where = f"{path}.{key}"
        if key not in table:
            if required:
                self.add(where, "missing", hint)
            return None
        value = table[key]
        if not isinstance(value, str):
            self.add(where, f"must be a string, got {type_name(value)} {shown(value)}", hint)
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.add(where, f"invalid value {shown(value)}", hint)
            return None
        return value

    def integer(self, table: Mapping[str, Any], key: str, path: str) -> int | None:
        where = f"{path}.{key}"
        value = table.get(key)
        if value is None:
            self.add(where, "missing", "a whole number from 0 to 65535")
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
            self.add(where, f"must be a whole number from 0 to 65535, got {shown(value)}")
            return None
        return value

    def strings(
        self, table: Mapping[str, Any], key: str, path: str, allow_empty: bool = False
    ) -> tuple[str, ...] | None:
        where = f"{path}.{key}"
        if key not in table:
            self.add(where, "missing", "a list of strings")
            return None
        value = table[key]
        if not isinstance(value, list):
            self.add(where, f"must be a list of strings, got {type_name(value)} {shown(value)}")
            return None
        bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
        for i in bad:
            self.add(
                f"{where}[{i}]",
                f"must be a string, got {type_name(value[i])} {shown(value[i])}",
                'quote it: "3.10", not 3.10',
            )
        if bad:
            return None
        if not value and not allow_empty:
            self.add(where, "must not be empty")
            return None
        seen: set[str] = set()
        for item in value:
            if item in seen:
                self.add(where, f"lists {shown(item)} twice")
            seen.add(item)
        return tuple(value)
