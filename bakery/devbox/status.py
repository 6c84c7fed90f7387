"""`status`, `job`, `logs` and `stop`: what each dev container and its jobs are doing."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bakery import engine
from bakery.devbox.create import ensure_running, require_container, require_devbox
from bakery.devbox.fast import (
    LABEL,
    LABEL_PREFIX,
    credential_names,
    workdir_for,
)
from bakery.devbox.jobs import (
    TRAIN_METRICS,
    JobStatus,
    TrainingProgress,
    _job_status,
    _read_text,
    explain_exit,
    job_command,
    jobs_dir,
    list_jobs,
    new_job_id,
    tail_text,
    training_progress,
)
from bakery.errors import EXIT_OK, UsageError
from bakery.ui import err_console, out_console

# ---------------------------------------------------------------------------------------------
# Status


@dataclass(frozen=True)
class DevboxStatus:
    name: str
    state: str
    variant: str
    image: str
    image_current: bool | None  # None: the tagged image is gone
    user: str
    workspace: str
    since: str  # ISO time the state began
    exit_code: int | None
    oom_killed: bool
    explanation: str
    last_job: JobStatus | None
    log_tail: str
    training: TrainingProgress | None = None


def status_of(info: engine.ContainerInfo, log_lines: int = 10) -> DevboxStatus:
    labels = info.labels
    ref = labels.get(f"{LABEL_PREFIX}image", info.image_ref)
    current = engine.inspect_image(ref)
    jobs = list_jobs(info)
    exited = info.status in ("exited", "dead")
    since = info.started_at if info.running else info.finished_at
    return DevboxStatus(
        name=info.name,
        state=info.status,
        variant=labels.get(f"{LABEL_PREFIX}variant", ""),
        image=ref,
        image_current=None if current is None else current.id == info.image_id,
        user=labels.get(f"{LABEL_PREFIX}user", ""),
        workspace=labels.get(f"{LABEL_PREFIX}workspace", ""),
        since=since.isoformat() if since else "",
        exit_code=info.exit_code if exited else None,
        oom_killed=info.oom_killed,
        explanation=_state_note(info),
        last_job=jobs[-1] if jobs else None,
        log_tail=engine.container_logs_tail(info.name, log_lines) if exited else "",
        training=training_progress(jobs[-1], info) if jobs else None,
    )


def _state_note(info: engine.ContainerInfo) -> str:
    if info.status in ("exited", "dead"):
        return explain_exit(info.exit_code, info.oom_killed)
    if info.oom_killed:
        return "a process in it was killed for lack of memory (Docker recorded an OOM kill since it started)"
    return ""


def human_age(since: str, now: datetime | None = None) -> str:
    """ "3d 4h", "2h 5m", "4m 10s" since an ISO time; "—" for none."""
    if not since:
        return "—"
    elapsed = (now or datetime.now(UTC)) - datetime.fromisoformat(since)
    seconds = max(int(elapsed.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def status_record(s: DevboxStatus) -> dict[str, Any]:
    record = asdict(s)
    if s.last_job is not None:
        record["last_job"] = {**asdict(s.last_job), "log": str(s.last_job.log)}
    return record


def print_status(statuses: Sequence[DevboxStatus]) -> None:
    table = Table(title=f"{len(statuses)} bakery dev containers")
    for column in ("name", "state", "variant", "image", "user", "for", "notes"):
        table.add_column(column, overflow="fold")
    for s in statuses:
        image = s.image + {None: " (image gone)", False: " (older image)"}.get(s.image_current, "")
        job = s.last_job
        notes = [s.explanation] if s.explanation else []
        if job is not None:
            notes.append(f"last job {job.id}: {job.explanation}")
        if s.training is not None:
            notes.append(training_note(s.training))
        table.add_row(
            s.name, s.state, s.variant, image, s.user, human_age(s.since), "; ".join(notes)
        )
    out = out_console()
    out.print(table)
    for s in statuses:
        _print_tails(out, s)


def training_note(t: TrainingProgress) -> str:
    step = "no step yet" if t.last_step is None else f"step {t.last_step}/{t.steps or '?'}"
    checkpoint = f"newest checkpoint {t.checkpoint}" if t.checkpoint else "no checkpoint"
    return f"training {t.run}: {step}, {checkpoint}"


def _print_tails(out: Any, s: DevboxStatus) -> None:
    if s.log_tail.strip():
        out.print(f"\n[bold]{s.name}[/]: last lines of its main process:", markup=True)
        out.print(s.log_tail.rstrip(), markup=False, highlight=False)
    job = s.last_job
    if job is not None and job.state != "running" and job.exit_code != 0:
        out.print(f"\n[bold]{s.name}[/]: last lines of job {job.id} ({job.log}):", markup=True)
        out.print(tail_text(job.log, 10) or "(no output)", markup=False, highlight=False)
    if s.training is not None and s.training.resume_command:
        out.print(f"\n[bold]{s.name}[/]: resume the training with:", markup=True)
        out.print(s.training.resume_command, markup=False, highlight=False, soft_wrap=True)


def show_status(name: str | None, lines: int, *, as_json: bool) -> int:
    """Every dev container (or the one named): state, image, why it exited, its last job."""
    infos = engine.list_containers(LABEL)
    if name:
        infos = [i for i in infos if i.name == name]
    statuses = [status_of(i, lines) for i in infos]
    if as_json:
        print(json.dumps([status_record(s) for s in statuses], indent=2))
        return EXIT_OK
    if not statuses:
        err_console().print("no bakery dev containers here — `python build.py up` makes one")
        return EXIT_OK
    print_status(statuses)
    return EXIT_OK


def start_job(name: str, command: Sequence[str]) -> int:
    """Run `command` in the background in the dev container `name`; print the job id."""
    command = list(command)
    if not command:
        raise UsageError("job needs a command", fix="python build.py job -- python train.py ...")
    info = ensure_running(require_devbox(require_container(name)))
    job_id = new_job_id()
    engine.exec_detached(
        info.name,
        job_command(info.name, job_id, command),
        workdir=workdir_for(info.labels.get(f"{LABEL_PREFIX}workspace", ""), os.getcwd()),
        env_from_caller=credential_names(os.environ),
    )
    log = jobs_dir(Path(info.labels[f"{LABEL_PREFIX}workspace"]), info.name) / f"{job_id}.log"
    print(job_id)
    err_console().print(
        f"job {job_id} started in {info.name}: {shlex.join(command)}\n"
        f"output: {log}\nfollow it: python build.py logs --name {info.name} --job {job_id} --follow"
    )
    return EXIT_OK


@dataclass(frozen=True)
class LogsRequest:
    """`logs`: which job of which container, how much, followed or not, output or metrics."""

    name: str
    job: str | None = None  # None: the latest
    tail: int = 50
    follow: bool = False
    metrics: bool = False


def show_logs(request: LogsRequest) -> int:
    """The last lines of a job's log (or its training metrics); follow it until it ends."""
    info = require_devbox(require_container(request.name))
    jobs = list_jobs(info)
    if not jobs:
        err_console().print(
            f"no jobs in {info.name} yet — `python build.py job --name {info.name} -- CMD` starts one"
        )
        return EXIT_OK
    chosen = next((j for j in jobs if j.id == request.job), None) if request.job else jobs[-1]
    if chosen is None:
        raise UsageError(
            f"no job {request.job} in {info.name}", fix=f"jobs: {', '.join(j.id for j in jobs)}"
        )
    err_console().print(f"job {chosen.id} ({chosen.explanation}): {chosen.command}")
    path = metrics_path(chosen, info) if request.metrics else chosen.log
    if request.follow:
        return _follow(chosen, info.name, path)
    text = tail_text(path, request.tail)
    if text:
        print(text)
    return EXIT_OK


