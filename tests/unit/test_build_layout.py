"""bakery.build's particular rules (issue 16); layers and sizes are test_package_layout.py's.

No module imports the old `bakery.builder`, and only the command module may reach up into
bakery.cli. `bakery.builder` is the old module's name kept for callers not yet moved: it must
hand out the very objects of bakery.build.
"""

from __future__ import annotations

import ast

import pytest
from support.layout import BAKERY, imported_modules, modules

from bakery import build

PACKAGE = BAKERY / "build"
MODULES = modules("build")


@pytest.mark.parametrize("module", MODULES)
def test_only_the_command_module_reaches_up(module: str) -> None:
    """The old module's name and the CLI are above the package; only `cli` may use bakery.cli."""
    imported = imported_modules(PACKAGE / f"{module}.py")
    assert "bakery.builder" not in imported
    if module != "cli":
        assert "bakery.cli" not in imported


def test_every_public_name_of_the_package_is_exported() -> None:
    """__all__ lists each public function, class and constant the modules define (what
    bakery.builder re-exports), so an old import keeps working after a move."""
    defined = set()
    for module in MODULES:
        for node in ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined.update(t.id for t in targets if isinstance(t, ast.Name))
    public = {name for name in defined if not name.startswith("_")}
    assert public <= set(build.__all__), sorted(public - set(build.__all__))


def test_the_old_module_hands_out_the_same_objects() -> None:
    from bakery import builder  # noqa: PLC0415 - the compatibility module under test

    missing = [name for name in build.__all__ if getattr(builder, name, None) is None]
    assert missing == []
    assert all(getattr(builder, name) is getattr(build, name) for name in build.__all__)
