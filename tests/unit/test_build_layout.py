"""bakery.build keeps the shape its __init__ describes (issue 16): layers, sizes, one old name.

The package docstring lists its modules top first; a module may import only modules listed
below it, so arrows point down and there is no cycle. No module imports the package's own
__init__ or the old `bakery.builder`, none is over 600 lines, no function over 50; only the
command module reaches up into bakery.cli. `bakery.builder` is the old module's name kept for
callers not yet moved: it must hand out the very objects of bakery.build.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bakery import build

PACKAGE = Path(build.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 50
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.name != "__init__.py")


def documented_order() -> list[str]:
    """The module names of the package map in bakery/build/__init__.py, top first."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    _, _, table = (doc or "").partition("one module per concept")
    return re.findall(r"^    ([a-z_]+) ", table, re.MULTILINE)


def imported_modules(path: Path) -> set[str]:
    """Every bakery module `path` imports from, spelled in full (bakery.build.plan, bakery.cli)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "bakery":
                found.update(f"bakery.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "bakery" or name.startswith("bakery.")}


def build_imports(path: Path) -> set[str]:
    """What `path` imports from this package: module names, "__init__" for the package itself."""
    return {
        "__init__" if name == "bakery.build" else name.removeprefix("bakery.build.")
        for name in imported_modules(path)
        if name == "bakery.build" or name.startswith("bakery.build.")
    }


def test_the_package_map_names_every_module_once() -> None:
    order = documented_order()
    assert sorted(order) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_modules_below_it(module: str) -> None:
    order = documented_order()
    below = set(order[order.index(module) + 1 :])
    imported = build_imports(PACKAGE / f"{module}.py")
    assert imported <= below, f"{module} imports {sorted(imported - below)}: not below it"


@pytest.mark.parametrize("module", MODULES)
def test_only_the_command_module_reaches_up(module: str) -> None:
    """The old module's name and the CLI are above the package; only `cli` may use bakery.cli."""
    imported = imported_modules(PACKAGE / f"{module}.py")
    assert "bakery.builder" not in imported
    if module != "cli":
        assert "bakery.cli" not in imported


@pytest.mark.parametrize("module", [*MODULES, "__init__"])
def test_a_module_stays_small(module: str) -> None:
    source = (PACKAGE / f"{module}.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    long = [
        f"{node.name}: {(node.end_lineno or node.lineno) - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


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
