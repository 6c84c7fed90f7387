"""Validation while training: fixed prompts and seeds rendered into the run folder, and the
style loss on a held-out image, every --validate-every steps (main process only).

The prompts are the training prompt and the same prompt with the initializer word instead of the
placeholder, so the images show what the token and the LoRA add. Validation draws from its own
generators and puts torch's global generator back, so it never changes the training run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stylelora.hf import DDIMScheduler, StableDiffusionPipeline
from stylelora.inference import render, to_pil
from stylelora.outputs import fix_modes, save_png
from stylelora.parallel import Processes
from stylelora.precision import autocast

if TYPE_CHECKING:
    from stylelora.train import Session

VALIDATION_DIR = "validation"
SEEDS = (0, 1)


def validation_prompts(template: str, token: str, init_word: str) -> dict[str, str]:
    """{file stem: prompt}: with the placeholder, and with its initializer word instead."""
    return {
        "token": template.replace("{token}", token),
        "plain": template.replace("{token}", init_word).replace(token, init_word),
    }


def pipeline_of(session: Session) -> StableDiffusionPipeline:
    """An inference pipeline over the very modules being trained (no copies, no reload)."""
    parts = session.parts
    # None is how diffusers spells "no safety checker" (its annotations do not allow it).
    none: Any = None
    pipe = StableDiffusionPipeline(
        vae=parts.vae, text_encoder=parts.text_encoder, tokenizer=parts.tokenizer,
        unet=parts.unet, scheduler=DDIMScheduler.from_config(parts.scheduler.config),
        safety_checker=none, feature_extractor=none, image_encoder=none,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)  # type: ignore[no-untyped-call]  # untyped in diffusers
    return pipe


def render_images(session: Session, folder: Path) -> list[str]:
    cfg = session.cfg
    pipe = pipeline_of(session)
    names = []
    for stem, prompt in validation_prompts(cfg.template, cfg.token, cfg.init_word).items():
        for seed in SEEDS:
            with autocast(session.device, session.bf16):
                pixels = render(
                    pipe, prompt, seed=seed, steps=cfg.validation_steps, resolution=cfg.resolution
                )
            name = f"{stem}-seed{seed}.png"
            save_png(to_pil(pixels)[0], folder / name)
            names.append(name)
    return names


def heldout_style(session: Session, image: torch.Tensor) -> float:
    """Style loss of the held-out image at a fixed timestep and noise (comparable across steps)."""
    from stylelora.train import training_step  # noqa: PLC0415 - train imports this module

    alone = dataclasses.replace(session, processes=Processes())
    generator = torch.Generator().manual_seed(session.cfg.seed)
    timestep = torch.tensor([session.cfg.timestep_cutoff // 2])
    result = training_step(alone, image, generator, timesteps=timestep)
    return float(result.style)


def validate(
    session: Session, run: Path, step: int, heldout: torch.Tensor | None
) -> dict[str, Any]:
    """Render and score; returns the metrics event's fields."""
    folder = run / VALIDATION_DIR / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    saved_rng = torch.get_rng_state()
    modules = (session.parts.unet, session.parts.text_encoder)
    for module in modules:
        module.eval()
    try:
        with torch.no_grad():
            names = render_images(session, folder)
            loss = None if heldout is None else heldout_style(session, heldout)
    finally:
        for module in modules:
            module.train()
        torch.set_rng_state(saved_rng)
    fix_modes(run / VALIDATION_DIR)
    return {
        "step": step,
        "heldout_style": loss,
        "images": [f"{folder.relative_to(run)}/{n}" for n in names],
    }
