"""The run folder while a run is in progress: checkpoints and metrics live in it from step one.

The final files (LoRA, embedding, run.json) are still staged inside it and moved into place at
the end (`outputs.Staging`), run.json last. A folder that holds checkpoints or metrics of an
unfinished run is only reused with --resume (continue) or --overwrite (start over), and a run
that fails before its first checkpoint leaves nothing behind in a folder it created.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from stylelora.checkpoint import CHECKPOINTS_DIR, complete_steps
from stylelora.config import TrainConfig
from stylelora.errors import OutputError
from stylelora.metrics import METRICS_FILE
from stylelora.outputs import Staging, prepare_output

log = logging.getLogger(__name__)


@dataclass
class RunFolder:
    """The main process's handle on the run folder (other processes get none)."""

    path: Path
    staging: Staging
    created: bool

    def abort(self) -> None:
        """Drop the staged files; in a folder this run created, drop everything if unresumable."""
        self.staging.abort()
        if not self.created or complete_steps(self.path):
            return
        (self.path / METRICS_FILE).unlink(missing_ok=True)
        shutil.rmtree(self.path / CHECKPOINTS_DIR, ignore_errors=True)
        with contextlib.suppress(OSError):  # something else is in it: leave it
            self.path.rmdir()


def unfinished_files(path: Path) -> list[str]:
    return [name for name in (METRICS_FILE, CHECKPOINTS_DIR) if (path / name).exists()]


def open_run_folder(cfg: TrainConfig) -> RunFolder:
    """Check the output folder, clear an old unfinished run on --overwrite, open staging."""
    target = cfg.output.absolute()
    staging = prepare_output(target, cfg.overwrite)  # refuses finished runs and bad paths
    staging.abort()
    unfinished = unfinished_files(target) if target.is_dir() else []
    if unfinished and cfg.resume is None and not cfg.overwrite:
        raise OutputError(
            f"output folder {target} holds an unfinished run ({', '.join(unfinished)})",
            fix="pass --resume to continue it, --overwrite to start over, or choose another --output",
        )
    if unfinished and cfg.resume is None:
        log.info("--overwrite: removing the unfinished run's %s", " and ".join(unfinished))
        (target / METRICS_FILE).unlink(missing_ok=True)
        shutil.rmtree(target / CHECKPOINTS_DIR, ignore_errors=True)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    return RunFolder(target, prepare_output(target, cfg.overwrite), created)
