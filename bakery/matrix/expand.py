"""Variants from targets: each target's torch × python × flavour, with its stack and companions.

Python ranges of a target are checked here, after [[exclude]] (bakery.matrix.check_rules), so an
exclude rule can fix a combination; two entries yielding one variant id are named both.
"""

from __future__ import annotations

from collections.abc import Sequence

from bakery.compat import load_pairing
from bakery.matrix.check_targets import check_range
from bakery.matrix.checker import Checker
from bakery.matrix.model import StackSet, Target, Variant


def expand_target(c: Checker, target: Target, stack_sets: Sequence[StackSet]) -> list[Variant]:
    return [
        v
        for torch in target.torch
        for python in target.python
        for flavour in target.flavours
        if (v := make_variant(c, target, torch, python, flavour, stack_sets, "")) is not None
    ]


def make_variant(
    c: Checker,
    target: Target,
    torch: str,
    python: str,
    flavour: str,
    stack_sets: Sequence[StackSet],
    where: str,
) -> Variant | None:
    release = load_pairing().releases[torch]
    stack = [pkgs for spec, pkgs in stack_sets if spec.contains(python)]
    if not stack:
        c.add(
            where or "stack",
            f"no [[stack]] entry covers Python {python}",
            "add a [[stack]] table whose python specifier contains it",
        )
        return None
    if c.project is None:  # pragma: no cover - checked by the caller
        return None
    return Variant(
        target=target.name, index=target.index, torch=torch, python=python, flavour=flavour,
        companions=tuple((n, release.companion(n)) for n in target.companions),
        base=target.base, base_digest=target.base_digest, base_python=target.base_python,
        gpu_archs=target.gpu_archs, env=target.env, stack=stack[0], project=c.project,
        apt_packages=tuple(dict.fromkeys((*c.apt, *target.apt_packages))),
    )  # fmt: skip


def check_expanded_ranges(
    c: Checker, variants: Sequence[Variant], targets: Sequence[Target]
) -> None:
    """Python ranges are checked after [[exclude]], so an exclude rule can fix a combination."""
    by_name = {t.name: t for t in targets}
    seen: set[tuple[str, str, str]] = set()
    for v in variants:
        if (v.target, v.torch, v.python) in seen:
            continue
        seen.add((v.target, v.torch, v.python))
        index = by_name[v.target].python.index(v.python)
        check_range(c, f"targets.{v.target}.python[{index}]", v.torch, v.python)


def check_duplicates(c: Checker, variants: Sequence[Variant], from_targets: int) -> None:
    """Two entries yielding one variant id: name both (targets sharing an index, or an include)."""
    seen: dict[str, int] = {}
    for i, v in enumerate(variants):
        first = seen.setdefault(v.id, i)
        if first == i:
            continue
        if i >= from_targets:
            c.add(
                "include",
                f"variant {v.id} is defined twice",
                "remove the [[include]] that repeats a variant the targets already yield",
            )
        else:
            c.add(
                f"targets.{v.target}",
                f"yields variant {v.id}, which targets.{variants[first].target} yields too",
                "give each target its own index, or drop the repeated torch/python versions",
            )
