"""Package namespaces whose names are imported on first use (PEP 562), not with the package.

`import bakery.devbox.fast` runs bakery/devbox/__init__.py first; when that file re-exports from
every module, the fast path pays for all of them. A package that lists where each name lives
imports nothing until a name is asked for. Its `if TYPE_CHECKING:` imports keep type checking
exact; tests/unit/test_lazy_packages.py checks that both lists agree.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def loader(
    package: str, home: Mapping[str, str], namespace: MutableMapping[str, Any]
) -> Callable[[str], Any]:
    """The package's `__getattr__`: import module `home[name]`, keep the value, return it."""

    def __getattr__(name: str) -> Any:
        module = home.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
