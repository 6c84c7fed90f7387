"""Reading a bakery package's shape from its source with `ast` (nothing is imported to check it).

A package's __init__ docstring lists its modules top first after the words "one module per
concept"; the layout tests hold every module to that order and to the size limits of issue 16.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

BAKERY = Path(__file__).resolve().parents[2] / "bakery"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 50


def modules(package: str) -> list[str]:
    """The package's module names, without __init__."""
    return sorted(p.stem for p in (BAKERY / package).glob("*.py") if p.name != "__init__.py")


def documented_order(package: str) -> list[str]:
    """The module names of the package map in bakery/<package>/__init__.py, top first."""
    source = (BAKERY / package / "__init__.py").read_text(encoding="utf-8")
    _, _, table = (ast.get_docstring(ast.parse(source)) or "").partition("one module per concept")
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


def package_imports(package: str, module: str) -> set[str]:
    """What bakery/<package>/<module>.py imports from its own package ("__init__": the package)."""
    full = f"bakery.{package}"
    return {
        "__init__" if name == full else name.removeprefix(f"{full}.").split(".")[0]
        for name in imported_modules(BAKERY / package / f"{module}.py")
        if name == full or name.startswith(f"{full}.")
    }


def long_functions(path: Path) -> list[str]:
    """Functions over MAX_FUNCTION_LINES, with their lengths."""
    return [
        f"{node.name}: {(node.end_lineno or node.lineno) - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
