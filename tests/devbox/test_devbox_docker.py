"""`up`, `enter`, `status`, `job`, `logs`, `stop` against a real Docker engine."""

from __future__ import annotations

import json
import os
import pty
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from support.devbox import (
    MATRIX,
    ROOT,
    TEST_UID,
    DevboxImage,
    Pty,
    build_test_image,
    container_names,
    inspect,
    make_char_device,
)
from support.dockercli import docker
from support.wait import wait_until

from bakery import devbox, engine
from bakery.cli import main
from bakery.matrix import load_matrix

pytestmark = pytest.mark.docker

UpArgs = Callable[..., list[str]]


def running(name: str) -> bool:
    return bool(inspect(name)["State"]["Running"])


def status_of(name: str, capfd: pytest.CaptureFixture[str]) -> dict[str, object]:
    capfd.readouterr()
    assert main(["status", "--json", "--name", name]) == 0
    records: list[dict[str, object]] = json.loads(capfd.readouterr().out)
    assert [r["name"] for r in records] == [name]
    return records[0]


def test_up_runs_as_the_host_user_with_home_and_files_land_in_the_workspace(
    new_name: Callable[[], str], up_args: UpArgs, workspace: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    script = 'id -u; id -g; whoami; echo "$HOME"; touch "$HOME/h" && echo home-ok; echo x > /workspace/made-inside'
    capfd.readouterr()
    assert main(["enter", "--name", name, "--", "sh", "-c", script]) == 0
    lines = capfd.readouterr().out.split()
    assert lines[:3] == [str(TEST_UID), str(TEST_UID), f"u{TEST_UID}"]
    assert lines[3] == f"/home/u{TEST_UID}"
    assert lines[4] == "home-ok"
    made = (workspace / "made-inside").stat()
    assert (made.st_uid, made.st_gid) == (TEST_UID, TEST_UID)
    assert running(name), "the container must outlive the command that entered it"
    labels = inspect(name)["Config"]["Labels"]
    assert labels["io.bakery.devbox.workspace"] == str(workspace)
    assert labels["io.bakery.devbox.user"] == f"{TEST_UID}:{TEST_UID}"


def test_enter_shell_on_a_terminal_then_exit_keeps_the_container(
    new_name: Callable[[], str], up_args: UpArgs
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real command line on a pseudo-terminal
        os.chdir(ROOT)
        argv = [sys.executable, "build.py", "enter", "--name", name]
        os.execvp(argv[0], argv)  # noqa: S606 - an argument list, no shell
    terminal = Pty(pid, fd)
    terminal.send("echo MARK$((40+2)) $(id -u)\n")  # the shell expands it: proves a live shell
    terminal.expect(f"MARK42 {TEST_UID}")
    terminal.send("exit\n")
    terminal.expect("keeps running")
    assert terminal.wait() == 0
    assert running(name)


def test_stop_then_enter_starts_it_again_with_the_files_from_before(
    new_name: Callable[[], str], up_args: UpArgs, capfd: pytest.CaptureFixture[str]
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    container_id = inspect(name)["Id"]
    note = 'echo kept > "$HOME/note" && echo kept > /workspace/note'
    assert main(["enter", "--name", name, "--", "sh", "-c", note]) == 0
    assert main(["stop", "--name", name]) == 0
    assert inspect(name)["State"]["Status"] == "exited"
    capfd.readouterr()
    assert (
        main(["enter", "--name", name, "--", "sh", "-c", 'cat "$HOME/note" /workspace/note']) == 0
    )
    captured = capfd.readouterr()
    assert captured.out.split() == ["kept", "kept"]
    assert "starting" in captured.err
    assert inspect(name)["Id"] == container_id, "enter must start the same container, not a new one"
    assert running(name)


def test_enter_on_a_missing_container_without_create_changes_nothing(
    new_name: Callable[[], str], capfd: pytest.CaptureFixture[str]
) -> None:
    name = new_name()
    before = container_names()
    assert main(["enter", "--name", name, "--", "true"]) == 1
    assert "--create" in capfd.readouterr().err
    assert container_names() == before


def test_enter_create_makes_the_container_and_runs_the_command(
    new_name: Callable[[], str], up_args: UpArgs, capfd: pytest.CaptureFixture[str]
) -> None:
    name = new_name()
    args = ["enter", "--create", *up_args(name)[1:], "--", "sh", "-c", "echo created-$(id -u)"]
    capfd.readouterr()
    assert main(args) == 0
    assert f"created-{TEST_UID}" in capfd.readouterr().out
    assert running(name)


def test_simulated_gpu_nodes_are_passed_with_numeric_groups_and_open_for_the_user(
    new_name: Callable[[], str],
    up_args: UpArgs,
    devbox_image: DevboxImage,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dev = tmp_path / "dev"
    make_char_device(dev / "kfd", 4242)
    make_char_device(dev / "dri" / "card0", 4242)  # the same group twice: passed once
    make_char_device(dev / "dri" / "renderD128", 4243)
    name = new_name()
    args = up_args(name, "--dev-root", str(dev), variant=devbox_image.rocm_variant)
    assert main(args) == 0
    host_config = inspect(name)["HostConfig"]
    assert host_config["GroupAdd"] == ["4242", "4243"]
    assert "seccomp=unconfined" in host_config["SecurityOpt"]
    opener = "exec 3<>/dev/kfd && exec 4<>/dev/dri/renderD128 && echo opened; id -G"
    capfd.readouterr()
    assert main(["enter", "--name", name, "--", "sh", "-c", opener]) == 0
    out = capfd.readouterr().out.split()
    assert out[0] == "opened"
    assert {"4242", "4243"} <= set(out[1:])


def test_a_simulated_gpu_node_is_closed_to_the_user_without_its_group(
    devbox_image: DevboxImage, tmp_path: Path, new_name: Callable[[], str]
) -> None:
    """The check above can fail: the same node, the same user, no --group-add."""
    kfd = make_char_device(tmp_path / "kfd", 4242)
    name = new_name()
    result = engine.run_container(
        devbox_image.refs[0],
        ["sh", "-c", "exec 3<>/dev/kfd"],
        user=f"{TEST_UID}:{TEST_UID}",
        devices=[f"{kfd}:/dev/kfd"],
        network="none",
        timeout=60,
        name=name,
    )
    assert result.return_code != 0
    assert "Permission denied" in result.stderr


def test_mounts_caches_and_settings_reach_the_container(
    new_name: Callable[[], str],
    up_args: UpArgs,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "images"
    data.mkdir()
    (data / "a.png").write_text("pixels", encoding="utf-8")
    pip_cache, hf_home = tmp_path / "pip", tmp_path / "hf"
    monkeypatch.setenv("HF_ENDPOINT", "http://hf-mirror.internal")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    name = new_name()
    args = [
        *up_args(name),
        "--data",
        str(data),
        "--pip-cache",
        str(pip_cache),
        "--hf-home",
        str(hf_home),
    ]
    assert main(args) == 0
    assert (pip_cache.stat().st_uid, hf_home.stat().st_uid) == (TEST_UID, TEST_UID)
    script = (
        "cat /data/images/a.png; echo; touch /data/images/b 2>/dev/null || echo data-read-only; "
        'touch "$PIP_CACHE_DIR/p" "$HF_HOME/h" && echo caches-ok; '
        'echo "$HF_ENDPOINT $HTTPS_PROXY"; df -k /dev/shm | tail -1'
    )
    capfd.readouterr()
    assert main(["enter", "--name", name, "--", "sh", "-c", script]) == 0
    lines = capfd.readouterr().out.splitlines()
    assert lines[:4] == [
        "pixels",
        "data-read-only",
        "caches-ok",
        "http://hf-mirror.internal http://proxy.internal:3128",
    ]
    assert int(lines[4].split()[1]) >= 1024 * 1024, "/dev/shm must be large (default 8g)"
    assert (pip_cache / "p").exists()
    assert (hf_home / "h").exists()


def test_job_runs_in_the_background_and_logs_and_status_explain_it(
    new_name: Callable[[], str],
    up_args: UpArgs,
    workspace: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    capfd.readouterr()
    assert main(["job", "--name", name, "--", "sh", "-c", "echo hello-from-job; exit 3"]) == 0
    job_id = capfd.readouterr().out.strip()
    exit_file = workspace / ".bakery" / "jobs" / name / f"{job_id}.exit"
    wait_until(exit_file.exists, 30, f"job {job_id} to finish")
    assert exit_file.stat().st_uid == TEST_UID
    assert main(["logs", "--name", name]) == 0
    assert capfd.readouterr().out.strip() == "hello-from-job"
    job = status_of(name, capfd)["last_job"]
    assert isinstance(job, dict)
    assert (job["id"], job["exit_code"]) == (job_id, 3)
    assert "the program failed" in job["explanation"]


def test_a_job_that_runs_out_of_memory_is_reported_as_oom_killed(
    new_name: Callable[[], str],
    up_args: UpArgs,
    workspace: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name = new_name()
    assert main([*up_args(name), "--memory", "32m"]) == 0
    capfd.readouterr()
    hog = ["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"]  # a 100 MB buffer
    assert main(["job", "--name", name, "--", *hog]) == 0
    job_id = capfd.readouterr().out.strip()
    exit_file = workspace / ".bakery" / "jobs" / name / f"{job_id}.exit"
    wait_until(exit_file.exists, 60, f"job {job_id} to be killed")
    record = status_of(name, capfd)
    job = record["last_job"]
    assert isinstance(job, dict)
    assert job["exit_code"] == 137
    assert "out of memory" in job["explanation"]
    assert record["oom_killed"] is True
    assert record["state"] == "running", "the container survives its job's OOM kill"


def test_an_exited_container_killed_for_memory_is_reported_as_oom_137(
    new_name: Callable[[], str],
    devbox_image: DevboxImage,
    workspace: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A dev container whose main process allocates past a 32 MB limit: status says why."""
    name = new_name()
    variant = next(v for v in load_matrix(MATRIX).variants if v.id == devbox_image.cpu_variant)
    opts = devbox.UpOptions(
        name=name,
        variant=variant,
        image=devbox_image.refs[0],
        workspace=workspace,
        user=devbox.host_user(TEST_UID, TEST_UID),
        gpu=devbox.gpu_access("cpu"),
        memory="32m",
        command=("dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"),
    )
    engine.create_container(devbox.container_spec(opts))
    engine.start_container(name)
    wait_until(lambda: inspect(name)["State"]["Status"] == "exited", 60, f"{name} to exit")
    record = status_of(name, capfd)
    assert (record["state"], record["exit_code"], record["oom_killed"]) == ("exited", 137, True)
    assert "out of memory" in str(record["explanation"])
    assert main(["status"]) == 0
    assert "137: killed — out of memory" in capfd.readouterr().out


def test_recreate_asks_refuses_without_a_terminal_and_replaces_with_yes(
    new_name: Callable[[], str],
    up_args: UpArgs,
    workspace: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    name = new_name()
    assert main(up_args(name)) == 0
    first = inspect(name)["Id"]
    assert main(["enter", "--name", name, "--", "sh", "-c", "echo w > /workspace/w"]) == 0
    assert main(up_args(name)) == 0, "up on an existing container leaves it alone"
    assert inspect(name)["Id"] == first
    capfd.readouterr()
    assert main([*up_args(name), "--recreate"]) == 2  # pytest's stdin is no terminal
    assert "--yes" in capfd.readouterr().err
    assert inspect(name)["Id"] == first
    assert main([*up_args(name), "--recreate", "--yes"]) == 0
    assert inspect(name)["Id"] != first
    assert (workspace / "w").read_text(encoding="utf-8") == "w\n"


def test_a_container_from_an_older_image_is_reported(
    new_name: Callable[[], str],
    devbox_image: DevboxImage,
    workspace: Path,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    repository = f"bakery-devbox-stale-{uuid.uuid4().hex[:8]}/bakery"
    ref = f"{repository}:{devbox_image.refs[0].split(':')[1]}"
    docker("tag", devbox_image.refs[0], ref)
    try:
        name = new_name()
        args = [
            "up", "--matrix", str(MATRIX), "--repository", repository, "--variant",
            devbox_image.cpu_variant, "--name", name, "--workspace", str(workspace),
            "--user", f"{TEST_UID}:{TEST_UID}", "--pip-cache", "none", "--hf-home", "none",
        ]  # fmt: skip
        assert main(args) == 0
        assert status_of(name, capfd)["image_current"] is True
        context = tmp_path / "newer"
        context.mkdir()
        build_test_image(context, ref, devbox_image.cpu_variant + "-rebuilt")  # a new image id
        assert status_of(name, capfd)["image_current"] is False
        assert main(["enter", "--name", name, "--", "true"]) == 0
        assert "--recreate" in capfd.readouterr().err
    finally:
        docker("container", "rm", "--force", name, check=False)
        docker("image", "rm", "--force", ref, check=False)


def test_up_refuses_a_container_it_did_not_make(
    new_name: Callable[[], str], up_args: UpArgs, devbox_image: DevboxImage
) -> None:
    name = new_name()
    docker("container", "create", "--name", name, devbox_image.refs[0], "true")
    before = inspect(name)["Id"]
    assert main([*up_args(name), "--recreate", "--yes"]) == 2
    assert main(["stop", "--name", name]) == 2
    assert inspect(name)["Id"] == before


def test_up_options_pass_user_memory_and_shm_to_docker(
    new_name: Callable[[], str], up_args: UpArgs
) -> None:
    name = new_name()
    assert main([*up_args(name), "--memory", "256m", "--shm-size", "1g"]) == 0
    host_config = inspect(name)["HostConfig"]
    assert (host_config["Memory"], host_config["MemorySwap"]) == (256 * 2**20, 256 * 2**20)
    assert host_config["ShmSize"] == 2**30
    assert inspect(name)["Config"]["User"] == f"{TEST_UID}:{TEST_UID}"
    assert host_config["RestartPolicy"]["Name"] in ("", "no")
