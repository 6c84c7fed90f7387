"""bakery.engine keeps the shape its __init__ describes (issue 16): layers, sizes, one importer.

The package docstring lists its modules top to bottom; a module may import only modules listed
below it, so arrows point down and there is no cycle. No module imports the package's own
__init__, and nothing outside bakery/engine/ imports python_on_whales.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bakery import engine

PACKAGE = Path(engine.__file__).parent
BAKERY = PACKAGE.parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 50
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.name != "__init__.py")


def documented_order() -> list[str]:
    """The module names of the package map in bakery/engine/__init__.py, top first."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    _, _, table = (doc or "").partition("one module per concept")
    return re.findall(r"^    ([a-z_]+) ", table, re.MULTILINE)


def engine_imports(path: Path) -> set[str]:
    """What `path` imports from this package: module names, "__init__" for the package itself."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module == "bakery.engine":
            found.add("__init__")
        elif node.module.startswith("bakery.engine."):
            found.add(node.module.removeprefix("bakery.engine."))
        elif node.module == "bakery" and any(alias.name == "engine" for alias in node.names):
            found.add("__init__")
    return found


def test_the_package_map_names_every_module_once() -> None:
    order = documented_order()
    assert sorted(order) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_modules_below_it(module: str) -> None:
    order = documented_order()
    below = set(order[order.index(module) + 1 :])
    imported = engine_imports(PACKAGE / f"{module}.py")
    assert imported <= below, f"{module} imports {sorted(imported - below)}: not below it"


@pytest.mark.parametrize("module", MODULES)
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


def imports_python_on_whales(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
        if any(name.split(".")[0] == "python_on_whales" for name in names):
            return True
    return False


def test_only_the_engine_imports_python_on_whales() -> None:
    outside = [
        str(path.relative_to(BAKERY))
        for path in sorted(BAKERY.rglob("*.py"))
        if PACKAGE not in path.parents and imports_python_on_whales(path)
    ]
    assert outside == []
    assert any(imports_python_on_whales(PACKAGE / f"{m}.py") for m in MODULES)
