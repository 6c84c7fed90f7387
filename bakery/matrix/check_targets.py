"""The `[targets.NAME]` tables: wheel index, base image, and the torch, Python, companion, GPU
architecture and flavour values each target expands over."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bakery.compat import ACCELERATORS, COMPANIONS, WheelIndex, describe_python, load_pairing
from bakery.errors import shown
from bakery.matrix.check_env import read_apt_packages, read_env
from bakery.matrix.checker import Checker, closest, describe_choices
from bakery.matrix.model import FLAVOURS, Target

TARGET_KEYS = (
    "index",
    "base",
    "base_digest",
    "base_python",
    "torch",
    "python",
    "companions",
    "gpu_archs",
    "flavours",
    "env",
    "apt_packages",
)
# Every pattern is used with re.fullmatch and spells digits [0-9]: `$` lets a trailing newline
# through and `\d` accepts non-ASCII digits, and any of these values may end up in a rendered file.
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
PYTHON_RE = re.compile(r"3\.[0-9]{1,2}")
IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._/:-]*")
ARCH_RE = {"rocm": re.compile(r"gfx[0-9a-f]{3,4}"), "cuda": re.compile(r"sm_[0-9]{2,3}a?")}


def read_targets(c: Checker, value: Any) -> list[Target]:
    table = c.table(value, "targets")
    if table is None:
        return []
    if not table:
        c.add("targets", "no targets defined", f"add one of {describe_choices(ACCELERATORS)}")
    targets = []
    for name, entry in table.items():
        target = read_target(c, str(name), entry)
        if target is not None:
            targets.append(target)
    return targets


def read_target(c: Checker, name: str, value: Any) -> Target | None:
    path = f"targets.{name}"
    table = c.table(value, path)
    if table is None:
        return None
    c.keys(table, TARGET_KEYS, path)
    before = len(c.problems)
    index = read_wheel_index(c, table, path)
    base, digest, base_python = read_base(c, table, path)
    torch = c.strings(table, "torch", path)
    python = c.strings(table, "python", path)
    companions = c.strings(table, "companions", path, allow_empty=True)
    archs = c.strings(table, "gpu_archs", path, allow_empty=True)
    flavours = c.strings(table, "flavours", path)
    env = read_env(c, table.get("env", {}), f"{path}.env")
    apt = read_apt_packages(c, table, path)
    if index is not None:
        check_target_values(c, path, index, torch, python, companions, archs, flavours)
    # A missing or unknown index is always a problem too: `index is None` only narrows the type.
    if index is None or len(c.problems) != before:
        return None
    return Target(
        name=name, index=index, base=base or "", base_digest=digest or "",
        base_python=base_python or "", torch=torch or (), python=python or (),
        companions=companions or (), gpu_archs=archs or (), flavours=flavours or (), env=env,
        apt_packages=apt,
    )  # fmt: skip


def read_base(
    c: Checker, table: Mapping[str, Any], path: str
) -> tuple[str | None, str | None, str | None]:
    """The base image, its digest ("" for a local image) and its own Python."""
    base = c.string(
        table,
        "base",
        path,
        IMAGE_RE,
        "an image name such as docker.io/library/debian:bookworm-slim",
    )
    digest = c.string(
        table,
        "base_digest",
        path,
        DIGEST_RE if table.get("base_digest") != "" else None,
        'sha256: followed by 64 lower-case hex digits, or "" for a local image',
        required=False,
    )
    if table.get("base_digest") == "":
        digest = ""
    base_python = c.string(
        table,
        "base_python",
        path,
        PYTHON_RE,
        'the base image\'s own Python as "3.Y" ("" if it has none)',
        required=False,
    )
    return base, digest, base_python


def read_wheel_index(c: Checker, table: Mapping[str, Any], path: str) -> WheelIndex | None:
    indexes = load_pairing().indexes
    name = c.string(table, "index", path, hint=f"one of {describe_choices(indexes)}")
    if name is None:
        return None
    if name not in indexes:
        c.add(
            f"{path}.index",
            f"unknown wheel index {shown(name)}{closest(name, indexes)}",
            f"valid: {describe_choices(indexes)}",
        )
        return None
    return indexes[name]


def check_target_values(
    c: Checker,
    path: str,
    index: WheelIndex,
    torch: tuple[str, ...] | None,
    python: tuple[str, ...] | None,
    companions: tuple[str, ...] | None,
    archs: tuple[str, ...] | None,
    flavours: tuple[str, ...] | None,
    check_ranges: bool = False,
) -> None:
    """Each value against what exists: wheels, pairing data, companions, architectures, flavours.

    With `check_ranges` every Python is also checked against each torch's range at once (an
    [[include]]); a target's ranges wait for [[exclude]] (bakery.matrix.expand).
    """
    check_torch_versions(c, path, index, torch or ())
    check_pythons(c, path, python or (), (torch or ()) if check_ranges else ())
    check_choices(c, f"{path}.companions", "companion", companions or (), COMPANIONS)
    check_gpu_archs(c, path, index, archs or ())
    check_choices(c, f"{path}.flavours", "flavour", flavours or (), FLAVOURS)


def check_torch_versions(c: Checker, path: str, index: WheelIndex, torch: tuple[str, ...]) -> None:
    pairing = load_pairing()
    for i, version in enumerate(torch):
        if version not in index.torch:
            c.add(
                f"{path}.torch[{i}]",
                f"torch {version} has no {index.name} wheels{closest(version, index.torch)}",
                f"{index.name} has torch {', '.join(index.torch)}",
            )
        elif version not in pairing.releases:
            c.add(
                f"{path}.torch[{i}]",
                f"no pairing data for torch {version}",
                "add it to bakery/data/pairing.toml",
            )


def check_pythons(
    c: Checker, path: str, python: tuple[str, ...], ranges_of: tuple[str, ...]
) -> None:
    """Each Python is "3.Y"; and within the range of each torch in `ranges_of`."""
    for i, py in enumerate(python):
        if not PYTHON_RE.fullmatch(py):
            c.add(
                f"{path}.python[{i}]",
                f"invalid Python version {shown(py)}",
                'use "3.Y", e.g. "3.11"',
            )
            continue
        for version in ranges_of:
            check_range(c, f"{path}.python[{i}]", version, py)


def check_choices(
    c: Checker, where: str, what: str, values: tuple[str, ...], choices: Sequence[str]
) -> None:
    """Each of `values` (the list at key `where`) is one of `choices`."""
    for i, value in enumerate(values):
        if value not in choices:
            c.add(
                f"{where}[{i}]",
                f"unknown {what} {shown(value)}{closest(value, choices)}",
                f"valid: {describe_choices(choices)}",
            )


def check_gpu_archs(c: Checker, path: str, index: WheelIndex, archs: tuple[str, ...]) -> None:
    pattern = ARCH_RE.get(index.accelerator)
    for i, arch in enumerate(archs):
        if pattern is None:
            c.add(
                f"{path}.gpu_archs[{i}]",
                f"{index.accelerator} targets have no GPU architectures",
                "use gpu_archs = []",
            )
        elif not pattern.fullmatch(arch):
            example = "gfx942" if index.accelerator == "rocm" else "sm_90"
            c.add(
                f"{path}.gpu_archs[{i}]",
                f"{shown(arch)} is not a {index.accelerator} architecture",
                f"use names like {example}",
            )


def check_range(c: Checker, key: str, torch: str, python: str) -> None:
    """Python `python` is one torch `torch` supports (from bakery/data/pairing.toml)."""
    release = load_pairing().releases.get(torch)
    if release is not None and python not in release.python:
        c.add(
            key,
            f"Python {python} is outside torch {torch}'s range {describe_python(release.python)}",
            f"drop it, or add an [[exclude]] rule for torch {torch} × Python {python}",
        )
