"""Between a training loop and a checkpoint: what to capture, and how to put it back exactly.

A checkpoint holds the LoRA tensors and the placeholder row, the optimizer and LR-schedule state,
the run generator (noise, timesteps, data order), torch's global generators, the position in
the data order, and the loss history. Restoring all of it into a freshly built session continues
the run bit for bit on the CPU: the same seed gives the same weights as an uninterrupted run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from stylelora.checkpoint import (
    Checkpoint,
    check_compatible,
    find_checkpoint,
    load_state,
    load_tensors,
)
from stylelora.config import TrainConfig
from stylelora.errors import UsageError

if TYPE_CHECKING:
    from stylelora.train import Loop

log = logging.getLogger(__name__)

FORMAT = 1
ROW = "embedding_row"


def find(cfg: TrainConfig, processes: int = 1) -> Checkpoint | None:
    """The checkpoint --resume names, checked against this run's options (None: start anew)."""
    if cfg.resume is None:
        return None
    checkpoint = find_checkpoint(cfg.resume, cfg.output.absolute())
    if checkpoint is None:
        log.info("--resume latest: %s has no checkpoint yet, starting at step 0", cfg.output)
        return None
    check_compatible(checkpoint, cfg.to_json())
    if checkpoint.processes != processes:
        raise UsageError(
            f"checkpoint {checkpoint.folder} was written by {checkpoint.processes} training "
            f"process(es), this run has {processes}",
            why="the global batch (--batch-size per process) would change",
            fix=f"launch {checkpoint.processes} process(es) to resume it",
        )
    if checkpoint.step > cfg.steps:
        raise UsageError(
            f"checkpoint {checkpoint.folder} is at step {checkpoint.step}, past --steps {cfg.steps}",
            fix=f"pass --steps {checkpoint.step} or more",
        )
    return checkpoint


def capture(loop: Loop) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(tensors, state, record) for `write_checkpoint`."""
    session = loop.session
    trainables = session.trainables
    tensors: dict[str, torch.Tensor] = {f"lora.{i}": p for i, p in enumerate(trainables.lora)}
    tensors[ROW] = trainables.embedding[trainables.token_id]
    state: dict[str, Any] = {
        "optimizer": session.optimizer.state_dict(),
        "lr_schedule": session.lr_schedule.state_dict(),
        "rng": loop.rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": loop.batches.state(),
    }
    record: dict[str, Any] = {
        "format": FORMAT,
        "config": session.cfg.to_json(),
        "processes": session.processes.count,
        "history": loop.history,
    }
    return tensors, state, record


def restore(loop: Loop, checkpoint: Checkpoint) -> None:
    """Put a checkpoint into a freshly built loop (same options, checked by `find`)."""
    session = loop.session
    trainables = session.trainables
    tensors = load_tensors(checkpoint)
    expected = {f"lora.{i}" for i in range(len(trainables.lora))} | {ROW}
    if set(tensors) != expected:
        raise UsageError(
            f"checkpoint {checkpoint.folder} does not fit this model",
            why=f"it holds {len(tensors)} tensors, the model has {len(expected)} trainable ones",
            fix="resume with the model the run started with",
        )
    with torch.no_grad():
        for i, param in enumerate(trainables.lora):
            param.copy_(tensors[f"lora.{i}"])
        trainables.embedding[trainables.token_id] = tensors[ROW]
    state = load_state(checkpoint)
    session.optimizer.load_state_dict(state["optimizer"])
    session.lr_schedule.load_state_dict(state["lr_schedule"])
    loop.rng.set_state(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    loop.batches.load_state(state["data"])
    loop.history = list(checkpoint.history)
    loop.first_step = checkpoint.step
