"""`--env KEY=VALUE` and `--gpus` for the commands that start containers (up, enter --create,
run, compose): parsed and checked before anything starts.

GPU selection:
* ROCm: `--gpus 0,1` passes /dev/kfd plus only the render nodes renderD128+N of those GPUs
  (ROCm's documented way to restrict a container: rocm.docs.amd.com "Running ROCm Docker
  containers"), and sets HIP_VISIBLE_DEVICES to their numbers inside the container, which
  counts the passed GPUs from 0. Render node N is GPU N on hosts whose only DRM devices are the
  GPUs; `ls -l /dev/dri/by-path` tells otherwise.
* NVIDIA: `--gpus 0,1` becomes docker's `--gpus "device=0,1"` (UUIDs work too); `--gpus all`
  is the default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bakery.errors import UsageError
from bakery.host import GpuAccess

ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
ROCM_INDEX_RE = re.compile(r"[0-9]{1,2}", re.ASCII)
NVIDIA_ID_RE = re.compile(r"[0-9]{1,2}|GPU-[0-9a-fA-F-]{8,64}|MIG-[0-9a-zA-Z/-]{8,64}", re.ASCII)
RENDER_BASE = 128


def parse_env_flags(values: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not ENV_KEY_RE.fullmatch(key):
            raise UsageError(
                f"--env {value!r} is not KEY=VALUE with a variable name as KEY",
                "names are ASCII letters, digits and _, not starting with a digit",
                "e.g. --env HSA_OVERRIDE_GFX_VERSION=11.0.0",
            )
        if "\n" in text or "\0" in text:
            raise UsageError(
                f"--env {key}: the value {text!r} holds a newline or NUL byte",
                fix="pass a single-line value",
            )
        result[key] = text
    return result


def select_gpus(
    access: GpuAccess, spec: str | None, dev: Path = Path("/dev")
) -> tuple[GpuAccess, dict[str, str]]:
    """`access` narrowed to the GPUs in `spec`, and the variables that go with it."""
    if spec is None or spec == "all":
        return access, {}
    if access.accelerator == "cpu":
        raise UsageError(
            f"--gpus {spec!r} for a CPU image", fix="drop --gpus, or pick a GPU target"
        )
    if access.missing:
        raise UsageError(f"--gpus {spec!r}: {access.missing}", fix="drop --gpus on this host")
    ids = [part.strip() for part in spec.split(",")]
    if access.accelerator == "rocm":
        return _select_rocm(access, spec, ids, dev)
    if not all(NVIDIA_ID_RE.fullmatch(i) for i in ids):
        raise UsageError(
            f"--gpus {spec!r} is not a list of GPU numbers or UUIDs",
            fix="e.g. --gpus 0,1 or --gpus GPU-<uuid> (nvidia-smi -L lists them)",
        )
    return replace(access, gpus=f'"device={",".join(ids)}"'), {}


def _select_rocm(
    access: GpuAccess, spec: str, ids: list[str], dev: Path
) -> tuple[GpuAccess, dict[str, str]]:
    if not all(ROCM_INDEX_RE.fullmatch(i) for i in ids) or len(set(ids)) != len(ids):
        raise UsageError(
            f"--gpus {spec!r} is not a list of distinct GPU numbers",
            fix="e.g. --gpus 0,1 (GPU N is /dev/dri/renderD(128+N))",
        )
    nodes = [dev / "dri" / f"renderD{RENDER_BASE + int(i)}" for i in ids]
    missing = [str(n) for n in nodes if not n.exists()]
    if missing:
        present = sorted(p.name for p in (dev / "dri").glob("renderD*"))
        raise UsageError(
            f"--gpus {spec}: no {', '.join(missing)} on this host",
            f"render nodes here: {', '.join(present) or 'none'}",
            "pick GPU numbers that have a render node (GPU N is renderD(128+N))",
        )
    kfd = [d for d in access.devices if d.endswith(":/dev/kfd")]
    devices = (*kfd, *(f"{n}:/dev/dri/{n.name}" for n in nodes))
    visible = ",".join(str(i) for i in range(len(ids)))
    return replace(access, devices=devices), {"HIP_VISIBLE_DEVICES": visible}
