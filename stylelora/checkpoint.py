"""Checkpoints in the run folder: written whole or not at all, found again, pruned, checked.

Layout (bakery's `status` reads it too; tests/unit/training/test_stylelora_checkpoint.py keeps
bakery's copy of these names in step):
  RUN/checkpoints/step-000120/trainables.safetensors  LoRA tensors and the placeholder row
  RUN/checkpoints/step-000120/state.pt                optimizer, LR schedule, RNGs, data order
  RUN/checkpoints/step-000120/state.json              step, config, loss history; written last
A checkpoint is built in `.partial-*` beside the others and renamed into place after every file
and the folder were fsynced, so a SIGKILL at any moment leaves either the whole checkpoint or
none (plus a `.partial-*` folder that the next run removes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stylelora.errors import UsageError
from stylelora.outputs import fix_modes

CHECKPOINTS_DIR = "checkpoints"
STATE_JSON = "state.json"
STATE_PT = "state.pt"
TRAINABLES = "trainables.safetensors"
PARTIAL_PREFIX = ".partial-"
_NAME = re.compile(r"step-(\d{6,})")
# Options that may change between an interrupted run and its resume: where and how often it
# writes, and how long it goes on. Every other option must match the checkpoint's.
RESUMABLE_KEYS = frozenset({
    "output", "overwrite", "resume", "online", "steps", "checkpoint_every", "keep_checkpoints",
    "validate_every", "validation_steps",
})  # fmt: skip


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint: its folder and what state.json says."""

    folder: Path
    step: int
    config: dict[str, Any]
    history: list[dict[str, float | int]]
    processes: int = 1


def step_name(step: int) -> str:
    return f"step-{step:06d}"


def complete_steps(run: Path) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint in a run folder, oldest first."""
    folder = run / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _NAME.fullmatch(path.name)
        if match and (path / STATE_JSON).is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_checkpoint(folder: Path) -> Checkpoint:
    try:
        data = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
        return Checkpoint(
            folder,
            int(data["step"]),
            dict(data["config"]),
            list(data["history"]),
            int(data.get("processes", 1)),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(
            f"{folder} is not a stylelora checkpoint",
            why=f"{STATE_JSON}: {err}",
            fix="pass --resume latest, or a checkpoints/step-NNNNNN folder of a run",
        ) from err


def find_checkpoint(choice: str, run: Path) -> Checkpoint | None:
    """`latest` in the run folder (None when it has none), or the folder named by `choice`."""
    if choice == "latest":
        steps = complete_steps(run)
        return read_checkpoint(steps[-1][1]) if steps else None
    path = Path(choice).expanduser()
    if (path / STATE_JSON).is_file():
        return read_checkpoint(path)
    steps = complete_steps(path)
    if steps:
        return read_checkpoint(steps[-1][1])
    raise UsageError(
        f"--resume {json.dumps(choice)} is neither a checkpoint nor a run folder with one",
        fix="pass --resume latest, or a RUN/checkpoints/step-NNNNNN folder",
    )


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """`--key saved → now` for every option that differs and may not change on resume."""
    keys = sorted((set(saved) | set(current)) - RESUMABLE_KEYS - {"prompt"})
    return [
        f"--{key.replace('_', '-')} {json.dumps(saved.get(key))} → {json.dumps(current.get(key))}"
        for key in keys
        if saved.get(key) != current.get(key)
    ]


def check_compatible(checkpoint: Checkpoint, current: Mapping[str, Any]) -> None:
    differences = config_differences(checkpoint.config, current)
    if differences:
        raise UsageError(
            f"checkpoint {checkpoint.folder} was written with other settings: "
            + "; ".join(differences),
            why="resuming would silently mix two different runs",
            fix="resume with the checkpoint's settings, or start a new run in another --output",
        )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(
    run: Path,
    step: int,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    record: dict[str, Any],
) -> Path:
    """Write step `step` atomically and durably; return its folder."""
    parent = run / CHECKPOINTS_DIR
    parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{PARTIAL_PREFIX}{step_name(step)}-", dir=parent))
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, partial / TRAINABLES)
    torch.save(state, partial / STATE_PT)
    text = json.dumps({**record, "step": step}, sort_keys=True, allow_nan=False)
    (partial / STATE_JSON).write_text(text + "\n", encoding="utf-8")
    fix_modes(partial)  # mkdtemp's 0700 and safetensors' 0600 (see outputs.py)
    for path in (*partial.iterdir(), partial):
        _fsync(path)
    final = parent / step_name(step)
    if final.exists():  # a resume from an older checkpoint passes this step again
        shutil.rmtree(final)
    os.replace(partial, final)
    _fsync(parent)
    return final


def load_tensors(checkpoint: Checkpoint) -> dict[str, torch.Tensor]:
    try:
        return load_file(checkpoint.folder / TRAINABLES)
    except (OSError, SafetensorError) as err:
        raise UsageError(f"cannot read {checkpoint.folder / TRAINABLES}", why=str(err)) from err


def load_state(checkpoint: Checkpoint) -> dict[str, Any]:
    try:
        state: dict[str, Any] = torch.load(checkpoint.folder / STATE_PT, weights_only=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise UsageError(f"cannot read {checkpoint.folder / STATE_PT}", why=str(err)) from err
    return state


def prune_checkpoints(run: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` complete checkpoints; return what was removed."""
    removed = [folder for _, folder in complete_steps(run)[:-keep]] if keep > 0 else []
    for folder in removed:
        shutil.rmtree(folder)
    return removed


def remove_partials(run: Path) -> None:
    """Half-written checkpoints of a killed run (only folders this module names)."""
    folder = run / CHECKPOINTS_DIR
    if folder.is_dir():
        for path in folder.glob(f"{PARTIAL_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
