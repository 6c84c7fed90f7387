"""Each layered package keeps the shape its __init__ describes (issue 16): layers and sizes.

The package docstring lists its modules top first; a module may import only modules listed below
it, so arrows point down and there is no cycle. No module imports the package's own __init__,
none is over 600 lines, no function over 50. What is particular to one package (engine: the only
importer of python_on_whales; build: its old name; devbox: no host facts of its own) is in that
package's test_<package>_layout.py.
"""

from __future__ import annotations

import pytest
from support.layout import (
    BAKERY,
    MAX_MODULE_LINES,
    documented_order,
    long_functions,
    modules,
    package_imports,
)

PACKAGES = ("build", "bundle", "devbox", "engine", "publish", "slim")
MODULES = [(package, module) for package in PACKAGES for module in modules(package)]


@pytest.mark.parametrize("package", PACKAGES)
def test_the_package_map_names_every_module_once(package: str) -> None:
    assert sorted(documented_order(package)) == modules(package)


@pytest.mark.parametrize(("package", "module"), MODULES)
def test_a_module_imports_only_modules_below_it(package: str, module: str) -> None:
    order = documented_order(package)
    below = set(order[order.index(module) + 1 :])
    imported = package_imports(package, module)
    assert imported <= below, f"{module} imports {sorted(imported - below)}: not below it"


@pytest.mark.parametrize(
    ("package", "module"), [*MODULES, *((package, "__init__") for package in PACKAGES)]
)
def test_a_module_stays_small(package: str, module: str) -> None:
    path = BAKERY / package / f"{module}.py"
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES
    assert long_functions(path) == []
