"""bakery.engine is the one importer of python_on_whales (issue 16); layers and sizes are
test_package_layout.py's."""

from __future__ import annotations

import ast
from pathlib import Path

from support.layout import BAKERY, modules

PACKAGE = BAKERY / "engine"
MODULES = modules("engine")


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
