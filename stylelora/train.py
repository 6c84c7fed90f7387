"""The training step and loop, and `run_training`: the one code path `train` and `smoke` share."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LambdaLR

from stylelora import losses, resume
from stylelora.checkpoint import Checkpoint, prune_checkpoints, remove_partials, write_checkpoint
from stylelora.config import TrainConfig
from stylelora.data import BatchCursor, StyleImages, load_style_images, split_heldout
from stylelora.env import package_versions
from stylelora.errors import OutOfMemory, TrainingError
from stylelora.features import FeatureExtractor, VaeFeatures, load_vgg
from stylelora.metrics import METRICS_FILE, MetricsLog, truncate_after
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
from stylelora.outputs import RUN_FILE, save_embedding, save_lora, write_json
from stylelora.parallel import Processes, join_processes, leave_processes
from stylelora.precision import (
    autocast,
    full_precision,
    resolve_bf16,
    resolve_device,
    weight_dtype,
)
from stylelora.progress import Progress
from stylelora.runfolder import RunFolder, open_run_folder
from stylelora.validation import validate

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
    lr_schedule: torch.optim.lr_scheduler.LRScheduler
    processes: Processes = field(default_factory=Processes)


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


def process_device(cfg: TrainConfig, processes: Processes) -> torch.device:
    """The configured device; with several processes on GPUs, this process's own GPU."""
    device = resolve_device(cfg.device)
    if device.type == "cuda" and processes.count > 1:
        return torch.device("cuda", processes.local_index)
    return device


def warmup_schedule(optimizer: torch.optim.Optimizer, warmup: int) -> LambdaLR:
    """Linear warm-up over `warmup` steps, then constant (0: constant from the start)."""
    return LambdaLR(optimizer, lambda step: 1.0 if warmup == 0 else min(1.0, (step + 1) / warmup))


