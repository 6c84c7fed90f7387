"""Run folders: refuse to clobber, write everything to a staging folder, then move it into place.

* A new output folder is staged beside it (`.NAME.stylelora-XXXX` in the parent) and renamed
  into place in one step, so the folder exists only when complete.
* An existing folder (often a bind mount, which cannot be renamed over) is staged inside and its
  files are moved in one by one with `os.replace`, run.json last: each file is whole, and run.json
  marks a complete run.
* safetensors 0.8 writes 0600 files whatever the umask (safetensors issue #782), and mkdtemp makes
  0700 folders; both are reset to 0666/0777 minus the umask so the container's non-root user
  and the host user can read the outputs. Ownership is never changed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft.utils import get_peft_model_state_dict
from PIL import Image
from safetensors.torch import save_file

from stylelora.errors import OutputError
from stylelora.hf import (
    StableDiffusionPipeline,
    UNet2DConditionModel,
    convert_state_dict_to_diffusers,
)

LORA_FILE = "pytorch_lora_weights.safetensors"
EMBEDS_FILE = "learned_embeds.safetensors"
RUN_FILE = "run.json"
SAMPLE_FILE = "sample.png"
RUN_FILES = (LORA_FILE, EMBEDS_FILE, RUN_FILE)


@dataclass
class Staging:
    """A folder to write a run into; `commit` publishes it, `abort` removes it."""

    target: Path
    folder: Path
    in_place: bool
    overwrite: bool
    names: tuple[str, ...]

    def commit(self) -> Path:
        fix_modes(self.folder)
        if not self.in_place:
            os.replace(self.folder, self.target)
            return self.target
        names = sorted(p.name for p in self.folder.iterdir())
        names.sort(key=lambda name: name == RUN_FILE)  # run.json last: it marks a complete run
        if self.overwrite:
            for stale in set(self.names) - set(names):
                (self.target / stale).unlink(missing_ok=True)
        for name in names:
            os.replace(self.folder / name, self.target / name)
        self.folder.rmdir()
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def held_run_files(folder: Path, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if (folder / name).exists()]


def prepare_output(target: Path, overwrite: bool, names: tuple[str, ...] = RUN_FILES) -> Staging:
    """Check the output folder before any heavy work and open a staging folder for it."""
    target = target.absolute()
    if target.exists() and not target.is_dir():
        raise OutputError(
            f"output path {target} is a file, not a folder", fix="choose another --output"
        )
    in_place = target.is_dir()
    held = held_run_files(target, names) if in_place else []
    if held and not overwrite:
        raise OutputError(
            f"output folder {target} already holds a run ({held[0]})",
            fix="pass --overwrite to replace it, or choose another --output",
        )
    blocker = next((p for p in target.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(
            f"output folder {target} cannot be created",
            why=f"{blocker} is a file",
            fix="choose another --output",
        )
    parent = target if in_place else target.parent
    prefix = ".stylelora-" if in_place else f".{target.name}.stylelora-"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as err:
        raise OutputError(
            f"output folder {target} is not writable",
            why=err.strerror or str(err),
            fix="choose another --output",
        ) from err
    return Staging(target, folder, in_place, overwrite, names)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fix_modes(root: Path) -> None:
    """0666/0777 minus the umask for `root` and everything under it."""
    umask = current_umask()
    root.chmod(0o777 & ~umask)
    for path in root.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def save_lora(unet: UNet2DConditionModel, folder: Path) -> Path:
    """diffusers LoRA format, with the adapter config in the header so alpha survives a reload."""
    peft_layers = get_peft_model_state_dict(unet)
    layers = convert_state_dict_to_diffusers(peft_layers)  # type: ignore[no-untyped-call]  # untyped in diffusers
    metadata = unet.peft_config["default"].to_dict()
    StableDiffusionPipeline.save_lora_weights(
        folder,
        unet_lora_layers=layers,
        unet_lora_adapter_metadata=metadata,
        weight_name=LORA_FILE,
        safe_serialization=True,
    )
    return folder / LORA_FILE


def save_embedding(row: torch.Tensor, token: str, folder: Path) -> Path:
    """The textual-inversion format `load_textual_inversion` reads: {token: (1, dim)}."""
    path = folder / EMBEDS_FILE
    save_file(
        {token: row.detach().float().cpu().reshape(1, -1).contiguous()},
        path,
        metadata={"format": "pt"},
    )
    return path


def save_png(image: Image.Image, path: Path) -> Path:
    """A PNG written beside its final name, then renamed over it, with the umask's mode."""
    partial = path.with_name(f".{path.name}.partial")
    image.save(partial, format="PNG")
    partial.chmod(0o666 & ~current_umask())
    os.replace(partial, path)
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Strict JSON (no NaN), written whole or not at all."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path
