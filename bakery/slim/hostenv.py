"""The host environment, read without executing it: its Python, torch and torchvision, from
pyvenv.cfg, *.dist-info and torch/version.py.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from bakery.errors import GuardError, UsageError, shown

HOST_ENV_MOUNT = "/opt/host-env"  # the whole environment, so conda's $ORIGIN/../lib rpaths work


@dataclass(frozen=True)
class Dist:
    """An installed distribution, from its *.dist-info folder."""

    name: str
    version: str
    dist_info: Path

    @property
    def local(self) -> str:
        """The build label: 'rocm6.3' of '2.7.1+rocm6.3', '' for none."""
        return self.version.partition("+")[2]

    @property
    def release(self) -> str:
        return self.version.partition("+")[0]


@dataclass(frozen=True)
class TorchInfo:
    dist: Dist
    cuda: str | None  # torch.version.cuda
    hip: str | None  # torch.version.hip
    python_tags: tuple[str, ...]  # the wheel's interpreter tags, e.g. ("cp311",)


@dataclass(frozen=True)
class HostEnv:
    root: Path
    python: str  # "3.11"
    python_source: str  # where that was read
    site_packages: Path
    torch: TorchInfo | None
    torchvision: Dist | None

    @property
    def container_site_packages(self) -> str:
        return f"{HOST_ENV_MOUNT}/{self.site_packages.relative_to(self.root).as_posix()}"


def inspect_host_env(path: Path) -> HostEnv:
    """Read what the environment at `path` holds; GuardError if it is not a usable environment."""
    root = path.expanduser().resolve()
    # A path that is not there is a mistake on the command line (usage), not a guard verdict.
    if not root.exists():
        raise UsageError(
            f"--host-env {shown(str(path))}: no such folder",
            fix="pass the folder of a virtual environment or conda environment (the one holding bin/python)",
        )
    if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
        raise UsageError(
            f"--host-env {shown(str(path))}: not a readable folder",
            fix="pass the root folder of the environment (the one holding bin/ and lib/)",
        )
    python, source = env_python(root)
    site = root / "lib" / f"python{python}" / "site-packages"
    if not site.is_dir() or not os.access(site, os.R_OK | os.X_OK):
        raise GuardError(
            f"host environment {root} has no readable lib/python{python}/site-packages",
            why=f"its Python is {python} ({source})",
            fix="pass the environment's root folder (the one holding bin/ and lib/)",
        )
    return HostEnv(
        root=root,
        python=python,
        python_source=source,
        site_packages=site,
        torch=read_torch(site),
        torchvision=find_dist(site, "torchvision"),
    )


def env_python(root: Path) -> tuple[str, str]:
    """The environment's Python "X.Y" and where it was read: pyvenv.cfg, else lib/pythonX.Y."""
    config = read_pyvenv_cfg(root / "pyvenv.cfg")
    for key in ("version_info", "version"):  # uv writes version_info, venv writes version
        match = re.match(r"(\d+)\.(\d+)", config.get(key, ""))
        if match:
            return f"{match[1]}.{match[2]}", f"pyvenv.cfg {key} = {config[key]}"
    found = sorted(p.parent.name[len("python") :] for p in root.glob("lib/python3.*/site-packages"))
    if len(found) == 1:  # conda environments have no pyvenv.cfg
        return found[0], f"lib/python{found[0]}/site-packages"
    raise GuardError(
        f"cannot tell which Python the host environment {root} is for",
        why="it has no pyvenv.cfg with a version and "
        + (
            f"several lib/python3.*/site-packages ({', '.join(found)})"
            if found
            else "no lib/python3.*/site-packages"
        ),
        fix="pass the root folder of a virtual environment or conda environment",
    )


def read_pyvenv_cfg(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key.strip().lower(): value.strip() for key, _, value in pairs}


def read_metadata_field(path: Path, name: str) -> list[str]:
    """Every value of header `name` in an email-style metadata file (METADATA, WHEEL)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    header = text.split("\n\n", 1)[0]
    prefix = f"{name.lower()}:"
    return [
        line[len(prefix) :].strip()
        for line in header.splitlines()
        if line.lower().startswith(prefix)
    ]


def find_dist(site: Path, name: str) -> Dist | None:
    """The distribution `name` installed in `site`, from the newest-looking *.dist-info."""
    wanted = canonicalize_name(name)
    for dist_info in sorted(site.glob("*.dist-info"), reverse=True):
        dist_name, _, _ = dist_info.name[: -len(".dist-info")].partition("-")
        if canonicalize_name(dist_name) != wanted:
            continue
        versions = read_metadata_field(dist_info / "METADATA", "Version")
        if versions:
            return Dist(name=name, version=versions[0], dist_info=dist_info)
    return None


def read_torch(site: Path) -> TorchInfo | None:
    dist = find_dist(site, "torch")
    if dist is None or not (site / "torch" / "__init__.py").is_file():
        return None
    version_py = read_version_py(site / "torch" / "version.py")
    tags = read_metadata_field(dist.dist_info / "WHEEL", "Tag")
    return TorchInfo(
        dist=dist,
        cuda=version_py.get("cuda"),
        hip=version_py.get("hip"),
        python_tags=tuple(sorted({tag.split("-")[0] for tag in tags})),
    )


def read_version_py(path: Path) -> dict[str, str | None]:
    """The constant assignments of torch/version.py (`cuda = '12.8'`), parsed, never imported."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    values: dict[str, str | None] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.AnnAssign):  # cuda: Optional[str] = '12.8'
            targets = [node.target]
        elif isinstance(node, ast.Assign):
            targets = node.targets
        value = getattr(node, "value", None)
        name = targets[0] if len(targets) == 1 else None
        if isinstance(name, ast.Name) and isinstance(value, ast.Constant):
            values[name.id] = None if value.value is None else str(value.value)
    return values
