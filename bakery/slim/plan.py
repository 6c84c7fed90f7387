"""The plan of `run` and `compose`: everything decided before docker is called, the checks
that need the image, and the container it describes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from packaging.version import Version

from bakery import engine
from bakery.compat import python_key
from bakery.defaults import WORKSPACE_MOUNT as WORKSPACE_MOUNT  # noqa: PLC0414 - re-exported for mypy
from bakery.errors import UsageError
from bakery.gpuselect import parse_env_flags, select_gpus
from bakery.host import GpuAccess, HostUser, detect_host_target
from bakery.matrix import Selection, Variant, load_matrix, select_variants
from bakery.slim.access import (
    container_user,
    device_access,
    user_text,
)
from bakery.slim.glibc import glibc_needs, glibc_problems, image_glibc
from bakery.slim.guards import env_problems, guard_host_env, refuse
from bakery.slim.hostenv import (
    HOST_ENV_MOUNT,
    HostEnv,
    inspect_host_env,
)
from bakery.ui import err_console


@dataclass(frozen=True)
class SlimRequest:
    """What `run`/`compose` were asked for, before the selection and the host env are resolved."""

    matrix: Path
    selection: Selection
    slim: bool = False  # --slim (same as --flavour slim)
    host_env: Path | None = None
    repository: str | None = None  # None: the matrix's
    workspace: Path = Path()
    user: str | None = None  # UID:GID; None: the host user's
    gpus: str | None = None
    env: tuple[str, ...] = ()  # KEY=VALUE
    command: tuple[str, ...] = ()
    name: str | None = None  # run: the container's; None: bakery-run-<random>
    shm_size: str = engine.DEFAULT_SHM
    ipc_host: bool = False


@dataclass(frozen=True)
class SlimPlan:
    variant: Variant
    image: str
    host_env: HostEnv | None
    workspace: Path
    user: HostUser
    command: tuple[str, ...]
    gpu: GpuAccess
    name: str  # the container's (run)
    extra_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    shm_size: str = engine.DEFAULT_SHM  # the same DataLoader shared memory as `up`
    ipc_host: bool = False

    def environment(self) -> dict[str, str]:
        # The host uid has no home (maybe no passwd entry) in the image: the container's own /tmp.
        env = {"HOME": "/tmp", **self.extra_env}  # noqa: S108
        if self.host_env is not None:
            env["PYTHONPATH"] = self.host_env.container_site_packages
        return env

    def volumes(self) -> tuple[tuple[Path, str, str], ...]:
        mounts = [(self.workspace, WORKSPACE_MOUNT, "rw")]
        if self.host_env is not None:
            mounts.insert(0, (self.host_env.root, HOST_ENV_MOUNT, "ro"))
        return tuple(mounts)


def plan_slim(request: SlimRequest, default_command: tuple[str, ...] = ()) -> SlimPlan:
    """Resolve the selection and the host environment and run every check that needs no docker."""
    slim = request.slim or "slim" in request.selection.flavours
    if slim and request.host_env is None:
        raise UsageError(
            "a slim image needs --host-env PATH", fix="name the host environment that holds torch"
        )
    if request.host_env is not None and not slim:
        raise UsageError("--host-env is for slim images", fix="add --slim")
    host_env = inspect_host_env(request.host_env) if request.host_env is not None else None
    v = choose_variant(_variants(request, "slim" if slim else "full"), host_env)
    image = v.ref(request.repository)
    problems = env_problems(host_env, v) if host_env is not None else []
    if host_env is not None and problems:  # before device access: the env's faults come first
        raise refuse(host_env, image, problems)
    gpu, gpu_env = select_gpus(device_access(v), request.gpus)
    extra_env = MappingProxyType({**gpu_env, **parse_env_flags(request.env)})
    user = container_user(request.user)
    if host_env is not None:
        guard_host_env(host_env, v, image, user, gpu)
    workspace = request.workspace.expanduser().resolve()
    if not workspace.is_dir():
        raise UsageError(f"--workspace {request.workspace} is not a folder")
    command = request.command or default_command
    name = request.name or f"bakery-run-{uuid.uuid4().hex[:12]}"
    return SlimPlan(
        v, image, host_env, workspace, user, command, gpu, name, extra_env,
        request.shm_size, request.ipc_host,
    )  # fmt: skip


def _variants(request: SlimRequest, flavour: str) -> list[Variant]:
    """The selection flags' variants of one flavour; no --target means the host's accelerator."""
    selection = replace(request.selection, flavours=(flavour,))
    if not selection.targets and not selection.variants:
        target, reason = detect_host_target()
        err_console().print(f"no --target given: using [bold]{target}[/] ({reason})")
        selection = replace(selection, targets=(target,))
    return select_variants(load_matrix(request.matrix), selection)


def choose_variant(variants: Sequence[Variant], env: HostEnv | None) -> Variant:
    """The one selected variant; of several slim ones, the host env's Python and torch decide.

    Slim images carry no torch, so when the env's torch names no variant the newest one for its
    Python serves (the guards then check the build).
    """
    if len(variants) == 1:
        return variants[0]
    ambiguous = UsageError(
        f"the selection matches {len(variants)} variants ({', '.join(v.id for v in variants)})",
        fix="narrow it to one with --target, --python, --torch or --variant",
    )
    if env is None or len({v.target for v in variants}) > 1:
        raise ambiguous
    same_python = [v for v in variants if v.python == env.python]
    pool = same_python or list(variants)  # none: the guards say which Pythons there are
    torch = env.torch.dist.release if env.torch is not None else ""
    same_torch = [v for v in pool if v.torch == torch]
    return max(same_torch or pool, key=lambda v: (Version(v.torch), python_key(v.python)))


def check_image(plan: SlimPlan) -> None:
    """The image exists, and the host environment's compiled code runs on its glibc."""
    info = engine.inspect_image(plan.image)
    if info is None:
        raise UsageError(
            f"image {plan.image} is not built",
            fix=f"build it with `python build.py --variant {plan.variant.id}`",
        )
    if plan.host_env is None:
        return
    have = image_glibc(plan.image, info.labels)
    problems = glibc_problems(glibc_needs(plan.host_env.site_packages), have)
    if problems:
        raise refuse(plan.host_env, plan.image, problems)


