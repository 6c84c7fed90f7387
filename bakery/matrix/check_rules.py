"""The `[[exclude]]` and `[[include]]` rules: variants taken out of, or added to, the targets'."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bakery.compat import COMPANIONS, load_pairing
from bakery.errors import shown
from bakery.matrix.check_targets import PYTHON_RE, check_target_values
from bakery.matrix.checker import Checker, closest, describe_choices
from bakery.matrix.expand import make_variant
from bakery.matrix.model import StackSet, Target, Variant

RULE_KEYS = ("target", "torch", "python", "flavour", "torchvision", "torchaudio")


def apply_excludes(c: Checker, variants: list[Variant], rules: Any) -> list[Variant]:
    for path, table in c.tables(rules, "exclude", RULE_KEYS):
        if not table:
            c.add(path, "empty rule would exclude everything", "name at least one key")
            continue
        matched = [v for v in variants if rule_matches(table, v)]
        if not matched:
            c.add(
                path,
                f"matches no variant: {shown(dict(table))}",
                "fix the values or delete the rule",
            )
        variants = [v for v in variants if v not in matched]
    return variants


def rule_matches(rule: Mapping[str, Any], variant: Variant) -> bool:
    values = {
        "target": variant.target,
        "torch": variant.torch,
        "python": variant.python,
        "flavour": variant.flavour,
        "torchvision": variant.companion("torchvision"),
        "torchaudio": variant.companion("torchaudio"),
    }
    return all(values.get(str(k)) == v for k, v in rule.items())


def apply_includes(
    c: Checker,
    variants: list[Variant],
    targets: Sequence[Target],
    stack_sets: Sequence[StackSet],
    rules: Any,
) -> list[Variant]:
    by_name = {t.name: t for t in targets}
    for path, table in c.tables(rules, "include", RULE_KEYS):
        variant = read_include(c, path, table, by_name, stack_sets)
        if variant is not None:
            variants.append(variant)
    return variants


def read_include(
    c: Checker,
    path: str,
    table: Mapping[str, Any],
    targets: Mapping[str, Target],
    stack_sets: Sequence[StackSet],
) -> Variant | None:
    before = len(c.problems)
    name = c.string(table, "target", path, hint=f"one of {describe_choices(targets)}")
    torch = c.string(table, "torch", path, hint='a torch version such as "2.9.1"')
    python = c.string(table, "python", path, PYTHON_RE, 'use "3.Y"')
    flavour = c.string(table, "flavour", path, required=False) or "full"
    if name is not None and name not in targets:
        c.add(
            f"{path}.target",
            f"unknown target {shown(name)}{closest(name, targets)}",
            f"valid: {describe_choices(targets)}",
        )
    if len(c.problems) != before or name is None or torch is None or python is None:
        return None
    target = targets[name]
    check_target_values(
        c, path, target.index, (torch,), (python,), (), (), (flavour,), check_ranges=True
    )
    for companion in COMPANIONS:
        check_pinned_companion(c, path, table, companion, torch)
    if len(c.problems) != before:
        return None
    return make_variant(c, target, torch, python, flavour, stack_sets, path)


def check_pinned_companion(
    c: Checker, path: str, table: Mapping[str, Any], name: str, torch: str
) -> None:
    if name not in table:
        return
    release = load_pairing().releases.get(torch)
    wanted = release.companion(name) if release is not None else None
    if table[name] != wanted:
        c.add(
            f"{path}.{name}",
            f"{name} {shown(table[name])} does not pair with torch {torch}",
            f"torch {torch} pairs with {name} {wanted}; drop the key to get it automatically",
        )
