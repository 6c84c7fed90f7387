"""compose.yaml: the plan as a Compose file, read back by Compose before it gets its name,
never replacing a file unless asked.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bakery import engine
from bakery.atomicfile import pending_file
from bakery.defaults import COMPOSE_COMMAND as COMPOSE_COMMAND  # noqa: PLC0414 - re-exported for mypy
from bakery.errors import UsageError
from bakery.host import GpuAccess
from bakery.slim.access import (
    user_text,
)
from bakery.slim.plan import (
    WORKSPACE_MOUNT,
    SlimPlan,
)

COMPOSE_SERVICE = "train"


def compose_document(plan: SlimPlan) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": plan.image,
        "user": user_text(plan.user),
        "working_dir": WORKSPACE_MOUNT,
        "environment": plan.environment(),
        "volumes": [
            {
                "type": "bind",
                "source": str(src),
                "target": dst,
                "read_only": mode == "ro",
                "bind": {"create_host_path": False},  # a missing folder is an error, not created
            }
            for src, dst, mode in plan.volumes()
        ],
    }
    if plan.command:
        service["command"] = list(plan.command)
    gpu = plan.gpu
    if gpu.devices:
        service["devices"] = list(gpu.devices)
    if gpu.group_add:
        service["group_add"] = list(gpu.group_add)
    if gpu.security_options:
        service["security_opt"] = list(gpu.security_options)
    if plan.ipc_host:
        service["ipc"] = "host"
    else:
        service["shm_size"] = plan.shm_size
    if gpu.gpus:
        service["deploy"] = {"resources": {"reservations": {"devices": [_nvidia_devices(gpu)]}}}
    name = re.sub(r"[^a-z0-9_-]", "-", f"bakery-{plan.variant.id}".lower())
    return {"name": name, "services": {COMPOSE_SERVICE: service}}


def _nvidia_devices(gpu: GpuAccess) -> dict[str, Any]:
    """compose's device reservation: all GPUs, or the ones --gpus named (device_ids)."""
    spec: dict[str, Any] = {"driver": "nvidia", "capabilities": ["gpu"]}
    ids = (gpu.gpus or "").strip('"').removeprefix("device=")
    if ids and ids != "all":
        spec["device_ids"] = ids.split(",")
    else:
        spec["count"] = "all"
    return spec


def render_compose(plan: SlimPlan, output: Path) -> str:
    import yaml  # type: ignore[import-untyped]  # noqa: PLC0415 - no stubs installed; only `compose` needs it

    env = plan.host_env
    header = [
        f"# Written by `python build.py compose` for {plan.variant.id}; keep it or re-run that.",
    ]
    if env is not None and env.torch is not None:
        header.append(
            f"# Checked then: {env.root} is Python {env.python} with torch {env.torch.dist.version}; "
            "Compose does not re-check it."
        )
    header.append(f"#   docker compose -f {output.name} up          # runs the command below")
    header.append(f"#   docker compose -f {output.name} run --rm {COMPOSE_SERVICE} COMMAND")
    comments = "".join(f"{_one_line(line)}\n" for line in header)
    body: str = yaml.safe_dump(
        compose_document(plan), sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return comments + body


def _one_line(comment: str) -> str:
    """A YAML comment stays one comment whatever a path holds."""
    return comment.replace("\r", "\\r").replace("\n", "\\n")


def write_checked(target: Path, text: str, *, force: bool = False) -> None:
    """Write `text` next to `target`, have Compose read it, and only then give it the name.

    An existing file is replaced only with `force`; the no-clobber commit is a hard link, so a
    file that appears meanwhile is not replaced either.
    """
    target = refuse_existing(target, force=force)
    with pending_file(target) as pending:
        pending.write(text.encode("utf-8"))
        engine.compose_config(pending.temp)
        try:
            pending.commit(overwrite=force)
        except FileExistsError:
            raise UsageError(*_exists_problem(target)) from None


def refuse_existing(target: Path, *, force: bool) -> Path:
    """The absolute output path; UsageError if it is a folder, or exists and not `force`."""
    target = target.expanduser().absolute()
    if target.is_dir():
        raise UsageError(
            f"--output {target} is a folder", fix="give a file name, e.g. compose.yaml"
        )
    if not force and (target.exists() or target.is_symlink()):
        raise UsageError(*_exists_problem(target))
    return target


def _exists_problem(target: Path) -> tuple[str, str, str]:
    return (
        f"{target} already exists",
        "compose never replaces a file without being asked",
        "pass --force to replace it, or --output another file",
    )
