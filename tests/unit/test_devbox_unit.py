"""bakery.devbox without Docker: GPU flags, accounts, mounts, exit codes, jobs, the CLI shape."""

from __future__ import annotations

import argparse
import io
import os
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from bakery import devbox, engine
from bakery.cli import build_parser
from bakery.cli import devbox as devbox_cli
from bakery.cli.common import after_dashes
from bakery.errors import BakeryError, UsageError
from bakery.matrix import Variant, load_matrix

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = load_matrix(ROOT / "matrix.toml").variants
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")

IMAGE_USERS = "root:x:0:0:root:/root:/bin/bash\ntrainer:x:1000:1000::/home/trainer:/bin/bash\n"
IMAGE_GROUPS = "root:x:0:\nvideo:x:44:\ntrainer:x:1000:\n"


def node(path: Path, gid: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o660 | stat.S_IFCHR, os.stat("/dev/null").st_rdev)
    os.chown(path, 0, gid)
    return path


# --- GPU flags -------------------------------------------------------------------------------


def test_cpu_variants_get_no_gpu_flags(tmp_path: Path) -> None:
    assert devbox.gpu_run_args("cpu", tmp_path) == []
    assert devbox.gpu_access("cpu", tmp_path).missing == ""


@pytest.mark.parametrize(
    ("accelerator", "reason"),
    [("rocm", "no AMD GPU"), ("cuda", "no NVIDIA GPU")],
    ids=["rocm-no-kfd", "cuda-no-nvidiactl"],
)
def test_gpu_flags_without_the_nodes_say_why(tmp_path: Path, accelerator: str, reason: str) -> None:
    access = devbox.gpu_access(accelerator, tmp_path)
    assert access.run_args() == []
    assert reason in access.missing


@needs_root
def test_rocm_flags_carry_numeric_deduplicated_gids(tmp_path: Path) -> None:
    node(tmp_path / "kfd", 4242)
    node(tmp_path / "dri" / "card0", 4242)
    node(tmp_path / "dri" / "renderD128", 109)
    node(tmp_path / "dri" / "renderD129", 0)  # root's group is never added
    (tmp_path / "dri" / "by-path").mkdir()
    assert devbox.gpu_run_args("rocm", tmp_path) == [
        "--device", f"{tmp_path}/kfd:/dev/kfd",
        "--device", f"{tmp_path}/dri:/dev/dri",
        "--security-opt", "seccomp=unconfined",
        "--group-add", "109",
        "--group-add", "4242",
    ]  # fmt: skip


@needs_root
def test_cuda_flags_use_gpus_all_and_restricted_node_groups(tmp_path: Path) -> None:
    node(tmp_path / "nvidiactl", 0)
    node(tmp_path / "nvidia0", 44)
    node(tmp_path / "nvidia-uvm", 44)
    assert devbox.gpu_run_args("cuda", tmp_path) == ["--gpus", "all", "--group-add", "44"]


# --- accounts --------------------------------------------------------------------------------


def user(uid: int, name: str = "alice") -> devbox.HostUser:
    return devbox.HostUser(uid, uid, name, None)


def test_a_new_uid_gets_a_passwd_entry_group_and_home() -> None:
    account = devbox.plan_account(IMAGE_USERS, IMAGE_GROUPS, user(4321))
    assert account.passwd.endswith(
        "alice:x:4321:4321:bakery dev container user:/home/alice:/bin/bash\n"
    )
    assert account.group.endswith("alice:x:4321:\n")
    assert (account.login, account.home, account.changed, account.create_home) == (
        "alice",
        "/home/alice",
        True,
        True,
    )


def test_the_image_user_with_the_same_uid_is_kept_as_it_is() -> None:
    account = devbox.plan_account(IMAGE_USERS, IMAGE_GROUPS, user(1000, "bob"))
    assert (account.login, account.home, account.changed, account.create_home) == (
        "trainer",
        "/home/trainer",
        False,
        False,
    )


@pytest.mark.parametrize(
    ("host_name", "login"),
    [("trainer", "u4321"), ("Root", "u4321"), ("42x", "u4321"), ("Dr.Who", "drwho")],
    ids=["taken", "taken-case", "bad-start", "cleaned"],
)
def test_login_names_never_collide_and_stay_valid(host_name: str, login: str) -> None:
    assert devbox.plan_account(IMAGE_USERS, IMAGE_GROUPS, user(4321, host_name)).login == login


def test_device_groups_get_names_without_touching_existing_gids() -> None:
    extra = {44: "video", 109: "render", 4242: "video"}
    account = devbox.plan_account(IMAGE_USERS, IMAGE_GROUPS, user(4321), extra)
    added = account.group.removeprefix(IMAGE_GROUPS).splitlines()
    assert added == ["alice:x:4321:", "render:x:109:", "g4242:x:4242:"]


def test_accounts_cope_with_files_without_a_final_newline() -> None:
    account = devbox.plan_account(IMAGE_USERS.rstrip("\n"), IMAGE_GROUPS.rstrip("\n"), user(4321))
    assert "/bin/bash\nalice:x:4321" in account.passwd
    assert "trainer:x:1000:\nalice:x:4321:" in account.group


