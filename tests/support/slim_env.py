"""Stand-in host environments for the slim tests that need no Docker (tests/unit).

`make_env` writes what bakery reads of a host environment (a pyvenv.cfg, dist-info folders,
torch/version.py); nothing in it is ever executed. `plan` is a slim plan over such an env.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bakery import slim
from bakery.devbox import GpuAccess, HostUser
from bakery.matrix import Variant, load_matrix

ROOT = Path(__file__).resolve().parents[2]
CUDA_SLIM = next(
    v for v in load_matrix(ROOT / "matrix.toml").variants if v.id == "2.9.1-cuda12.8-py3.11-slim"
)

TORCH_VERSION_PY = """\
from typing import Optional

__all__ = ['__version__', 'debug', 'cuda', 'git_version', 'hip', 'rocm', 'xpu']
__version__ = '{version}'
debug = False
cuda: Optional[str] = {cuda!r}
git_version = 'cf30153c4c131c8164ee7798e5022d810682e2cb'
hip: Optional[str] = {hip!r}
"""


def write_dist(
    site: Path,
    name: str,
    version: str,
    tags: Sequence[str] = ("py3-none-any",),
    files: dict[str, bytes] | None = None,
) -> Path:
    """A *.dist-info with METADATA, WHEEL and RECORD, and the files RECORD lists."""
    dist_info = site / f"{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nA description.\n"
    )
    tag_lines = "".join(f"Tag: {tag}\n" for tag in tags)
    (dist_info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\n{tag_lines}")
    records = []
    for rel, data in (files or {}).items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        records.append(f"{rel},sha256=x,{len(data)}")
    (dist_info / "RECORD").write_text("".join(f"{line}\n" for line in records))
    return dist_info


def make_env(
    root: Path,
    python: str = "3.11",
    torch: str | None = "2.13.0+cpu",
    cuda: str | None = None,
    hip: str | None = None,
    torchvision: str | None = None,
    pyvenv: bool = True,
    stack: bool = True,
) -> Path:
    """A stand-in environment laid out like a venv (or, pyvenv=False, like a conda env)."""
    site = root / "lib" / f"python{python}" / "site-packages"
    site.mkdir(parents=True)
    if pyvenv:
        (root / "pyvenv.cfg").write_text(
            f"home = /usr/bin\ninclude-system-site-packages = false\nversion = {python}.7\n"
        )
    cp = "cp" + python.replace(".", "")
    if torch is not None:
        write_dist(
            site,
            "torch",
            torch,
            tags=(f"{cp}-{cp}-manylinux_2_28_x86_64",),
            files={
                "torch/__init__.py": b"",
                "torch/version.py": TORCH_VERSION_PY.format(
                    version=torch, cuda=cuda, hip=hip
                ).encode(),
            },
        )
    if torchvision is not None:
        write_dist(site, "torchvision", torchvision, tags=(f"{cp}-{cp}-manylinux_2_28_x86_64",))
    if stack:
        for name in STACK_NAMES:
            write_dist(site, name, "1.0")
    return root


# Every [[stack]] package of the shipped matrix: a slim host env must carry the stack too.
STACK_NAMES = sorted({n for v in load_matrix(ROOT / "matrix.toml").variants for n, _ in v.stack})


def plan(tmp_path: Path, v: Variant, gpu: GpuAccess) -> slim.SlimPlan:
    env_root = tmp_path / "env"
    env = slim.inspect_host_env(env_root if env_root.exists() else make_env(env_root))
    return slim.SlimPlan(
        v,
        f"repo:{v.tag}",
        env,
        tmp_path,
        HostUser(4321, 4322, "u4321", None),
        slim.COMPOSE_COMMAND,
        gpu,
        "n",
    )
