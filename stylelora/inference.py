"""Load a base model plus a trained run through the public diffusers API, and render images.

`sample` and the smoke run's reload check both go through `load_pipeline`, so what the smoke run
proves is what users get.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylelora.config import SampleConfig
from stylelora.errors import ModelError
from stylelora.hf import StableDiffusionPipeline
from stylelora.model import resolve_model
from stylelora.outputs import EMBEDS_FILE, LORA_FILE, RUN_FILE, prepare_output, save_png
from stylelora.precision import resolve_bf16, resolve_device, weight_dtype

log = logging.getLogger(__name__)

ADAPTER = "style"


def load_base(model_dir: Path, device: torch.device, dtype: torch.dtype) -> StableDiffusionPipeline:
    try:
        # No dtype argument: diffusers 0.42 renamed torch_dtype to dtype; .to() works in both.
        pipe: StableDiffusionPipeline = StableDiffusionPipeline.from_pretrained(
            model_dir, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise ModelError(
            f"cannot load the model in {model_dir}", why=str(err).splitlines()[0]
        ) from err
    pipe.set_progress_bar_config(disable=True)  # type: ignore[no-untyped-call]  # untyped in diffusers
    pipe.to(device, dtype)
    return pipe


def check_run_folder(run_dir: Path) -> None:
    missing = [name for name in (LORA_FILE, EMBEDS_FILE) if not (run_dir / name).is_file()]
    if missing:
        raise ModelError(
            f"run folder {run_dir} has no {', '.join(missing)}",
            fix="pass --lora DIR, a folder written by `python -m stylelora train`",
        )


def load_pipeline(
    model_dir: Path, run_dir: Path, device: torch.device, dtype: torch.dtype
) -> StableDiffusionPipeline:
    """The base pipeline with the run's LoRA (rank and alpha from its metadata) and token."""
    check_run_folder(run_dir)
    pipe = load_base(model_dir, device, dtype)
    try:
        pipe.load_lora_weights(run_dir, weight_name=LORA_FILE, adapter_name=ADAPTER)
        pipe.load_textual_inversion(str(run_dir / EMBEDS_FILE))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelError(f"cannot load the run in {run_dir}", why=str(err).splitlines()[0]) from err
    pipe.to(device)
    return pipe


def render(
    pipe: StableDiffusionPipeline,
    prompt: str,
    *,
    seed: int,
    steps: int,
    resolution: int | None,
    guidance: float = 7.5,
    num_images: int = 1,
    negative_prompt: str = "",
    lora_scale: float = 1.0,
) -> np.ndarray:
    """Images as float (N, H, W, 3) in [0, 1]; a CPU generator makes the seed device-independent."""
    generator = torch.Generator("cpu").manual_seed(seed)
    output = pipe(
        prompt,
        negative_prompt=negative_prompt or None,
        num_inference_steps=steps,
        guidance_scale=guidance,
        height=resolution,
        width=resolution,
        num_images_per_prompt=num_images,
        generator=generator,
        output_type="np",
        cross_attention_kwargs={"scale": lora_scale},
    )
    return np.asarray(output.images, dtype=np.float32)


def to_pil(images: np.ndarray) -> list[Image.Image]:
    pixels = (np.clip(np.nan_to_num(images), 0.0, 1.0) * 255).round().astype(np.uint8)
    return [Image.fromarray(item, mode="RGB") for item in pixels]


def read_run(run_dir: Path) -> dict[str, Any]:
    """run.json of a trained run, or {} when it is missing (the LoRA files are what matter)."""
    try:
        data = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def run_sample(cfg: SampleConfig) -> list[Path]:
    """Render `num_images` images into `cfg.output` (atomically); return their paths."""
    cfg.validate()
    model_dir = resolve_model(cfg.model, cfg.online)
    check_run_folder(cfg.lora)
    trained = read_run(cfg.lora).get("config", {})
    prompt = cfg.prompt or str(trained.get("prompt", "a photo of <v_style>"))
    resolution = cfg.resolution or trained.get("resolution")
    names = tuple(f"sample_{index:02d}.png" for index in range(cfg.num_images))
    staging = prepare_output(cfg.output, cfg.overwrite, names)
    try:
        device = resolve_device(cfg.device)
        dtype = weight_dtype(resolve_bf16(cfg.mixed_precision, device))
        pipe = load_pipeline(model_dir, cfg.lora, device, dtype)
        log.info("rendering %d image(s) of %r", cfg.num_images, prompt)
        images = render(
            pipe, prompt, seed=cfg.seed, steps=cfg.steps, resolution=resolution, guidance=cfg.guidance,
            num_images=cfg.num_images, negative_prompt=cfg.negative_prompt, lora_scale=cfg.lora_scale,
        )  # fmt: skip
        for name, image in zip(names, to_pil(images), strict=True):
            save_png(image, staging.folder / name)
        output = staging.commit()
    except BaseException:
        staging.abort()
        raise
    return [output / name for name in names]
