"""Shared builders for the stylelora tests (a plain module: no conftest, no __init__ files).

The tiny model is built once per test process, into a temp folder removed at exit; tests treat
it as read-only. Everything is offline and seeded.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from stylelora import tiny
from stylelora.config import TrainConfig

REPO = Path(__file__).resolve().parents[3]

# Tiny models gain nothing from intra-op threads; on a busy 2-core CI host spinning OpenMP
# workers made these tests 5-10x slower. (The smoke command does the same for itself.)
torch.set_num_threads(1)


@functools.cache
def shared_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="stylelora-tests-"))
    atexit.register(shutil.rmtree, root, True)
    return root


@functools.cache
def tiny_model_dir() -> Path:
    """The tiny SD-like diffusers folder (seed 0), shared by every test."""
    return tiny.write_tiny_model(shared_root() / "model")


@functools.cache
def style_dir() -> Path:
    """Four procedural style images; the last has another size and mode."""
    folder = shared_root() / "data"
    tiny.write_style_images(folder)
    return folder


def tiny_config(output: Path, **overrides: Any) -> TrainConfig:
    """The smoke run's settings, on the shared tiny model, with a few steps."""
    cfg = TrainConfig(
        model=str(tiny_model_dir()),
        data=style_dir(),
        output=output,
        steps=3,
        lr=1e-3,
        embedding_lr=5e-3,
        rank=4,
        alpha=8,
        style_weight=1.0,
        resolution=tiny.RESOLUTION,
        batch_size=2,
        device="cpu",
        mixed_precision="no",
    )
    return replace(cfg, **overrides)


@contextmanager
def preserved_environ() -> Iterator[None]:
    """`main()` sets HF_HUB_OFFLINE and friends in os.environ; undo that after the test."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
