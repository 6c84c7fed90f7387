"""matrix.toml: load it, validate every key, and expand it into variants.

All problems are collected and raised together as one `ConfigError` before anything runs; each
names the file, the key path, the bad value, the valid choices and the closest match.

The package, one module per concept (arrows point down; none imports this package's __init__):

    selection      the variants the selection flags pick; load_selection = load + select
    load           reading the file: a regular file, UTF-8 without a BOM, TOML, not too deep
    parse          the sections checked in file order, then the variants expanded
    check_rules    [[exclude]] and [[include]]
    expand         variants from targets; Python ranges after excludes; duplicate ids
    check_targets  [targets.NAME]: index, base image, torch/python/companion/arch/flavour values
    check_stack    [[stack]]: application packages per Python range
    check_project  [project]: repository, user, uid, gid
    check_env      env and apt_packages (a target's, or the file's for every target)
    checker        the problem collector and the generic key/type checks, closest-name hints
    model          Project, Variant, Matrix, Selection, Target
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bakery import lazy

# Names are imported on first use (bakery.lazy): `import bakery.matrix.model` or a command that
# only registers its options does not pay for the checkers and packaging (issue 17).
if TYPE_CHECKING:
    from bakery.matrix.checker import closest, describe_choices
    from bakery.matrix.load import load_matrix
    from bakery.matrix.model import FLAVOURS, Matrix, Project, Selection, Variant
    from bakery.matrix.parse import parse_matrix
    from bakery.matrix.selection import load_selection, select_variants

_HOME = {
    "closest": "bakery.matrix.checker",
    "describe_choices": "bakery.matrix.checker",
    "load_matrix": "bakery.matrix.load",
    "FLAVOURS": "bakery.matrix.model",
    "Matrix": "bakery.matrix.model",
    "Project": "bakery.matrix.model",
    "Selection": "bakery.matrix.model",
    "Variant": "bakery.matrix.model",
    "parse_matrix": "bakery.matrix.parse",
    "load_selection": "bakery.matrix.selection",
    "select_variants": "bakery.matrix.selection",
}

__all__ = [
    "FLAVOURS",
    "Matrix",
    "Project",
    "Selection",
    "Variant",
    "closest",
    "describe_choices",
    "load_matrix",
    "load_selection",
    "parse_matrix",
    "select_variants",
]

if not TYPE_CHECKING:  # mypy sees the imports above, so a misspelt name stays an error
    __getattr__ = lazy.loader(__name__, _HOME, globals())
