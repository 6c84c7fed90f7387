"""bakery.devbox keeps the shape its __init__ describes (issue 16): layers and sizes.

The package docstring lists its modules top first; a module may import only modules listed
below it, so arrows point down and there is no cycle. No module imports the package's own
__init__, none is over 600 lines, no function over 50.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bakery import devbox

PACKAGE = Path(devbox.__file__).parent
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 50
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.name != "__init__.py")


def documented_order() -> list[str]:
    """The module names of the package map in bakery/devbox/__init__.py, top first."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    _, _, table = (doc or "").partition("one module per concept")
    return re.findall(r"^    ([a-z_]+) ", table, re.MULTILINE)


def devbox_imports(path: Path) -> set[str]:
    """What `path` imports from this package: module names, "__init__" for the package itself."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module == "bakery.devbox":
            found.add("__init__")
        elif node.module.startswith("bakery.devbox."):
            found.add(node.module.removeprefix("bakery.devbox."))
        elif node.module == "bakery" and any(alias.name == "devbox" for alias in node.names):
            found.add("__init__")
    return found


def test_the_package_map_names_every_module_once() -> None:
    order = documented_order()
    assert sorted(order) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_modules_below_it(module: str) -> None:
    order = documented_order()
    below = set(order[order.index(module) + 1 :])
    imported = devbox_imports(PACKAGE / f"{module}.py")
    assert imported <= below, f"{module} imports {sorted(imported - below)}: not below it"


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


def test_the_host_facts_are_not_defined_here() -> None:
    """GPU access, the invoking user and the CA bundle have one home: bakery.host."""
    from bakery import host  # noqa: PLC0415 - only this test needs it

    assert devbox.gpu_access is host.gpu_access
    assert devbox.invoking_user is host.invoking_user
    assert devbox.HostUser is host.HostUser
    defined = {
        node.name
        for module in MODULES
        for node in ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    assert defined.isdisjoint(
        {"gpu_access", "GpuAccess", "HostUser", "invoking_user", "parse_user"}
    )