def build_session(cfg: TrainConfig, model_dir: Path, processes: Processes | None = None) -> Session:
    """Load the model, add the token and LoRA, freeze the rest, build the optimizer."""
    processes = processes or Processes()
    device = process_device(cfg, processes)
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
    schedule = warmup_schedule(optimizer, cfg.lr_warmup)
    return Session(
        cfg, parts, trainables, optimizer, extractor, prompt_ids, device, bf16, schedule, processes
    )


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
    """Noise, denoise, and score this process's slice of a global batch.

    Every process draws the random numbers of the whole global batch from the same generator,
    so the result does not depend on how many processes share the batch. `timesteps` overrides
    the random draw (for checks).
    """
    parts, device, processes = session.parts, session.device, session.processes
    shard = processes.shard(images.shape[0] // processes.count)
    local = images[shard].to(device)
    count = local.shape[0]
    with torch.no_grad(), autocast(device, session.bf16):
        posterior = parts.vae.encode(local).latent_dist
    # Random draws come from a CPU generator, so a seed gives the same stream on any device.
    shape = (images.shape[0], *posterior.mean.shape[1:])
    eps = torch.randn(shape, generator=rng)[shard].to(device)
    latents = (posterior.mean.float() + posterior.std.float() * eps) * scaling_factor(parts)
    noise = torch.randn(shape, generator=rng)[shard].to(device)
    if timesteps is None:
        steps = int(parts.scheduler.config["num_train_timesteps"])
        timesteps = torch.randint(0, steps, (images.shape[0],), generator=rng)
    timesteps = timesteps[shard].to(device)
    noisy = parts.scheduler.add_noise(latents, noise, cast(torch.IntTensor, timesteps))
    hidden = parts.text_encoder(session.prompt_ids.expand(count, -1))[0]
    with autocast(device, session.bf16):
        pred = parts.unet(noisy, timesteps, hidden).sample.float()
    target = losses.diffusion_target(parts.scheduler, latents, noise, timesteps)
    diffusion = F.mse_loss(pred, target.float())
    style, active = style_term(session, local, noisy, pred, timesteps)
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
    sums = torch.zeros(4)  # loss, diffusion, style, style samples
    for _ in range(cfg.grad_accum):
        result = training_step(session, next(batches), rng)
        check_finite(step, result)
        torch.autograd.backward(result.total / cfg.grad_accum)
        values = (result.total, result.diffusion, result.style)
        sums[:3] += torch.tensor([v.detach().item() / cfg.grad_accum for v in values])
        sums[3] += result.style_samples
    average_gradients(session, sums)
    grad_norm = float(
        torch.nn.utils.clip_grad_norm_(session.trainables.parameters(), cfg.max_grad_norm)
    )
    if not math.isfinite(grad_norm):
        raise TrainingError(
            f"gradient is not finite at step {step}", fix="lower --lr, or use --mixed-precision no"
        )
    session.optimizer.step()
    session.lr_schedule.step()
    drift = restore_frozen_rows(session.trainables)
    session.optimizer.zero_grad(set_to_none=True)
    loss, diffusion, style, samples = sums.tolist()
    return {
        "step": step, "loss": loss, "diffusion": diffusion, "style": style,
        "style_samples": round(samples), "grad_norm": grad_norm, "frozen_row_drift": drift,
    }  # fmt: skip


def average_gradients(session: Session, sums: torch.Tensor) -> None:
    """Data parallel: every process ends up with the mean gradient and the mean losses."""
    processes = session.processes
    if processes.count == 1:
        return
    params = session.trainables.parameters()
    for param in params:
        if param.grad is None:
            param.grad = torch.zeros_like(param)
    processes.average([p.grad for p in params if p.grad is not None])
    processes.average([sums])
    sums[3] *= processes.count  # style samples: a total over the processes, not a mean


@dataclass
class Loop:
    """What changes from step to step, and what a checkpoint must capture of it."""

    session: Session
    rng: torch.Generator
    batches: BatchCursor
    history: list[StepRecord]
    first_step: int = 0


def start_loop(session: Session, data: StyleImages) -> Loop:
    rng = torch.Generator().manual_seed(session.cfg.seed)
    global_batch = session.cfg.batch_size * session.processes.count
    return Loop(session, rng, data.batches(global_batch, rng), [])


def train_loop(
    loop: Loop, hooks: StepHooks | None = None, show_progress: bool = True
) -> list[StepRecord]:
    cfg = loop.session.cfg
    enabled = show_progress and loop.session.processes.main  # one progress line, not N
    progress = Progress(cfg.steps, enabled=enabled, first=loop.first_step)
    try:
        for step in range(loop.first_step + 1, cfg.steps + 1):
            record = guarded_step(loop, step)
            loop.history.append(record)
            progress.update(
                step, float(record["loss"]), float(record["diffusion"]), float(record["style"])
            )
            if hooks is not None:
                hooks.after_step(loop, record, progress.rate(step))
    finally:
        progress.close()
    return loop.history


def guarded_step(loop: Loop, step: int) -> StepRecord:
    """One optimizer step; a device out-of-memory error becomes advice instead of a traceback."""
    try:
        return optimizer_step(loop.session, step, loop.batches, loop.rng)
    except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError (CUDA and HIP)
        if not is_out_of_memory(err):
            raise
        raise out_of_memory(loop.session.cfg, step, err) from err


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def out_of_memory(cfg: TrainConfig, step: int, err: BaseException) -> OutOfMemory:
    """The options that lower memory use, minus the ones already in effect."""
    options = []
    if cfg.batch_size > 1:
        options.append(
            f"--batch-size {cfg.batch_size // 2} --grad-accum {cfg.grad_accum * 2} "
            "(the same effective batch)"
        )
    options.append(f"a smaller --resolution (now {cfg.resolution})")
    if not cfg.gradient_checkpointing:
        options.append("--gradient-checkpointing")
    if cfg.mixed_precision != "bf16":
        options.append("--mixed-precision bf16")
    hint = (
        "; then add --resume to continue from the last checkpoint" if cfg.checkpoint_every else ""
    )
    text = str(err).strip()
    return OutOfMemory(
        f"the GPU ran out of memory at step {step}",
        why=text.splitlines()[0][:300] if text else type(err).__name__,
        fix="lower memory use with " + ", ".join(options) + hint,
    )


class StepHooks:
    """After each step (the main process writes, all wait): metrics, validation, checkpoints."""

    def __init__(self, run: Path, metrics: MetricsLog, heldout: torch.Tensor | None) -> None:
        self.run = run
        self.metrics = metrics
        self.heldout = heldout

    def after_step(self, loop: Loop, record: StepRecord, rate: float) -> None:
        session, step = loop.session, int(record["step"])
        cfg, main = session.cfg, session.processes.main
        lr = session.lr_schedule.get_last_lr()[0]
        self.metrics.write("step", **record, lr=lr, it_s=round(rate, 4))
        if cfg.validate_every and step % cfg.validate_every == 0:
            if main:
                self.metrics.write("validation", **validate(session, self.run, step, self.heldout))
            session.processes.barrier()
        if cfg.checkpoint_every and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            if main:
                folder = write_checkpoint(self.run, step, *resume.capture(loop))
                self.metrics.write("checkpoint", step=step, path=str(folder.relative_to(self.run)))
                prune_checkpoints(self.run, cfg.keep_checkpoints)
            session.processes.barrier()


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
        "processes": session.processes.count,
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
    """Validate, train, save atomically. The final files appear only when all of it worked."""
    cfg.validate()
    model_dir = resolve_model(cfg.model, cfg.online)
    processes = join_processes(gpu=resolve_device(cfg.device).type == "cuda")
    try:
        checkpoint = resume.find(cfg, processes.count)
        run = open_run_folder(cfg) if processes.main else None
        try:
            return _train_into(cfg, model_dir, run, checkpoint, processes, show_progress)
        except BaseException:
            if run is not None:
                run.abort()
            raise
    finally:
        leave_processes()


def _train_into(
    cfg: TrainConfig,
    model_dir: Path,
    run: RunFolder | None,
    checkpoint: Checkpoint | None,
    processes: Processes,
    show_progress: bool,
) -> TrainResult:
    data, heldout = split_heldout(
        load_style_images(cfg.data, cfg.resolution), cfg.validate_every > 0
    )
    session = build_session(cfg, model_dir, processes)
    loop = start_loop(session, data)
    if checkpoint is not None:
        resume.restore(loop, checkpoint)
    announce(session, loop)
    output = cfg.output.absolute()
    if run is not None:  # before the log opens it: truncating replaces the file
        truncate_after(output / METRICS_FILE, loop.first_step)
        remove_partials(output)
    metrics = MetricsLog(output, enabled=run is not None)
    try:
        metrics.write("start", step=loop.first_step, steps=cfg.steps, processes=processes.count)
        start = time.perf_counter()
        history = train_loop(loop, StepHooks(output, metrics, heldout), show_progress)
        seconds = time.perf_counter() - start
        if run is not None:
            save_run(session, model_dir, history, seconds, run.staging.folder)
            run.staging.commit()
            metrics.write("end", step=cfg.steps)
    finally:
        metrics.close()
    processes.barrier()
    return TrainResult(output, model_dir, data, history, seconds, session)


def announce(session: Session, loop: Loop) -> None:
    if not session.processes.main:
        return
    log.info(
        "training %d LoRA tensors and the %s row on %s%s%s%s",
        len(session.trainables.lora),
        session.cfg.token,
        session.device,
        " (bf16)" if session.bf16 else "",
        f", {session.processes.count} processes" if session.processes.count > 1 else "",
        f", resuming after step {loop.first_step}" if loop.first_step else "",
    )