@pytest.mark.parametrize("text", ["alice", "1000", "1000:", ":1000", "a:b", "1000:1000:1"], ids=str)
def test_user_must_be_numeric_uid_gid(text: str) -> None:
    with pytest.raises(UsageError, match="UID:GID"):
        devbox.parse_user(text)


def test_sudo_caller_is_the_invoking_user() -> None:
    found = devbox.invoking_user({"SUDO_UID": "4321", "SUDO_GID": "4322"})
    expected = (4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    assert (found.uid, found.gid) == expected


# --- mounts, names, the container spec -------------------------------------------------------


def test_data_folders_are_read_only_unless_rw(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    mounts = devbox.parse_data([str(tmp_path / "a"), f"{tmp_path / 'b'}:rw"])
    assert [(m.container, m.mode) for m in mounts] == [("/data/a", "ro"), ("/data/b", "rw")]


@pytest.mark.parametrize(
    ("layout", "values", "message"),
    [
        ([], ["missing"], "is not a directory"),
        (["x/d", "y/d"], ["x/d", "y/d:ro"], "both be mounted at /data/d"),
    ],
    ids=["missing", "same-name"],
)
def test_bad_data_folders_are_refused(
    tmp_path: Path, layout: list[str], values: list[str], message: str
) -> None:
    for folder in layout:
        (tmp_path / folder).mkdir(parents=True)
    with pytest.raises(UsageError, match=message):
        devbox.parse_data([str(tmp_path / v) for v in values])


@pytest.mark.parametrize(
    ("name", "workspace", "expected"),
    [
        ("alice", "/srv/sd-xl", "alice-sd-xl"),
        ("u1000", "/", "u1000-root"),
        ("a b", "/p/.x", "a-b-.x"),
    ],
    ids=["plain", "root", "spaces"],
)
def test_default_names_are_valid_container_names(name: str, workspace: str, expected: str) -> None:
    assert devbox.default_name(user(1000, name), Path(workspace)) == expected


def variant(accelerator: str = "cpu", flavour: str = "full") -> Variant:
    return next(v for v in VARIANTS if v.accelerator == accelerator and v.flavour == flavour)


def options(tmp_path: Path, **changes: object) -> devbox.UpOptions:
    base = {
        "name": "alice-proj",
        "variant": variant(),
        "image": "repo/bakery:tag",
        "workspace": tmp_path,
        "user": user(4321),
        "gpu": devbox.gpu_access("cpu", tmp_path),
    }
    return devbox.UpOptions(**{**base, **changes})  # type: ignore[arg-type]


def test_container_spec_mounts_user_labels_and_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    spec = devbox.container_spec(
        options(
            tmp_path,
            pip_cache=tmp_path / "pip",
            hf_home=tmp_path / "hf",
            ca_cert=ca,
            memory="64g",
            env=MappingProxyType({"HF_ENDPOINT": "http://mirror"}),
        )
    )
    assert spec.user == "4321:4321"
    assert spec.command == devbox.KEEPALIVE
    assert spec.volumes == (
        (tmp_path, "/workspace", "rw"),
        (tmp_path / "pip", "/cache/pip", "rw"),
        (tmp_path / "hf", "/cache/huggingface", "rw"),
        (ca, "/etc/bakery/ca-bundle.pem", "ro"),
    )
    assert spec.env["PIP_CERT"] == spec.env["SSL_CERT_FILE"] == "/etc/bakery/ca-bundle.pem"
    assert spec.env["HF_HOME"] == "/cache/huggingface"
    assert spec.env["HF_ENDPOINT"] == "http://mirror"
    assert (spec.shm_size, spec.ipc, spec.memory) == ("8g", None, "64g")
    assert spec.labels["io.bakery.devbox"] == "1"
    assert spec.labels["io.bakery.devbox.workspace"] == str(tmp_path)
    assert spec.labels["io.bakery.devbox.variant"] == variant().id


def test_ipc_host_replaces_shm_size(tmp_path: Path) -> None:
    spec = devbox.container_spec(options(tmp_path, ipc_host=True))
    assert (spec.ipc, spec.shm_size) == ("host", None)


def test_only_known_settings_pass_through() -> None:
    env = {
        "HF_ENDPOINT": "h",
        "https_proxy": "p",
        "HF_TOKEN": "secret",
        "PATH": "/bin",
        "NO_PROXY": "",
    }
    assert devbox.passthrough_env(env) == {"HF_ENDPOINT": "h", "https_proxy": "p"}


def test_choose_variant_prefers_built_full_newest() -> None:
    rocm = [v for v in VARIANTS if v.accelerator == "rocm"]
    built = {f"r:{v.tag}" for v in rocm if v.torch != max(x.torch for x in rocm)}
    chosen, image, note = devbox.choose_variant(rocm, "r", built.__contains__)
    assert chosen.flavour == "full"
    assert f"r:{chosen.tag}" in built
    assert image == f"r:{chosen.tag}"
    assert "using" in note


def test_choose_variant_without_any_built_image_says_what_to_build() -> None:
    with pytest.raises(BakeryError) as caught:
        devbox.choose_variant([variant()], "r", lambda _: False)
    assert caught.value.fix == f"build one first: `python build.py --variant {variant().id}`"


# --- exit codes, jobs, confirmation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "oom", "expected"),
    [
        (0, False, "exited normally"),
        (137, True, "out of memory"),
        (137, False, "killed (SIGKILL)"),
        (139, False, "segmentation fault"),
        (143, False, "docker stop"),
        (127, False, "not found"),
        (134, False, "SIGABRT"),
        (1, False, "the program failed"),
    ],
    ids=["ok", "oom", "killed", "segv", "term", "not-found", "abort", "failed"],
)
def test_exit_codes_are_explained(code: int, oom: bool, expected: str) -> None:
    assert expected in devbox.explain_exit(code, oom)


def test_the_job_wrapper_records_command_output_and_exit_code(tmp_path: Path) -> None:
    command = devbox.job_command("box", "j1", ["sh", "-c", "echo out; echo err >&2; exit 5"])
    folder = tmp_path / ".bakery" / "jobs" / "box"
    command[4] = str(folder)  # the wrapper's folder argument; /workspace/... inside
    subprocess.run(command, check=True, timeout=30)
    assert (folder / "j1.log").read_text(encoding="utf-8") == "out\nerr\n"
    assert (folder / "j1.exit").read_text(encoding="utf-8") == "5\n"
    assert (folder / "j1.cmd").read_text(
        encoding="utf-8"
    ) == "sh -c 'echo out; echo err >&2; exit 5'\n"
    assert (tmp_path / ".bakery" / ".gitignore").read_text(encoding="utf-8") == "*\n"


def info(workspace: Path, running: bool, oom: bool = False) -> engine.ContainerInfo:
    return engine.ContainerInfo(
        name="box", id="c1", image_id="sha256:1", image_ref="r:t",
        status="running" if running else "exited", running=running, exit_code=0,
        oom_killed=oom, error="", started_at=None, finished_at=None,
        labels=MappingProxyType({"io.bakery.devbox": "1", "io.bakery.devbox.workspace": str(workspace)}),
        group_add=(), devices=(), memory=0,
    )  # fmt: skip


def test_jobs_are_exited_running_or_lost(tmp_path: Path) -> None:
    folder = devbox.jobs_dir(tmp_path, "box")
    folder.mkdir(parents=True)
    for job_id in ("1-a", "2-b"):
        (folder / f"{job_id}.cmd").write_text("train\n", encoding="utf-8")
    (folder / "1-a.exit").write_text("137\n", encoding="utf-8")
    jobs = devbox.list_jobs(info(tmp_path, running=True, oom=True))
    assert [(j.id, j.state, j.exit_code) for j in jobs] == [
        ("1-a", "exited", 137),
        ("2-b", "running", None),
    ]
    assert "out of memory" in jobs[0].explanation
    assert [j.state for j in devbox.list_jobs(info(tmp_path, running=False))] == ["exited", "lost"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("answer", "expected"), [("y\n", True), ("yes\n", True), ("\n", False), ("n\n", False)]
)
def test_confirm_on_a_terminal(answer: str, expected: bool) -> None:
    assert devbox.confirm("replacing x", "Replace x?", False, FakeTerminal(answer)) is expected


def test_confirm_without_a_terminal_needs_yes() -> None:
    assert devbox.confirm("replacing x", "Replace x?", True, io.StringIO("")) is True
    with pytest.raises(UsageError, match="replacing x needs confirmation"):
        devbox.confirm("replacing x", "Replace x?", False, io.StringIO("y\n"))


def test_ages_read_like_uptime() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    ago = {s: (now - timedelta(seconds=s)).isoformat() for s in (5, 125, 7300, 200000)}
    assert [devbox.human_age(ago[s], now) for s in sorted(ago)] == ["5s", "2m 5s", "2h 1m", "2d 7h"]
    assert devbox.human_age("") == "—"


# --- command line ----------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_every_devbox_command_is_registered() -> None:
    assert devbox_cli.COMMANDS == ("up", "enter", "status", "job", "logs", "stop")
    for command in devbox_cli.COMMANDS:
        assert parse(command).handler is not None


def test_the_command_after_dashes_reaches_the_handler() -> None:
    args = parse("enter", "--name", "box", "--", "ls", "-la", "--name")
    assert after_dashes(args.command) == ("ls", "-la", "--name")
    assert args.name == "box"


def test_dev_root_is_a_hidden_test_seam(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("up", "--help")
    assert "--dev-root" not in capsys.readouterr().out
    assert parse("up", "--dev-root", "/tmp/x").dev_root == Path("/tmp/x")


@needs_root
def test_a_workspace_the_container_user_cannot_write_is_pointed_out(tmp_path: Path) -> None:
    os.chown(tmp_path, 4321, 4321)
    tmp_path.chmod(0o755)
    assert devbox.workspace_note(tmp_path, user(4321)) == ""
    assert "belongs to uid 4321" in devbox.workspace_note(tmp_path, user(1234))
    tmp_path.chmod(0o777)
    assert devbox.workspace_note(tmp_path, user(1234)) == ""
