"""`status` for a `stylelora train` job: last step, newest checkpoint, the resume command."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from types import MappingProxyType

import pytest

from bakery import devbox, engine
from bakery.cli import devbox as devbox_cli
from bakery.errors import UsageError

TRAIN = "python -m stylelora train --model /workspace/m --data d --output runs/a --steps 10"


def info(workspace: Path) -> engine.ContainerInfo:
    return engine.ContainerInfo(
        name="box", id="c1", image_id="sha256:1", image_ref="r:t", status="running",
        running=True, exit_code=0, oom_killed=False, error="", started_at=None, finished_at=None,
        labels=MappingProxyType({"io.bakery.devbox": "1", "io.bakery.devbox.workspace": str(workspace)}),
        group_add=(), devices=(), memory=0,
    )  # fmt: skip


def killed_job(workspace: Path, command: str = TRAIN, code: int = 137) -> devbox.JobStatus:
    folder = devbox.jobs_dir(workspace, "box")
    folder.mkdir(parents=True)
    (folder / "1-a.cmd").write_text(command + "\n", encoding="utf-8")
    (folder / "1-a.cwd").write_text("/workspace/proj\n", encoding="utf-8")
    (folder / "1-a.exit").write_text(f"{code}\n", encoding="utf-8")
    run = workspace / "proj" / "runs" / "a"
    (run / "checkpoints" / "step-000004").mkdir(parents=True)
    (run / "checkpoints" / "step-000004" / "state.json").write_text("{}", encoding="utf-8")
    (run / "checkpoints" / "step-000006").mkdir()  # partial: no state.json
    events = [{"event": "start", "step": 0, "steps": 10}]
    events += [{"event": "step", "step": n, "loss": 0.5} for n in range(1, 7)]
    text = "".join(json.dumps(e) + "\n" for e in events) + '{"event": "st'  # cut by the kill
    (run / "metrics.jsonl").write_text(text, encoding="utf-8")
    return devbox.list_jobs(info(workspace))[-1]


def test_a_killed_training_job_gets_the_exact_resume_command(tmp_path: Path) -> None:
    job = killed_job(tmp_path)
    progress = devbox.training_progress(job, info(tmp_path))
    assert progress is not None
    run = tmp_path / "proj" / "runs" / "a"
    assert progress.run == str(run)
    assert (progress.last_step, progress.steps) == (6, 10)
    assert progress.checkpoint == str(run / "checkpoints" / "step-000004")
    assert progress.resume_command == (
        "python build.py job --name box -- python -m stylelora train --model /workspace/m "
        "--data /workspace/proj/d --output /workspace/proj/runs/a --steps 10 --resume"
    )
    note = devbox.training_note(progress)
    assert note == f"training {run}: step 6/10, newest checkpoint {progress.checkpoint}"


def test_the_resume_command_works_from_any_folder(tmp_path: Path) -> None:
    """Relative paths become absolute container paths; a --model repo id stays as it is."""
    (tmp_path / "proj" / "local-model").mkdir(parents=True)
    argv = [
        "python",
        "-m",
        "stylelora",
        "train",
        "--model",
        "org/sd",
        "--data",
        "../d",
        "--output",
        "runs/a",
    ]
    got = devbox.absolute_paths(argv, "/workspace/proj", tmp_path / "proj")
    assert got[4:] == [
        "--model",
        "org/sd",
        "--data",
        "/workspace/d",
        "--output",
        "/workspace/proj/runs/a",
    ]
    argv[5] = "local-model"
    got = devbox.absolute_paths(argv, "/workspace/proj", tmp_path / "proj")
    assert got[5] == "/workspace/proj/local-model"


@pytest.mark.parametrize(
    ("command", "code", "resume"),
    [
        pytest.param(TRAIN, 0, False, id="finished"),
        pytest.param(TRAIN, 1, False, id="failed"),
        pytest.param(TRAIN + " --resume", 137, True, id="already-resuming"),
    ],
)
def test_only_a_kill_with_a_checkpoint_offers_resume(
    tmp_path: Path, command: str, code: int, resume: bool
) -> None:
    progress = devbox.training_progress(killed_job(tmp_path, command, code), info(tmp_path))
    assert progress is not None
    assert bool(progress.resume_command) is resume
    assert progress.resume_command.count("--resume") == (1 if resume else 0)


def test_other_jobs_have_no_training_progress(tmp_path: Path) -> None:
    job = killed_job(tmp_path, "python train.py --output runs/a")
    assert devbox.training_progress(job, info(tmp_path)) is None


def test_the_job_wrapper_records_its_working_folder(tmp_path: Path) -> None:
    command = devbox.job_command("box", "j1", ["true"])
    folder = tmp_path / "jobs"
    command[4] = str(folder)
    subprocess.run(command, check=True, timeout=30, cwd=tmp_path)
    assert (folder / "j1.cwd").read_text(encoding="utf-8") == f"{tmp_path}\n"


def test_logs_metrics_tails_the_run_folders_metrics_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    killed_job(tmp_path)
    monkeypatch.setattr(devbox.status, "require_container", lambda name: info(tmp_path))
    parser = argparse.ArgumentParser()
    devbox_cli._add_logs(parser)
    args = parser.parse_args(["--name", "box", "--metrics", "--tail", "2"])
    assert devbox_cli.cmd_logs(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert json.loads(lines[0]) == {"event": "step", "step": 6, "loss": 0.5}
    assert lines[1] == '{"event": "st'  # shown as it is: a person reads it
    killed_job_other = devbox.JobStatus("2-b", "sh -c true", tmp_path / "x.log", "exited", 0, "")
    with pytest.raises(UsageError, match="is not a `stylelora train` run"):
        devbox.metrics_path(killed_job_other, info(tmp_path))
