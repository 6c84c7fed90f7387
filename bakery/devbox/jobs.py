"""Background jobs (`job`): their folders in the workspace, their status and exit
explanations, and what a `stylelora train` job has done, read from its run folder."""

from __future__ import annotations

import json
import os
import re
import shlex
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bakery import engine
from bakery.devbox.fast import (
    LABEL_PREFIX,
    WORKSPACE_IN,
)
from bakery.devbox.options import (
    JOB_WRAPPER,
    JOBS_DIR,
)

# ---------------------------------------------------------------------------------------------
# Exit codes and jobs


_SIGNALS = {1: "SIGHUP", 2: "SIGINT", 6: "SIGABRT", 9: "SIGKILL", 11: "SIGSEGV", 15: "SIGTERM"}


def explain_exit(code: int, oom_killed: bool = False) -> str:
    """What an exit code means to someone whose training stopped."""
    if code == 0:
        return "exited normally (0)"
    if code == 137:
        if oom_killed:
            return "137: killed — out of memory (Docker recorded an OOM kill); lower the batch size or raise --memory"
        return "137: killed (SIGKILL) — by `docker kill`, a host shutdown or the kernel's OOM killer outside the container's limit"
    if code == 139:
        return "139: segmentation fault (SIGSEGV) — the program crashed, often a native extension or driver mismatch"
    if code == 143:
        return "143: stopped (SIGTERM), e.g. by `docker stop`"
    if code in (126, 127):
        return f"{code}: the command could not be run ({'not executable' if code == 126 else 'not found'})"
    if 128 < code < 160:
        signal_name = _SIGNALS.get(code - 128, f"signal {code - 128}")
        return f"{code}: killed by {signal_name}"
    return f"{code}: the program failed (exit code {code})"


@dataclass(frozen=True)
class JobStatus:
    id: str
    command: str
    log: Path
    state: str  # running | exited | lost (its container stopped before it finished)
    exit_code: int | None
    explanation: str


def jobs_dir(workspace: Path, name: str) -> Path:
    """Where the container's jobs keep their command, log and exit code, on the host."""
    return workspace / JOBS_DIR / name


def container_jobs_dir(info: engine.ContainerInfo) -> Path | None:
    workspace = info.labels.get(f"{LABEL_PREFIX}workspace", "")
    return jobs_dir(Path(workspace), info.name) if workspace else None


def list_jobs(info: engine.ContainerInfo) -> list[JobStatus]:
    """The container's jobs, oldest first (ids start with their start time)."""
    folder = container_jobs_dir(info)
    if folder is None or not folder.is_dir():
        return []
    return [
        _job_status(folder, path.stem, info.running, info.oom_killed)
        for path in sorted(folder.glob("*.cmd"))
    ]


