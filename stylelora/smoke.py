"""`python -m stylelora smoke`: train a tiny random SD-like model through the real code path.

It builds the tiny model and procedural style images in a temp folder, runs `run_training`
(exactly what `train` runs), reloads the outputs through `load_pipeline` (exactly what `sample`
runs), renders, and checks the result. Each check is independent and reported by name, so one
failure does not hide another.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft.utils import get_peft_model_state_dict
from safetensors import safe_open

from stylelora import tiny
from stylelora.config import TrainConfig
from stylelora.data import to_model_range
from stylelora.env import package_versions
from stylelora.inference import ADAPTER, load_base, load_pipeline, render, to_pil
from stylelora.model import embedding_matrix, load_components, trainable_names
from stylelora.outputs import EMBEDS_FILE, LORA_FILE, RUN_FILE, SAMPLE_FILE, current_umask, save_png
from stylelora.train import Session, TrainResult, run_training, training_step

SMOKE_STEPS = 10
SAMPLE_STEPS = 2
STYLE_CHECK_T = 100  # a small timestep, where the style term is on and x0 is meaningful
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def smoke_config(work: Path, output: Path, overwrite: bool, steps: int) -> TrainConfig:
    return TrainConfig(
        model=str(work / "model"),
        data=work / "data",
        output=output,
        steps=steps,
        lr=1e-3,
        embedding_lr=5e-3,
        rank=4,
        alpha=8,  # alpha != rank, so a reload that loses alpha is caught
        style_weight=1.0,
        resolution=tiny.RESOLUTION,
        batch_size=2,
        device="cpu",
        mixed_precision="no",
        overwrite=overwrite,
    )


def run_smoke(
    output: Path | None = None, overwrite: bool = False, steps: int = SMOKE_STEPS
) -> dict[str, Any]:
    """Train, save, reload, sample, check; return the JSON verdict."""
    start = time.perf_counter()
    threads = torch.get_num_threads()
    # The tiny model gains nothing from intra-op threads, and on a busy 2-core host spinning
    # OpenMP workers made the same run 5-10x slower.
    torch.set_num_threads(1)
    try:
        return _smoke(output, overwrite, steps, start)
    finally:
        torch.set_num_threads(threads)


def _smoke(output: Path | None, overwrite: bool, steps: int, start: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stylelora-smoke-") as tmp:
        work = Path(tmp)
        tiny.write_tiny_model(work / "model")
        tiny.write_style_images(work / "data")
        cfg = smoke_config(work, output if output is not None else work / "out", overwrite, steps)
        result = run_training(cfg, show_progress=False)
        checks = run_checks(result)
    losses = [
        {key: record[key] for key in ("step", "loss", "diffusion", "style")}
        for record in result.history
    ]
    return {
        "ok": all(check.ok for check in checks.values()),
        "checks": {
            name: {"ok": check.ok, "detail": check.detail} for name, check in checks.items()
        },
        "losses": losses,
        "seconds": round(time.perf_counter() - start, 2),
        "versions": package_versions(),
        "output": str(result.output) if output is not None else None,
    }


def run_checks(result: TrainResult) -> dict[str, Check]:
    session = result.session
    batch = to_model_range(result.data.pixels[:2])
    checks = {
        "losses_finite": guarded(check_losses_finite, result),
        "style_term_active": guarded(check_style_active, result),
        "trainable_set": guarded(check_trainable_set, session),
        "style_gradient": guarded(check_style_gradient, session, batch),
        "frozen_rows_never_moved": guarded(check_frozen_rows, result),
        "frozen_weights_unchanged": guarded(check_frozen_weights, result),
        "trainables_changed": guarded(check_trainables_changed, session),
        "files_complete": guarded(check_files, result),
    }
    checks.update(guarded_many(check_reload_and_sample, result))
    checks["file_modes"] = guarded(check_modes, result.output)
    return checks


def guarded(check: Callable[..., Check], *args: Any) -> Check:
    """A check that raises is a failed check, not a crashed smoke run."""
    try:
        return check(*args)
    except Exception as err:  # any failure, reported by name
        return Check(False, f"raised {type(err).__name__}: {err}")


def guarded_many(check: Callable[..., dict[str, Check]], *args: Any) -> dict[str, Check]:
    try:
        return check(*args)
    except Exception as err:  # any failure, reported by name
        return {"reload_and_sample": Check(False, f"raised {type(err).__name__}: {err}")}


def check_losses_finite(result: TrainResult) -> Check:
    values = [float(r[key]) for r in result.history for key in ("loss", "diffusion", "style")]
    first, last = result.history[0], result.history[-1]
    detail = f"{len(result.history)} steps, loss {first['loss']:.4f} -> {last['loss']:.4f}"
    return Check(bool(values) and all(math.isfinite(v) for v in values), detail)


def check_style_active(result: TrainResult) -> Check:
    steps = [r for r in result.history if int(r["style_samples"]) > 0]
    positive = all(float(r["style"]) > 0 for r in steps)
    return Check(
        bool(steps) and positive, f"style term on in {len(steps)} of {len(result.history)} steps"
    )


def check_trainable_set(session: Session) -> Check:
    names = trainable_names(session.parts)
    lora = {n for n in names if n.startswith("unet.") and ".lora_" in n}
    others = sorted(names - lora)
    ok = (
        len(lora) == len(session.trainables.lora)
        and len(others) == 1
        and others[0].startswith("text_encoder.")
    )
    return Check(ok, f"{len(lora)} LoRA tensors + {others}")


def check_style_gradient(session: Session, batch: torch.Tensor) -> Check:
    """The style term alone sends gradient to every LoRA tensor and to the placeholder row only."""
    timesteps = torch.full((batch.shape[0],), STYLE_CHECK_T)
    result = training_step(session, batch, torch.Generator().manual_seed(1), timesteps=timesteps)
    params = session.trainables.parameters()
    grads = torch.autograd.grad(result.style, params, allow_unused=True)
    lora_hit = sum(1 for g in grads[:-1] if g is not None and bool(g.abs().sum() > 0))
    rows = grads[-1] if grads[-1] is not None else torch.zeros_like(params[-1])
    row = float(rows[session.trainables.token_id].abs().sum())
    others = float(rows.abs().sum()) - row
    ok = lora_hit == len(grads) - 1 and row > 0 and others == 0
    return Check(
        ok,
        f"LoRA tensors reached {lora_hit}/{len(grads) - 1}; placeholder row |g| {row:.3g}; other rows |g| {others:.3g}",
    )


def check_frozen_rows(result: TrainResult) -> Check:
    """Measured before each restore, so the restore cannot hide a broken guard."""
    drift = max(float(r["frozen_row_drift"]) for r in result.history)
    return Check(drift == 0.0, f"largest move of another embedding row before restore: {drift:.3g}")


def check_frozen_weights(result: TrainResult) -> Check:
    """UNet base weights, the VAE and the text encoder (bar the placeholder row) match the disk."""
    disk = load_components(result.model_dir, CPU, torch.float32)
    parts, token_id = result.session.parts, result.session.trainables.token_id
    unet = {
        k.replace(".base_layer", ""): v
        for k, v in parts.unet.state_dict().items()
        if ".lora_" not in k
    }
    changed = [
        f"unet.{k}" for k, v in disk.unet.state_dict().items() if not torch.equal(v, unet[k])
    ]
    vae = parts.vae.state_dict()
    changed += [f"vae.{k}" for k, v in disk.vae.state_dict().items() if not torch.equal(v, vae[k])]
    text = parts.text_encoder.state_dict()
    matrix = result.session.trainables.embedding.data_ptr()
    changed += [
        f"text_encoder.{key}"
        for key, before in disk.text_encoder.state_dict().items()
        if not same_except_row(
            before, text[key], token_id if text[key].data_ptr() == matrix else None
        )
    ]
    return Check(not changed, f"changed frozen tensors: {changed[:3] or 'none'}")


def same_except_row(before: torch.Tensor, after: torch.Tensor, row: int | None) -> bool:
    """Equal tensors; with a `row` (the embedding matrix), equal on every shared row but that one."""
    if row is None:
        return torch.equal(before, after)
    keep = [i for i in range(before.shape[0]) if i != row]
    return torch.equal(before[keep], after[keep])


def check_trainables_changed(session: Session) -> Check:
    tr = session.trainables
    moved = sum(not torch.equal(p, p0) for p, p0 in zip(tr.lora, tr.initial_lora, strict=True))
    row_moved = not torch.equal(tr.embedding[tr.token_id], tr.original_embedding[tr.token_id])
    ok = moved == len(tr.lora) and row_moved
    return Check(
        ok, f"LoRA tensors changed {moved}/{len(tr.lora)}; placeholder row changed: {row_moved}"
    )


def check_files(result: TrainResult) -> Check:
    cfg, folder = result.session.cfg, result.output
    with safe_open(str(folder / LORA_FILE), framework="pt") as lora:
        keys = list(lora.keys())
        header = lora.metadata() or {}
    with safe_open(str(folder / EMBEDS_FILE), framework="pt") as embeds:
        embed_keys = list(embeds.keys())
        embed_shape = list(embeds.get_slice(embed_keys[0]).get_shape()) if embed_keys else []
    run = (folder / RUN_FILE).read_text(encoding="utf-8")
    problems = [
        text
        for bad, text in (
            (len(keys) != len(result.session.trainables.lora), f"{len(keys)} LoRA tensors saved"),
            (
                not all(k.startswith("unet.") and "lora" in k for k in keys),
                "a non-LoRA key was saved",
            ),
            ("lora_adapter_metadata" not in header, "no adapter metadata in the LoRA header"),
            (
                embed_keys != [cfg.token] or len(embed_shape) != 2 or embed_shape[0] != 1,
                f"embeddings {embed_keys} {embed_shape}",
            ),
            (f'"steps": {cfg.steps}' not in run, "run.json lacks the config"),
        )
        if bad
    ]
    return Check(
        not problems,
        "; ".join(problems) or f"{len(keys)} LoRA tensors, embedding {embed_shape}, run.json",
    )


def check_reload_and_sample(result: TrainResult) -> dict[str, Check]:
    """Reload through the public API; render with and without the trained run; keep the image."""
    cfg = result.session.cfg
    pipe = load_pipeline(result.model_dir, result.output, CPU, torch.float32)
    checks = {"reload_identical": compare_reload(result.session, pipe)}
    image = render(
        pipe, cfg.prompt, seed=0, steps=SAMPLE_STEPS, resolution=cfg.resolution, guidance=5.0
    )
    base = render(
        load_base(result.model_dir, CPU, torch.float32),
        cfg.prompt,
        seed=0,
        steps=SAMPLE_STEPS,
        resolution=cfg.resolution,
        guidance=5.0,
    )
    finite = bool(np.isfinite(image).all())
    checks["sample_finite"] = Check(
        finite and image.shape[0] == 1, f"shape {list(image.shape)}, finite: {finite}"
    )
    delta = float(np.abs(image - base).max())
    checks["sample_differs_from_base"] = Check(delta > 0, f"max |trained - base| = {delta:.3g}")
    save_png(to_pil(image)[0], result.output / SAMPLE_FILE)
    return checks


def compare_reload(session: Session, pipe: Any) -> Check:
    trained = get_peft_model_state_dict(session.parts.unet)
    loaded = get_peft_model_state_dict(pipe.unet, adapter_name=ADAPTER)
    same = trained.keys() == loaded.keys() and all(
        torch.equal(v, loaded[k]) for k, v in trained.items()
    )
    ours, theirs = session.parts.unet.peft_config["default"], pipe.unet.peft_config[ADAPTER]
    scale_kept = (ours.r, ours.lora_alpha) == (theirs.r, theirs.lora_alpha)
    token_id = pipe.tokenizer.convert_tokens_to_ids(session.cfg.token)
    row = embedding_matrix(pipe.text_encoder)[token_id]
    row_same = token_id == session.trainables.token_id and torch.equal(
        row, session.trainables.embedding[token_id]
    )
    detail = f"LoRA tensors identical: {same}; r/alpha {theirs.r}/{theirs.lora_alpha} (trained {ours.r}/{ours.lora_alpha}); token row identical: {row_same}"
    return Check(same and scale_kept and row_same, detail)


def check_modes(folder: Path) -> Check:
    """Files 0666 and folders 0777 minus the umask, owned by this process's user."""
    umask = current_umask()
    wrong = []
    for name in (LORA_FILE, EMBEDS_FILE, RUN_FILE, SAMPLE_FILE):
        info = (folder / name).stat()
        if stat.S_IMODE(info.st_mode) != 0o666 & ~umask or info.st_uid != os.getuid():
            wrong.append(f"{name} {stat.S_IMODE(info.st_mode):o} uid {info.st_uid}")
    expected = f"files {0o666 & ~umask:o}, uid {os.getuid()}"
    return Check(not wrong, f"{expected}; wrong: {wrong or 'none'}")
