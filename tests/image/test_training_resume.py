"""A training job in a dev container of the image: killed, `status` says how to resume, resumed.

The real image (its stylelora), the real `up`/`job`/`status` commands and a real SIGKILL of the
training process inside the container (the job wrapper records 137, as after an OOM kill).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support.dockercli import docker
from support.images import ROOT, ImageUnderTest
from support.wait import wait_until

from bakery.cli import main

pytestmark = pytest.mark.docker

# A dev container runs as the host user's ids. As root the suite picks other ids than its own
# (and chowns the workspace to them); as the unprivileged runner user of a hosted runner, which
# cannot chown, they are that user's own ids (outputs owned by root still fail the test).
HOST_UID, HOST_GID = (4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid())
PREPARE = (
    "from pathlib import Path; from stylelora import tiny; "
    "tiny.write_tiny_model(Path('model')); tiny.write_style_images(Path('data'))"
)
TRAIN = [
    "python", "-m", "stylelora", "train", "--model", "model", "--data", "data",
    "--output", "runs/style", "--steps", "30", "--checkpoint-every", "2", "--resolution", "32",
    "--batch-size", "2", "--device", "cpu", "--mixed-precision", "no",
]  # fmt: skip
# Finds the training process by its own argv (not the job wrapper's sh) and SIGKILLs it by id.
KILL = (
    "import os, signal\n"
    "for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try: argv = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
    "    except OSError: continue\n"
    "    if argv[0].endswith((b'python', b'python3')) and argv[1:4] == [b'-m', b'stylelora', b'train']:\n"
    "        os.kill(int(pid), signal.SIGKILL); print(pid)\n"
)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    wait_until(condition, timeout, what, interval=0.2)  # checkpoints come seconds apart


@pytest.fixture
def devbox_name(new_name: Callable[[], str]) -> str:
    """The dev container's name, force-removed when the test ends (support.fixtures)."""
    return new_name()


def start_job(name: str, argv: list[str], capfd: pytest.CaptureFixture[str]) -> str:
    capfd.readouterr()
    assert main(["job", "--name", name, "--", *argv]) == 0
    return capfd.readouterr().out.strip()


def status_record(name: str, capfd: pytest.CaptureFixture[str]) -> dict[str, object]:
    capfd.readouterr()
    assert main(["status", "--name", name, "--json"]) == 0
    records: list[dict[str, object]] = json.loads(capfd.readouterr().out)
    return records[0]


def test_killed_training_job_resumes_from_the_command_status_prints(
    image: ImageUnderTest, tmp_path: Path, devbox_name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    if image.variant.flavour == "slim":
        pytest.skip("slim image: training needs the host environment (slim suite)")
    workspace = tmp_path / "project"
    workspace.mkdir()
    if os.geteuid() == 0:
        os.chown(workspace, HOST_UID, HOST_GID)
    repository = image.ref.rsplit(":", 1)[0]
    assert main([
        "up", "--repository", repository, "--variant", image.variant.id, "--name", devbox_name,
        "--workspace", str(workspace), "--user", f"{HOST_UID}:{HOST_GID}",
        "--pip-cache", "none", "--hf-home", "none",
    ]) == 0  # fmt: skip
    jobs = workspace / ".bakery" / "jobs" / devbox_name
    prepared = start_job(devbox_name, ["python", "-c", PREPARE], capfd)
    wait_for((jobs / f"{prepared}.exit").exists, 300, "the tiny model")
    assert (jobs / f"{prepared}.exit").read_text().strip() == "0"

    first = start_job(devbox_name, TRAIN, capfd)
    checkpoints = workspace / "runs" / "style" / "checkpoints"
    wait_for(lambda: any(checkpoints.glob("step-*/state.json")), 300, "a first checkpoint")
    killed = docker("exec", devbox_name, "python", "-c", KILL, timeout=60)
    assert killed.stdout.split(), "no training process to kill"
    wait_for((jobs / f"{first}.exit").exists, 60, "the killed job's exit code")
    assert (jobs / f"{first}.exit").read_text().strip() == "137"

    training = status_record(devbox_name, capfd)["training"]
    assert isinstance(training, dict)
    assert training["checkpoint"].startswith(str(checkpoints))
    command = training["resume_command"]
    assert command.startswith(f"python build.py job --name {devbox_name} -- python -m stylelora")
    assert command.endswith(" --resume")
    capfd.readouterr()
    assert main(["status", "--name", devbox_name]) == 0
    assert command in " ".join(capfd.readouterr().out.split())  # printed for a person too

    resumed = subprocess.run(
        shlex.split(command), cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    job_id = resumed.stdout.strip()
    wait_for((jobs / f"{job_id}.exit").exists, 600, "the resumed run")
    log = (jobs / f"{job_id}.log").read_text(errors="replace")
    assert (jobs / f"{job_id}.exit").read_text().strip() == "0", log[-3000:]
    assert "resuming after step" in log
    run = workspace / "runs" / "style"
    record = json.loads((run / "run.json").read_text())
    assert [r["step"] for r in record["losses"]] == list(range(1, 31))
    for path in [run, *run.rglob("*")]:
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (HOST_UID, HOST_GID), f"{path} is {st.st_uid}:{st.st_gid}"
