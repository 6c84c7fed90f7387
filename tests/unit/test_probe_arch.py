"""bakery-probe's architecture rules, table-driven from published arch lists.

Arch lists: torch 2.7-2.9 `+cu128` wheels report sm_75 … sm_120 plus compute_120 PTX
(torch.cuda.get_arch_list()); `+rocm6.3` wheels carry gfx900 … gfx1201 (uv-torch backend.rs).
"""

from __future__ import annotations

from typing import Any

import pytest

from bakery.probe import arch_runs, findings

CU128 = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120"]
BLACKWELL_PTX = ["sm_80", "sm_90", "sm_100", "compute_100"]
ROCM63 = ["gfx900", "gfx906", "gfx908", "gfx90a", "gfx942", "gfx1030", "gfx1100", "gfx1101"]
ENV: dict[str, str] = {}

ROWS = [
    # device, arch list, env, runs, advice
    ("sm_89", ["sm_80", "sm_86", "sm_90"], ENV, True, ""),  # same-major cubin (RTX 40xx, L4, L40S)
    ("sm_89", CU128, ENV, True, ""),
    ("sm_120", BLACKWELL_PTX, ENV, True, ""),  # compute_100 PTX JITs forward
    ("sm_120", ["sm_80", "sm_90", "sm_100"], ENV, False, ""),  # cubins never cross majors
    ("sm_75", ["sm_80", "sm_86", "compute_86"], ENV, False, ""),  # PTX never runs backward
    ("sm_90", ["sm_80", "sm_90a"], ENV, False, ""),  # sm_90a is arch-specific, sm_80 other major
    ("sm_86", ["sm_89", "sm_90"], ENV, False, ""),  # a newer minor cubin does not run on older
    ("gfx90a", ROCM63, ENV, True, ""),
    ("gfx1101", ["gfx1100"], ENV, False, "--env HSA_OVERRIDE_GFX_VERSION=11.0.0"),
    ("gfx1101", ["gfx1100"], {"HSA_OVERRIDE_GFX_VERSION": "11.0.0"}, True, ""),
    ("gfx1032", ["gfx1030", "gfx1100"], ENV, False, "--env HSA_OVERRIDE_GFX_VERSION=10.3.0"),
    ("gfx1102", ["gfx1030"], ENV, False, ""),  # the family target is not in the wheel
    ("gfx906", ["gfx90a"], ENV, False, ""),  # different target, no documented override
    ("gfx1151", ROCM63, ENV, False, ""),
]


@pytest.mark.parametrize(
    ("device", "arch_list", "env", "runs", "advice"),
    ROWS,
    ids=[f"{r[0]}-on-{'+'.join(r[1])}{'-override' if r[2] else ''}" for r in ROWS],
)
def test_arch_rules(
    device: str, arch_list: list[str], env: dict[str, str], runs: bool, advice: str
) -> None:
    assert arch_runs(device, arch_list, env) == (runs, advice)


def report_parts(accelerator: str, archs: list[str], arch_list: list[str]) -> dict[str, Any]:
    hip = "6.3.42131" if accelerator == "rocm" else None
    cuda = "12.8" if accelerator == "cuda" else None
    build = {"version": "2.9.1", "hip": hip, "cuda": cuda, "arch_list": arch_list, "error": None}
    nodes = [{"path": "/dev/x", "exists": True, "openable": True}]
    devices = {"count": len(archs), "names": archs, "archs": archs, "error": None}
    return {"accelerator": accelerator, "build": build, "nodes": nodes, "devices": devices}


def test_sm89_on_cu128_list_without_sm89_is_ok() -> None:
    assert findings(**report_parts("cuda", ["sm_89"], ["sm_80", "sm_86", "sm_90"])) == []


def test_gfx1101_on_gfx1100_wheel_advises_a_pasteable_flag() -> None:
    found = findings(**report_parts("rocm", ["gfx1101"], ["gfx1100"]))
    assert [v for v, _ in found] == ["arch-not-in-wheel"]
    assert "--env HSA_OVERRIDE_GFX_VERSION=11.0.0" in found[0][1]


def test_gfx906_on_gfx90a_wheel_is_not_ok_and_offers_no_override() -> None:
    found = findings(**report_parts("rocm", ["gfx906"], ["gfx90a"]))
    assert [v for v, _ in found] == ["arch-not-in-wheel"]
    assert "HSA_OVERRIDE" not in found[0][1]
