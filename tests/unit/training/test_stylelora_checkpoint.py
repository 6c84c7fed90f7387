"""bakery reads stylelora's run folders without importing stylelora: the two must agree."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stylelora_kit import tiny_config

from bakery import devbox
from stylelora import checkpoint, metrics
from stylelora.train import run_training


def test_bakery_names_the_same_run_folder_files() -> None:
    assert devbox.TRAIN_METRICS == metrics.METRICS_FILE
    assert devbox.TRAIN_CHECKPOINTS == checkpoint.CHECKPOINTS_DIR
    assert devbox.TRAIN_CHECKPOINT_DONE == checkpoint.STATE_JSON


def test_bakery_reads_a_real_run_folder(tmp_path: Path) -> None:
    result = run_training(
        tiny_config(tmp_path / "run", steps=3, checkpoint_every=2), show_progress=False
    )
    assert devbox.last_steps(result.output) == (3, 3)
    assert devbox.newest_checkpoint(result.output) == str(
        result.output / "checkpoints" / "step-000003"
    )


def test_checkpoint_files_get_the_umask_modes_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        result = run_training(
            tiny_config(tmp_path / "run", steps=1, checkpoint_every=1), show_progress=False
        )
    finally:
        os.umask(old)
    folder = result.output / "checkpoints" / "step-000001"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o644}
