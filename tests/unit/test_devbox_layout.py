"""bakery.devbox defines no host facts of its own (issue 16); layers and sizes are
test_package_layout.py's."""

from __future__ import annotations

import ast

from support.layout import BAKERY, modules

from bakery import devbox

PACKAGE = BAKERY / "devbox"


def test_the_host_facts_are_not_defined_here() -> None:
    """GPU access, the invoking user and the CA bundle have one home: bakery.host."""
    from bakery import host  # noqa: PLC0415 - only this test needs it

    assert devbox.gpu_access is host.gpu_access
    assert devbox.invoking_user is host.invoking_user
    assert devbox.HostUser is host.HostUser
    defined = {
        node.name
        for module in modules("devbox")
        for node in ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8")).body
        if isinstance(node, ast.FunctionDef | ast.ClassDef)
    }
    assert defined.isdisjoint(
        {"gpu_access", "GpuAccess", "HostUser", "invoking_user", "parse_user"}
    )
