"""The training step and loop, and `run_training`: the one code path `train` and `smoke` share."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from stylelora import losses
from stylelora.config import TrainConfig
from stylelora.data import StyleImages, load_style_images
from stylelora.env import package_versions
from stylelora.errors import TrainingError
from stylelora.features import FeatureExtractor, VaeFeatures, load_vgg
from stylelora.model import (
    Components,
    Trainables,
    add_placeholder_token,
    enable_gradient_checkpointing,
    load_components,
    make_optimizer,
    resolve_model,
    restore_frozen_rows,
    setup_trainables,
)
from stylelora.outputs import (
    RUN_FILE,
    Staging,
    prepare_output,
    save_embedding,
    save_lora,
    write_json,
)
from stylelora.precision import (
    autocast,
    full_precision,
    resolve_bf16,
    resolve_device,
    weight_dtype,
)
from stylelora.progress import Progress

log = logging.getLogger(__name__)

StepRecord = dict[str, float | int]


@dataclass
class Session:
    """A loaded model made ready to train, with everything a step needs."""

    cfg: TrainConfig
    parts: Components
    trainables: Trainables
    optimizer: torch.optim.Optimizer
    extractor: FeatureExtractor
    prompt_ids: torch.Tensor
    device: torch.device
    bf16: bool


@dataclass(frozen=True)
class StepLosses:
    """One micro-batch: the total to backpropagate and both terms (style: mean over its samples)."""

    total: torch.Tensor
    diffusion: torch.Tensor
    style: torch.Tensor
    style_samples: int


@dataclass(frozen=True)
class TrainResult:
    output: Path
    model_dir: Path
    data: StyleImages
    history: list[StepRecord]
    seconds: float
    session: Session


def build_session(cfg: TrainConfig, model_dir: Path) -> Session:
    """Load the model, add the token and LoRA, freeze the rest, build the optimizer."""
    device = resolve_device(cfg.device)
    bf16 = resolve_bf16(cfg.mixed_precision, device)
    parts = load_components(model_dir, device, weight_dtype(bf16))
    token_id = add_placeholder_token(parts, cfg.token, cfg.init_word)
    trainables = setup_trainables(parts, token_id, cfg.rank, cfg.alpha, cfg.seed)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(parts)
    parts.unet.train()
    parts.text_encoder.train()
    parts.vae.eval()
    optimizer = make_optimizer(trainables, cfg.lr, cfg.embedding_lr)
    prompt_ids = encode_prompt(parts, cfg.prompt).to(device)
    extractor = make_extractor(cfg, parts, device)
    return Session(cfg, parts, trainables, optimizer, extractor, prompt_ids, device, bf16)


def encode_prompt(parts: Components, prompt: str) -> torch.Tensor:
    """Token ids (1, L), padded like the SD pipelines pad them."""
    max_length = min(
        parts.tokenizer.model_max_length, parts.text_encoder.config.max_position_embeddings
    )
    ids = parts.tokenizer(
        prompt, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
    ).input_ids
    return ids  # type: ignore[no-any-return]  # BatchEncoding items are typed Any


def make_extractor(cfg: TrainConfig, parts: Components, device: torch.device) -> FeatureExtractor:
    if cfg.features == "vgg" and cfg.vgg_weights is not None:
        return load_vgg(cfg.vgg_weights, cfg.style_layers, device)
    return VaeFeatures(parts.vae, cfg.style_layers, checkpoint=cfg.gradient_checkpointing)


def training_step(
    session: Session,
    images: torch.Tensor,
    rng: torch.Generator,
    timesteps: torch.Tensor | None = None,
) -> StepLosses:
    """Noise, denoise, and score one batch; `timesteps` overrides the random draw (for checks)."""
    parts, device = session.parts, session.device
    images = images.to(device)
    count = images.shape[0]
    with torch.no_grad(), autocast(device, session.bf16):
        posterior = parts.vae.encode(images).latent_dist
        latents = posterior.sample(generator=rng).float() * scaling_factor(parts)
    # Random draws come from a CPU generator, so a seed gives the same stream on any device.
    noise = torch.randn(latents.shape, generator=rng).to(device)
    if timesteps is None:
        steps = int(parts.scheduler.config["num_train_timesteps"])
        timesteps = torch.randint(0, steps, (count,), generator=rng)
    timesteps = timesteps.to(device)
    noisy = parts.scheduler.add_noise(latents, noise, cast(torch.IntTensor, timesteps))
    hidden = parts.text_encoder(session.prompt_ids.expand(count, -1))[0]
    with autocast(device, session.bf16):
        pred = parts.unet(noisy, timesteps, hidden).sample.float()
    target = losses.diffusion_target(parts.scheduler, latents, noise, timesteps)
    diffusion = F.mse_loss(pred, target.float())
    style, active = style_term(session, images, noisy, pred, timesteps)
    total = diffusion + session.cfg.style_weight * style * (active / count)
    return StepLosses(total, diffusion, style, active)


def style_term(
    session: Session,
    images: torch.Tensor,
    noisy: torch.Tensor,
    pred: torch.Tensor,
    timesteps: torch.Tensor,
) -> tuple[torch.Tensor, int]:
    """Gram style loss of the decoded x0 prediction for samples with t <= cutoff (mean, count)."""
    cfg, parts = session.cfg, session.parts
    active = timesteps <= cfg.timestep_cutoff
    count = int(active.sum())
    if count == 0 or cfg.style_weight == 0:
        return torch.zeros((), device=session.device), 0
    x0 = losses.predict_x0(
        noisy[active],
        pred[active],
        timesteps[active],
        parts.scheduler.alphas_cumprod,
        parts.scheduler.config["prediction_type"],
    )
    with autocast(session.device, session.bf16):
        decoded = parts.vae.decode(x0 / scaling_factor(parts)).sample
        pred_features = session.extractor(decoded)
        with torch.no_grad():
            style_features = session.extractor(images[active])
    with full_precision(session.device):
        per_sample = losses.style_loss(pred_features, style_features, cfg.style_norm)
    return per_sample.mean(), count


def scaling_factor(parts: Components) -> float:
    return float(parts.vae.config["scaling_factor"])


def check_finite(step: int, result: StepLosses) -> None:
    diffusion, style = result.diffusion.detach().item(), result.style.detach().item()
    if not (math.isfinite(diffusion) and math.isfinite(style)):
        raise TrainingError(
            f"loss is not finite at step {step}",
            why=f"diffusion={diffusion:.6g}, style={style:.6g}",
            fix="lower --lr or --style-weight, or use --mixed-precision no",
        )


def optimizer_step(
    session: Session, step: int, batches: Iterator[torch.Tensor], rng: torch.Generator
) -> StepRecord:
    """`grad_accum` micro-batches, one clipped update, then the frozen rows are put back."""
    cfg = session.cfg
    sums = {"loss": 0.0, "diffusion": 0.0, "style": 0.0}
    style_samples = 0
    for _ in range(cfg.grad_accum):
        result = training_step(session, next(batches), rng)
        check_finite(step, result)
        torch.autograd.backward(result.total / cfg.grad_accum)
        for key, value in (
            ("loss", result.total),
            ("diffusion", result.diffusion),
            ("style", result.style),
        ):
            sums[key] += value.detach().item() / cfg.grad_accum
        style_samples += result.style_samples
    grad_norm = float(
        torch.nn.utils.clip_grad_norm_(session.trainables.parameters(), cfg.max_grad_norm)
    )
    if not math.isfinite(grad_norm):
        raise TrainingError(
            f"gradient is not finite at step {step}", fix="lower --lr, or use --mixed-precision no"
        )
    session.optimizer.step()
    drift = restore_frozen_rows(session.trainables)
    session.optimizer.zero_grad(set_to_none=True)
    return {
        "step": step,
        **sums,
        "style_samples": style_samples,
        "grad_norm": grad_norm,
        "frozen_row_drift": drift,
    }


def train_loop(session: Session, data: StyleImages, show_progress: bool = True) -> list[StepRecord]:
    cfg = session.cfg
    rng = torch.Generator().manual_seed(cfg.seed)
    batches = data.batches(cfg.batch_size, rng)
    progress = Progress(cfg.steps, enabled=show_progress)
    history: list[StepRecord] = []
    try:
        for step in range(1, cfg.steps + 1):
            record = optimizer_step(session, step, batches, rng)
            history.append(record)
            progress.update(
                step, float(record["loss"]), float(record["diffusion"]), float(record["style"])
            )
    finally:
        progress.close()
    return history


def run_record(
    session: Session, model_dir: Path, history: list[StepRecord], seconds: float
) -> dict[str, Any]:
    """Everything needed to understand and repeat a run: run.json."""
    lora_config = session.parts.unet.peft_config["default"]
    return {
        "config": session.cfg.to_json(),
        "seed": session.cfg.seed,
        "model_dir": str(model_dir),
        "token": session.cfg.token,
        "token_id": session.trainables.token_id,
        "lora": {
            "rank": lora_config.r,
            "alpha": lora_config.lora_alpha,
            "tensors": len(session.trainables.lora),
        },
        "device": str(session.device),
        "bf16": session.bf16,
        "versions": package_versions(),
        "seconds": round(seconds, 3),
        "losses": history,
    }


def save_run(
    session: Session, model_dir: Path, history: list[StepRecord], seconds: float, folder: Path
) -> None:
    save_lora(session.parts.unet, folder)
    row = session.trainables.embedding[session.trainables.token_id]
    save_embedding(row, session.cfg.token, folder)
    write_json(run_record(session, model_dir, history, seconds), folder / RUN_FILE)


def run_training(cfg: TrainConfig, show_progress: bool = True) -> TrainResult:
    """Validate, train, save atomically. Nothing appears at `cfg.output` unless all of it worked."""
    cfg.validate()
    model_dir = resolve_model(cfg.model, cfg.online)
    staging = prepare_output(cfg.output, cfg.overwrite)
    try:
        return _train_into(cfg, model_dir, staging, show_progress)
    except BaseException:
        staging.abort()
        raise


def _train_into(
    cfg: TrainConfig, model_dir: Path, staging: Staging, show_progress: bool
) -> TrainResult:
    data = load_style_images(cfg.data, cfg.resolution)
    session = build_session(cfg, model_dir)
    log.info(
        "training %d LoRA tensors and the %s row on %s%s",
        len(session.trainables.lora),
        cfg.token,
        session.device,
        " (bf16)" if session.bf16 else "",
    )
    start = time.perf_counter()
    history = train_loop(session, data, show_progress)
    seconds = time.perf_counter() - start
    save_run(session, model_dir, history, seconds, staging.folder)
    output = staging.commit()
    return TrainResult(output, model_dir, data, history, seconds, session)