def metrics_path(job: JobStatus, info: engine.ContainerInfo) -> Path:
    progress = training_progress(job, info)
    if progress is None:
        raise UsageError(
            f"job {job.id} is not a `stylelora train` run with an --output in the workspace",
            fix="drop --metrics to see its output",
        )
    return Path(progress.run) / TRAIN_METRICS


def _follow(job: JobStatus, name: str, path: Path | None = None) -> int:
    """Print the log (or `path`) as it grows until the job has an exit code or its container stops."""
    offset = 0
    while True:
        info = require_container(name)
        status = _job_status(job.log.parent, job.id, info.running, info.oom_killed)
        data = _read_text(path or job.log)
        sys.stdout.write(data[offset:])
        sys.stdout.flush()
        offset = len(data)
        if status.state != "running":
            err_console().print(f"job {job.id}: {status.explanation}")
            return EXIT_OK
        time.sleep(0.5)  # a log follower polls; nothing to wait on in a bind-mounted file


def stop_devbox(name: str) -> int:
    """Stop the dev container `name` (and its jobs); every file is kept."""
    info = require_devbox(require_container(name))
    console = err_console()
    if not info.running:
        console.print(f"{info.name} is not running ({info.status})")
        return EXIT_OK
    running = [j.id for j in list_jobs(info) if j.state == "running"]
    engine.stop_container(info.name)
    if running:
        console.print(f"[yellow]stopped jobs:[/] {', '.join(running)}")
    console.print(
        f"stopped {info.name}; its files are kept — `python build.py enter --name {info.name}` starts it again"
    )
    return EXIT_OK