def _job_status(folder: Path, job_id: str, running: bool, oom_killed: bool) -> JobStatus:
    command = _read_text(folder / f"{job_id}.cmd").strip()
    exit_text = _read_text(folder / f"{job_id}.exit").strip()
    log = folder / f"{job_id}.log"
    if exit_text.isdigit():
        code = int(exit_text)
        return JobStatus(job_id, command, log, "exited", code, explain_exit(code, oom_killed))
    if running:
        return JobStatus(job_id, command, log, "running", None, "running")
    return JobStatus(
        job_id, command, log, "lost", None, "the container stopped before the job finished"
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def tail_text(path: Path, lines: int) -> str:
    return "\n".join(_read_text(path).splitlines()[-lines:]) if lines > 0 else ""


def new_job_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


def job_command(name: str, job_id: str, command: Sequence[str]) -> list[str]:
    """The `sh -c` that runs `command` with its output and exit code in the workspace."""
    folder = f"{WORKSPACE_IN}/{JOBS_DIR}/{name}"
    return [
        "/bin/sh",
        "-c",
        JOB_WRAPPER,
        "bakery-job",
        folder,
        job_id,
        shlex.join(command),
        *command,
    ]


# ---------------------------------------------------------------------------------------------
# Training jobs: what a `stylelora train` job has done, read from its run folder

# The run-folder layout stylelora writes (stylelora/metrics.py, stylelora/checkpoint.py). bakery
# does not import stylelora; tests/unit/training/test_stylelora_checkpoint.py checks these agree.
TRAIN_METRICS = "metrics.jsonl"
TRAIN_CHECKPOINTS = "checkpoints"
TRAIN_CHECKPOINT_DONE = "state.json"  # written last: a checkpoint folder without it is partial
_CHECKPOINT_NAME = re.compile(r"step-\d{6,}")
TRAIN_PATH_OPTIONS = ("--model", "--data", "--output", "--vgg-weights")


@dataclass(frozen=True)
class TrainingProgress:
    run: str  # the run folder on the host
    last_step: int | None
    steps: int | None
    checkpoint: str  # the newest complete checkpoint folder ("" if none)
    resume_command: str  # after a kill (137) with a checkpoint: the exact command to continue


def train_output(argv: Sequence[str]) -> str | None:
    """The --output of a `stylelora train` command line, or None for any other command."""
    if "stylelora" not in argv or "train" not in argv[argv.index("stylelora") :]:
        return None
    for index, arg in enumerate(argv):
        if arg == "--output" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return None


def _host_path(container_path: str, workspace: Path) -> Path | None:
    path = Path(container_path)
    if not path.is_relative_to(WORKSPACE_IN):
        return None
    return workspace / path.relative_to(WORKSPACE_IN)


def newest_checkpoint(run: Path) -> str:
    folder = run / TRAIN_CHECKPOINTS
    names = [
        p.name
        for p in (folder.iterdir() if folder.is_dir() else [])
        if _CHECKPOINT_NAME.fullmatch(p.name) and (p / TRAIN_CHECKPOINT_DONE).is_file()
    ]
    return str(folder / max(names)) if names else ""


def last_steps(run: Path) -> tuple[int | None, int | None]:
    """(last logged step, planned steps) from the run's metrics file."""
    last, total = None, None
    for line in _read_text(run / TRAIN_METRICS).splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by the kill
        if isinstance(event, dict) and event.get("event") == "step":
            last = int(event.get("step", 0))
        elif isinstance(event, dict) and event.get("event") == "start":
            total = int(event.get("steps", 0))
    return last, total


def training_progress(job: JobStatus, info: engine.ContainerInfo) -> TrainingProgress | None:
    """For a `stylelora train` job: last step, newest checkpoint, and how to resume after 137."""
    workspace = info.labels.get(f"{LABEL_PREFIX}workspace", "")
    argv = shlex.split(job.command) if job.command else []
    output = train_output(argv)
    if not workspace or output is None:
        return None
    cwd = _read_text(job.log.with_name(f"{job.id}.cwd")).strip() or WORKSPACE_IN
    run = _host_path(os.path.join(cwd, output), Path(workspace))
    host_cwd = _host_path(cwd, Path(workspace))
    if run is None or host_cwd is None:
        return None
    last, total = last_steps(run)
    checkpoint = newest_checkpoint(run)
    resume = ""
    if job.exit_code == 137 and checkpoint:
        again = absolute_paths(argv, cwd, host_cwd)
        again += [] if "--resume" in argv else ["--resume"]
        resume = f"python build.py job --name {info.name} -- {shlex.join(again)}"
    return TrainingProgress(str(run), last, total, checkpoint, resume)


def absolute_paths(argv: Sequence[str], cwd: str, host_cwd: Path) -> list[str]:
    """argv with relative path options made absolute, so the command works from any folder.

    A --model value that does not exist as a folder is a Hugging Face repo id and stays as it is.
    """
    out = list(argv)
    for index, arg in enumerate(out[:-1]):
        value = out[index + 1]
        local = arg != "--model" or (host_cwd / value).exists()
        if arg in TRAIN_PATH_OPTIONS and not value.startswith("/") and local:
            out[index + 1] = os.path.normpath(os.path.join(cwd, value))
    return out
