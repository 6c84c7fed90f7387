"""Devices and the container user: the dev containers' own rules (bakery.devbox), and
whether that user can read the host environment.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from bakery.errors import GuardError
from bakery.host import GpuAccess, HostUser, gpu_access, invoking_user, parse_user
from bakery.matrix import Variant
from bakery.slim.hostenv import (
    HostEnv,
)


def device_access(v: Variant, dev: Path = Path("/dev")) -> GpuAccess:
    """The accelerator's device flags on this host; GuardError when its device nodes are missing."""
    access = gpu_access(v.accelerator, dev)
    if access.missing:
        raise GuardError(
            f"{access.missing}: the {v.target} image could not reach a GPU",
            fix="install the GPU driver (and for CUDA the NVIDIA container toolkit), or use --target cpu",
        )
    return access


def container_user(requested: str | None) -> HostUser:
    """--user UID:GID, else the user who ran bakery (under sudo, the one who called sudo)."""
    return parse_user(requested) if requested is not None else invoking_user()


def user_text(user: HostUser) -> str:
    return f"{user.uid}:{user.gid}"


def unreadable_for(paths: Sequence[Path], uid: int, gids: Sequence[int]) -> list[Path]:
    """The paths the container user could not read (and, for folders, enter), from mode bits."""
    return [p for p in paths if not _permits(p.stat(), uid, gids)]


def _permits(st: os.stat_result, uid: int, gids: Sequence[int]) -> bool:
    if uid == 0:
        return True
    need = 0o5 if stat.S_ISDIR(st.st_mode) else 0o4
    if st.st_uid == uid:
        bits = st.st_mode >> 6
    elif st.st_gid in gids:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & need == need


def paths_to_read(env: HostEnv) -> list[Path]:
    """The environment's root, the folders down to site-packages, and torch's entry points."""
    paths = [env.root]
    for part in env.site_packages.relative_to(env.root).parts:
        paths.append(paths[-1] / part)
    if env.torch is not None:
        paths += [env.site_packages / "torch", env.site_packages / "torch" / "__init__.py"]
    return paths