def describe_plan(plan: SlimPlan) -> list[str]:
    lines = [f"{plan.variant.id}: {plan.image} as {user_text(plan.user)}"]
    env = plan.host_env
    if env is not None and env.torch is not None:
        lines.append(
            f"  host env {env.root} (Python {env.python}, torch {env.torch.dist.version}) -> "
            f"{HOST_ENV_MOUNT} read-only, PYTHONPATH={env.container_site_packages}"
        )
    lines.append(f"  workspace {plan.workspace} -> {WORKSPACE_MOUNT}")
    gpu = plan.gpu
    flags = [
        *gpu.devices,
        *(f"group {g}" for g in gpu.group_add),
        *([f"gpus {gpu.gpus}"] if gpu.gpus else []),
    ]
    lines.append(f"  devices: {', '.join(flags) or 'none (cpu)'}")
    return lines


def container_spec(plan: SlimPlan) -> engine.ContainerSpec:
    """The engine's ContainerSpec for `plan`."""
    return engine.ContainerSpec(
        name=plan.name,
        image=plan.image,
        command=plan.command,
        user=user_text(plan.user),
        workdir=WORKSPACE_MOUNT,
        env=plan.environment(),
        volumes=plan.volumes(),
        devices=plan.gpu.devices,
        group_add=plan.gpu.group_add,
        gpus=plan.gpu.gpus,
        security_options=plan.gpu.security_options,
        ipc="host" if plan.ipc_host else None,
        shm_size=None if plan.ipc_host else plan.shm_size,
    )
