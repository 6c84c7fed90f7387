"""Facts about the host bakery runs on, one rule each.

- the accelerator (`detect_host_target`): from the device nodes under /dev;
- GPU device nodes and their groups (`gpu_access`, `GpuAccess`): the one implementation of the
  accelerator's `docker run` flags, used by builds' tests, `up`, `slim run`, `doctor`, bundles;
- the invoking user (`invoking_user`, `parse_user`, `HostUser`): under sudo, the one who called it;
- the CA bundle (`find_ca_bundle`): the file HTTPS steps and dev containers are given.

Every function takes the folder or environment it reads as a parameter (default: the real one),
so tests pass simulated device nodes (environment.md, "Simulating GPU device nodes").
"""

from __future__ import annotations

import os
import pwd
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bakery.defaults import MAX_ID
from bakery.errors import UsageError, printable, shown

CA_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")  # the order pip and requests use


# ---------------------------------------------------------------------------------------------
# The accelerator


def detect_host_target(dev: Path = Path("/dev")) -> tuple[str, str]:
    """(target, reason) from the host's device nodes."""
    if (dev / "kfd").exists():
        return "rocm", f"{dev}/kfd exists (AMD ROCm)"
    if (dev / "nvidiactl").exists() or any(dev.glob("nvidia[0-9]*")):
        return "cuda", f"{dev}/nvidia* exist (NVIDIA)"
    return "cpu", f"no {dev}/kfd or {dev}/nvidia* on this host"


# ---------------------------------------------------------------------------------------------
# GPU access: the one implementation of the accelerator's `docker run` flags


@dataclass(frozen=True)
class GpuAccess:
    """What a container needs to use the host's GPU, or why it cannot."""

    accelerator: str
    devices: tuple[str, ...] = ()  # "host path:container path"
    group_add: tuple[str, ...] = ()  # numeric gids, de-duplicated, sorted
    gpus: str | None = None
    security_options: tuple[str, ...] = ()
    missing: str = ""  # why no GPU is passed ("" when it is, or for CPU variants)

    def run_args(self) -> list[str]:
        args: list[str] = []
        for device in self.devices:
            args += ["--device", device]
        if self.gpus:
            args += ["--gpus", self.gpus]
        for option in self.security_options:
            args += ["--security-opt", option]
        for gid in self.group_add:
            args += ["--group-add", gid]
        return args


def _char_devices(paths: Iterable[Path]) -> list[Path]:
    return sorted(p for p in paths if p.exists() and stat.S_ISCHR(p.stat().st_mode))


def device_gids(nodes: Iterable[Path]) -> tuple[str, ...]:
    """The nodes' group ids, numeric and de-duplicated (runc fails on a gid given twice, once
    by name); gid 0 is left out, it would make the user a member of root's group."""
    return tuple(str(gid) for gid in sorted({n.stat().st_gid for n in nodes} - {0}))


def gpu_access(accelerator: str, dev: Path = Path("/dev")) -> GpuAccess:
    """ROCm: /dev/kfd and /dev/dri with their groups and seccomp=unconfined; CUDA: --gpus all
    (plus the groups of /dev/nvidia* on hosts that restrict them); CPU: nothing."""
    if accelerator == "rocm":
        kfd, dri = dev / "kfd", dev / "dri"
        if not kfd.exists():
            return GpuAccess(accelerator, missing=f"no {kfd} on this host (no AMD GPU driver)")
        nodes = _char_devices([kfd, *(dri.iterdir() if dri.is_dir() else ())])
        devices = (f"{kfd}:/dev/kfd", *((f"{dri}:/dev/dri",) if dri.is_dir() else ()))
        return GpuAccess(accelerator, devices, device_gids(nodes), None, ("seccomp=unconfined",))
    if accelerator == "cuda":
        if not (dev / "nvidiactl").exists():
            return GpuAccess(
                accelerator, missing=f"no {dev}/nvidiactl on this host (no NVIDIA GPU)"
            )
        nodes = _char_devices(dev.glob("nvidia*"))
        return GpuAccess(accelerator, group_add=device_gids(nodes), gpus="all")
    return GpuAccess(accelerator)


def gpu_run_args(accelerator: str, dev: Path = Path("/dev")) -> list[str]:
    """The `docker run` flags that give a container the host's GPU ([] when there is none)."""
    return gpu_access(accelerator, dev).run_args()


# ---------------------------------------------------------------------------------------------
# Who the container runs as


@dataclass(frozen=True)
class HostUser:
    uid: int
    gid: int
    name: str  # login on the host, or "u<uid>" when the uid has no account here
    home: Path | None  # home on the host (cache defaults); None without an account


def _account(uid: int) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None


def host_user(uid: int, gid: int) -> HostUser:
    entry = _account(uid)
    if entry is None:
        return HostUser(uid, gid, f"u{uid}", None)
    return HostUser(uid, gid, entry.pw_name, Path(entry.pw_dir))


def invoking_user(env: Mapping[str, str] = os.environ) -> HostUser:
    """The user who ran bakery: under sudo the one who called sudo, not root."""
    if (
        os.geteuid() == 0
        and env.get("SUDO_UID", "").isdigit()
        and env.get("SUDO_GID", "").isdigit()
    ):
        return host_user(int(env["SUDO_UID"]), int(env["SUDO_GID"]))
    return host_user(os.getuid(), os.getgid())


def parse_user(text: str) -> HostUser:
    """`--user UID:GID` (numbers: the container has no host accounts to resolve names)."""
    match = re.fullmatch(r"([0-9]{1,10}):([0-9]{1,10})", text.strip())
    ids = (int(match.group(1)), int(match.group(2))) if match else None
    if ids is None or max(ids) > MAX_ID:
        raise UsageError(
            f"--user {shown(text)} is not UID:GID",
            fix=f"give numbers from 0 to {MAX_ID}, e.g. --user 1000:1000",
        )
    return host_user(*ids)


# ---------------------------------------------------------------------------------------------
# The CA bundle


def find_ca_bundle(
    explicit: Path | None, env: Mapping[str, str] | None = None, option: str = "--ca-cert"
) -> Path | None:
    """The CA bundle to hand to HTTPS steps and dev containers.

    One rule for builds, `up` and `doctor`: a bundle the user named (the option, else the first
    of PIP_CERT/REQUESTS_CA_BUNDLE/SSL_CERT_FILE that is set) must exist, or this is an error
    naming that option or variable; with none named there is no bundle and the images' own CA
    store is used (unset and empty variables are skipped silently).
    """
    env = os.environ if env is None else env
    if explicit is not None:
        if not explicit.is_file():
            raise UsageError(
                f"CA bundle {printable(str(explicit))} not found",
                fix=f"pass {option} with an existing PEM file",
            )
        return explicit
    for name in CA_ENV:
        value = env.get(name)
        if value:
            path = Path(value)
            if not path.is_file():
                raise UsageError(
                    f"CA bundle {printable(str(path))} (from ${name}) not found",
                    fix=f"fix ${name} or pass {option}",
                )
            return path
    return None
