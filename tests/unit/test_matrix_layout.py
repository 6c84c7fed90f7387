"""bakery.matrix stays a package a newcomer can hold in mind (issue 16, rules for the move).

Each module is at most 600 lines, each function at most 50, and the imports between the package's
modules point one way: no cycle, and no module imports the package's own __init__ (which only
re-exports). Read from the source with `ast`, so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bakery" / "matrix"
MODULES = sorted(PACKAGE.glob("*.py"))
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 50


def module_id(path: Path) -> str:
    return path.stem


def intra_imports(path: Path) -> set[str]:
    """The package modules `path` imports ("__init__" for `bakery.matrix` itself)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "bakery.matrix":
                found.add("__init__")
            elif node.module.startswith("bakery.matrix."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found.update(
                alias.name.split(".")[2] if alias.name.count(".") >= 2 else "__init__"
                for alias in node.names
                if alias.name == "bakery.matrix" or alias.name.startswith("bakery.matrix.")
            )
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first repeated last), or []."""
    done: set[str] = set()

    def visit(name: str, stack: list[str]) -> list[str]:
        if name in stack:
            return [*stack[stack.index(name) :], name]
        if name in done:
            return []
        for dep in sorted(graph.get(name, set())):
            if cycle := visit(dep, [*stack, name]):
                return cycle
        done.add(name)
        return []

    for name in sorted(graph):
        if cycle := visit(name, []):
            return cycle
    return []


def test_the_package_has_its_modules() -> None:
    assert len(MODULES) > 1, f"{PACKAGE} should be a package of several modules"


@pytest.mark.parametrize("path", MODULES, ids=module_id)
def test_module_is_at_most_600_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=module_id)
def test_functions_are_at_most_50_lines(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    long = [
        f"{node.name} ({(node.end_lineno or node.lineno) - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (node.end_lineno or node.lineno) - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == [], f"{path.name}: {', '.join(long)}"


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "__init__.py"], ids=module_id)
def test_module_does_not_import_the_package_init(path: Path) -> None:
    assert "__init__" not in intra_imports(path)


def test_imports_inside_the_package_have_no_cycle() -> None:
    graph = {module_id(path): intra_imports(path) for path in MODULES}
    assert find_cycle(graph) == []


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        pytest.param({"a": {"b"}, "b": set()}, [], id="chain"),
        pytest.param({"a": {"b"}, "b": {"a"}}, ["a", "b", "a"], id="two"),
        pytest.param({"a": {"b"}, "b": {"c"}, "c": {"b"}}, ["b", "c", "b"], id="tail"),
        pytest.param({"a": {"a"}}, ["a", "a"], id="self"),
    ],
)
def test_find_cycle_reports_a_cycle(graph: dict[str, set[str]], cycle: list[str]) -> None:
    assert find_cycle(graph) == cycle
