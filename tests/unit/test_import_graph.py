"""bakery's import graph keeps its layers (issue 16): no cycle, and the CLI stays on top.

The graph is read with ast from every module under bakery/, counting imports inside functions
too (the lazy ones that keep `list` and `enter` fast), collapsed to top-level units (`bakery.cli`,
`bakery.build`, `bakery.host`, ...). Then:
- no two units import each other, directly or around a loop;
- only bakery/cli/ imports argparse (so `argparse.Namespace` cannot travel into the library) or
  bakery.cli, and nothing uses argparse's private API;
- only bakery/engine/ imports python_on_whales: test_engine_layout.py checks that.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

import bakery

BAKERY = Path(bakery.__file__).parent
CLI = BAKERY / "cli"
# The one exception, with its reason: bakery-probe is a standalone script that the Dockerfile
# copies alone into every image (Dockerfile.in `COPY bakery/probe.py`), so its own command line
# cannot live in bakery.cli. Its checks take a frozen GuardSpec, not the Namespace.
OWN_COMMAND_LINE = {BAKERY / "probe.py"}
PRIVATE_ARGPARSE = {"_SubParsersAction", "_actions", "_add_action", "_option_string_actions"}


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package at `root`."""
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_names(path: Path) -> Iterator[str]:
    """Every name `path` imports, anywhere in the file (module level, functions, TYPE_CHECKING)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def unit(module: str) -> str:
    """The top-level unit of a module: bakery.build.plan -> bakery.build."""
    return ".".join(module.split(".")[:2])


def unit_graph(root: Path) -> dict[str, set[str]]:
    """unit -> the other units it imports (a name that is not a module counts as its package)."""
    modules = module_names(root)
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        for name in imported_names(path):
            target = name
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and unit(target) != unit(module):
                graph[unit(module)].add(unit(target))
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: list[str] = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def outside_cli() -> list[Path]:
    return sorted(p for p in BAKERY.rglob("*.py") if CLI not in p.parents)


def test_no_cycle_between_top_level_units() -> None:
    graph = unit_graph(BAKERY)
    assert graph, "the graph is empty: the reader found no imports"
    assert cycles(graph) == []


def test_no_library_module_imports_the_cli() -> None:
    offenders = [
        str(path.relative_to(BAKERY))
        for path in outside_cli()
        if any(n == "bakery.cli" or n.startswith("bakery.cli.") for n in imported_names(path))
    ]
    assert offenders == []


def test_only_the_cli_imports_argparse() -> None:
    offenders = [
        str(path.relative_to(BAKERY))
        for path in outside_cli()
        if path not in OWN_COMMAND_LINE
        and any(n.split(".")[0] == "argparse" for n in imported_names(path))
    ]
    assert offenders == []


def test_no_namespace_outside_the_cli() -> None:
    """Not even bakery-probe's checks take the parsed arguments: they get a frozen GuardSpec."""
    used = sorted(
        f"{path.relative_to(BAKERY)}:{node.lineno}"
        for path in outside_cli()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if (isinstance(node, ast.Attribute) and node.attr == "Namespace")
        or (isinstance(node, ast.Name) and node.id == "Namespace")
    )
    assert used == []


def test_no_argparse_private_api() -> None:
    used = sorted(
        f"{path.relative_to(BAKERY)}: {node.attr}"
        for path in BAKERY.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ARGPARSE
    )
    assert used == []


# The checks themselves, on small trees built for the purpose: each must catch its defect.


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / "bakery" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "bakery"


LAZY_LOOP = {
    "__init__.py": "",
    "cli/__init__.py": "from bakery import feature\n",
    "feature/__init__.py": "def run():\n    from bakery.cli import helper  # noqa\n",
    "matrix.py": "",
}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(LAZY_LOOP, [["bakery.cli", "bakery.feature"]], id="lazy-import-back"),
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "import bakery.b\n",
                "b.py": "from bakery import c\n",
                "c/__init__.py": "",
                "c/x.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bakery.a import A\n",
            },
            [["bakery.a", "bakery.b", "bakery.c"]],
            id="loop-of-three-through-type-checking",
        ),
        pytest.param(
            {"__init__.py": "", "a.py": "from bakery import b\n", "b.py": "import json\n"},
            [],
            id="arrows-down-only",
        ),
    ],
)
def test_the_cycle_check_sees_function_level_and_indirect_loops(
    tmp_path: Path, files: Mapping[str, str], expected: list[list[str]]
) -> None:
    assert cycles(unit_graph(write_tree(tmp_path, files))) == expected


def test_the_import_reader_sees_a_lazy_argparse_import(tmp_path: Path) -> None:
    root = write_tree(tmp_path, {"x.py": "def f():\n    import argparse.foo\n"})
    assert "argparse.foo" in set(imported_names(root / "x.py"))
