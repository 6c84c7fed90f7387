"""Moving tags, from matrix.toml alone (see `push --help`), and every tag a variant gets."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from packaging.version import Version

from bakery.errors import ConfigError, ConfigProblem
from bakery.matrix import Variant
from bakery.release import Revision, immutable_tags


def default_pythons(matrix_path: Path) -> dict[str, str]:
    """target -> its default Python: the newest version in its `python` list in matrix.toml."""
    data = tomllib.loads(matrix_path.read_text(encoding="utf-8"))
    targets: Mapping[str, Any] = data.get("targets", {})
    return {
        name: max(table["python"], key=Version)
        for name, table in targets.items()
        if isinstance(table, Mapping) and table.get("python")
    }


def moving_tags(variants: Iterable[Variant], defaults: Mapping[str, str]) -> dict[str, str]:
    """Every moving tag -> the id of the variant it points at (computed on the whole matrix)."""
    groups: dict[tuple[str, str, str], list[Variant]] = {}
    for v in variants:
        if v.python == defaults.get(v.target):
            groups.setdefault((v.target, v.index.tag_part, v.flavour), []).append(v)
    tags: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    for (target, accelerator, flavour), members in sorted(groups.items(), key=lambda g: g[0]):
        suffix = "-slim" if flavour == "slim" else ""
        newest = max(members, key=lambda v: Version(v.torch))
        wanted = {f"{v.torch}-{accelerator}{suffix}": v.id for v in members}
        wanted[f"{accelerator}{suffix}"] = newest.id
        for tag, vid in wanted.items():
            if tags.get(tag, vid) != vid:
                problems.append(
                    ConfigProblem(
                        "matrix.toml",
                        f"targets.{target}",
                        f"moving tag {tag!r} would point at both {tags[tag]} and {vid}",
                        "targets on one wheel index share its moving tags: keep one target per index",
                    )
                )
            tags.setdefault(tag, vid)
    if problems:
        raise ConfigError(problems)
    return tags


def tags_for(
    variant: Variant, moving: Mapping[str, str], revision: Revision | None = None
) -> tuple[str, ...]:
    """The full tag, the immutable ones (commit, version), then the moving tags, most specific
    first."""
    mine = sorted((t for t, vid in moving.items() if vid == variant.id), key=lambda t: (-len(t), t))
    return (variant.tag, *immutable_tags(variant.tag, revision), *mine)
