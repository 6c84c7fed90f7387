"""Slim runs without Docker: reading a host environment, the guards, glibc, devices, compose.

Host environments here are small stand-ins written by `make_env` (support.slim_env: a pyvenv.cfg, dist-info
folders, torch/version.py) — the layout bakery reads; nothing in them is ever executed. The real
environments (a venv with torch, the image) are in tests/slim.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs installed (types-PyYAML is not a dependency)
from support.slim_env import CUDA_SLIM, make_env, plan, write_dist

from bakery import cli, engine, slim
from bakery.devbox import GpuAccess
from bakery.errors import EXIT_GUARD, EXIT_USAGE, BakeryError, GuardError, UsageError
from bakery.matrix import Variant, load_matrix
from bakery.slim import compose as slim_compose
from bakery.slim import glibc as slim_glibc

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = {v.id: v for v in load_matrix(ROOT / "matrix.toml").variants}
CPU_SLIM = VARIANTS["2.13.0-cpu-py3.11-slim"]
ROCM_SLIM = VARIANTS["2.9.1-rocm6.3-py3.12-slim"]


def problems_for(
    tmp_path: Path,
    v: Variant,
    python: str = "3.11",
    torch: str | None = "2.13.0+cpu",
    cuda: str | None = None,
    torchvision: str | None = None,
) -> list[str]:
    root = make_env(tmp_path / "env", python, torch, cuda=cuda, torchvision=torchvision)
    return slim.env_problems(slim.inspect_host_env(root), v)


# ---------------------------------------------------------------------------------------------
# Reading the environment


def test_reads_a_venv(tmp_path: Path) -> None:
    env = slim.inspect_host_env(make_env(tmp_path / "env", cuda=None))
    assert env.python == "3.11"
    assert env.python_source == "pyvenv.cfg version = 3.11.7"
    assert env.torch is not None
    assert (env.torch.dist.version, env.torch.cuda, env.torch.hip) == ("2.13.0+cpu", None, None)
    assert env.torch.python_tags == ("cp311",)
    assert env.torchvision is None
    assert env.container_site_packages == "/opt/host-env/lib/python3.11/site-packages"


def test_reads_a_conda_layout_without_pyvenv_cfg(tmp_path: Path) -> None:
    env = slim.inspect_host_env(make_env(tmp_path / "env", python="3.10", pyvenv=False))
    assert (env.python, env.python_source) == ("3.10", "lib/python3.10/site-packages")


def test_reads_uv_version_info(tmp_path: Path) -> None:
    root = make_env(tmp_path / "env", python="3.12")
    (root / "pyvenv.cfg").write_text("home = /x\nimplementation = CPython\nversion_info = 3.12.1\n")
    assert slim.env_python(root) == ("3.12", "pyvenv.cfg version_info = 3.12.1")


def test_reads_torch_build_from_version_py(tmp_path: Path) -> None:
    root = make_env(tmp_path / "env", torch="2.9.1+rocm6.3", hip="6.3.42131-fa1d09cbd")
    env = slim.inspect_host_env(root)
    assert env.torch is not None
    assert (env.torch.cuda, env.torch.hip) == (None, "6.3.42131-fa1d09cbd")


@pytest.mark.parametrize(
    ("scenario", "expected", "error"),
    [
        # A path that is not a folder is a command-line mistake: usage code, option named.
        pytest.param("missing", "--host-env '", UsageError, id="missing-path"),
        pytest.param("file", "not a readable folder", UsageError, id="a-file"),
        pytest.param("no-python", "cannot tell which Python", GuardError, id="no-python-layout"),
        pytest.param(
            "two-pythons", "several lib/python3.*/site-packages", GuardError, id="two-pythons"
        ),
        pytest.param(
            "no-site", "has no readable lib/python3.11/site-packages", GuardError, id="no-site"
        ),
    ],
)
def test_unusable_paths_are_refused(
    tmp_path: Path, scenario: str, expected: str, error: type[BakeryError]
) -> None:
    root = tmp_path / "env"
    if scenario == "file":
        root.write_text("")
    elif scenario == "no-python":
        root.mkdir()
    elif scenario == "two-pythons":
        for version in ("3.10", "3.11"):
            (root / "lib" / f"python{version}" / "site-packages").mkdir(parents=True)
    elif scenario == "no-site":
        root.mkdir()
        (root / "pyvenv.cfg").write_text("version = 3.11.7\n")
    with pytest.raises(error) as refused:
        slim.inspect_host_env(root)
    assert type(refused.value) is error
    assert expected in refused.value.render()


# ---------------------------------------------------------------------------------------------
# Guards


def test_matching_cpu_env_has_no_problems(tmp_path: Path) -> None:
    assert problems_for(tmp_path, CPU_SLIM) == []


def test_python_mismatch_is_a_problem(tmp_path: Path) -> None:
    (problem,) = problems_for(tmp_path, CPU_SLIM, python="3.12")
    assert "its Python is 3.12" in problem
    assert "the image's is 3.11" in problem


def test_missing_torch_is_a_problem(tmp_path: Path) -> None:
    (problem,) = problems_for(tmp_path, CPU_SLIM, torch=None)
    assert "it has no torch" in problem


def test_torch_wheel_for_another_python_is_a_problem(tmp_path: Path) -> None:
    """pyvenv.cfg says 3.11, but torch's WHEEL tag says cp312: the env's own files disagree."""
    root = make_env(tmp_path / "env", python="3.11")
    wheel = next(root.glob("lib/python3.11/site-packages/torch-*.dist-info")) / "WHEEL"
    wheel.write_text(wheel.read_text().replace("cp311-cp311", "cp312-cp312"))
    (problem,) = slim.env_problems(slim.inspect_host_env(root), CPU_SLIM)
    assert "built for cp312, not cp311" in problem


@pytest.mark.parametrize(
    ("variant", "version", "cuda", "hip", "refused"),
    [
        pytest.param(ROCM_SLIM, "2.9.1+rocm6.3", None, "6.3.4", False, id="rocm-rocm6.3"),
        pytest.param(
            ROCM_SLIM, "2.4.0+rocm6.3.4.git7cecbf6d", None, "6.3", False, id="rocm-amd-wheel"
        ),
        pytest.param(ROCM_SLIM, "2.9.1+rocm6.4", None, "6.4", True, id="rocm-rocm6.4"),
        pytest.param(ROCM_SLIM, "2.9.1+rocm6.30", None, "6.30", True, id="rocm-rocm6.30"),
        pytest.param(ROCM_SLIM, "2.13.0+cpu", None, None, True, id="rocm-cpu"),
        pytest.param(ROCM_SLIM, "2.9.1+cu128", "12.8", None, True, id="rocm-cuda"),
        pytest.param(CUDA_SLIM, "2.9.1+cu128", "12.8", None, False, id="cuda-cu128"),
        pytest.param(CUDA_SLIM, "2.9.1", "12.8", None, False, id="cuda-pypi"),
        pytest.param(CUDA_SLIM, "2.13.0+cpu", None, None, True, id="cuda-cpu"),
        pytest.param(CUDA_SLIM, "2.9.1+rocm6.3", None, "6.3", True, id="cuda-rocm"),
        pytest.param(CPU_SLIM, "2.9.1+cu128", "12.8", None, False, id="cpu-cuda"),
        pytest.param(CPU_SLIM, "2.13.0+cpu", None, None, False, id="cpu-cpu"),
    ],
)
def test_torch_build_must_match_the_accelerator(
    variant: Variant, version: str, cuda: str | None, hip: str | None, refused: bool
) -> None:
    assert bool(slim.wrong_build(version, cuda, hip, variant)) is refused


def test_wrong_build_problem_names_the_index(tmp_path: Path) -> None:
    (problem,) = problems_for(tmp_path, CUDA_SLIM, torchvision="0.28.0+cpu")
    assert "torch 2.13.0+cpu is a CPU-only build, but the cuda image needs a CUDA build" in problem
    assert "--index-url https://download.pytorch.org/whl/cu128" in problem
    assert "or run it with --target cpu" in problem


@pytest.mark.parametrize(
    ("torchvision", "expected"),
    [
        pytest.param("0.24.1+cu128", "", id="paired"),
        pytest.param(None, "it has no torchvision", id="missing"),
        pytest.param("0.24.1+cpu", "are different builds", id="other-build"),
        pytest.param("0.23.0+cu128", "does not pair with torch 2.9.1+cu128", id="other-release"),
    ],
)
def test_torchvision_must_pair_with_torch(
    tmp_path: Path, torchvision: str | None, expected: str
) -> None:
    problems = problems_for(
        tmp_path, CUDA_SLIM, torch="2.9.1+cu128", cuda="12.8", torchvision=torchvision
    )
    assert [p for p in problems if expected in p] == problems
    assert len(problems) == (1 if expected else 0), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    """A cpu env for Python 3.11 in a rocm image for 3.12: Python, build and torchvision."""
    problems = problems_for(tmp_path, ROCM_SLIM)
    assert len(problems) == 3, problems
    error = slim.refuse(slim.inspect_host_env(tmp_path / "env"), "img", problems)
    assert error.render().count("\n  - ") == 3
    assert "nothing was started" in error.render()


# ---------------------------------------------------------------------------------------------
# glibc


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("manylinux_2_28_x86_64", (2, 28)),
        ("manylinux_2_17_aarch64", (2, 17)),
        ("manylinux2014_x86_64", (2, 17)),
        ("manylinux2010_x86_64", (2, 12)),
        ("manylinux1_x86_64", (2, 5)),
        ("any", ()),
        ("linux_x86_64", None),
        ("musllinux_1_2_x86_64", None),
    ],
)
def test_platform_tag_to_glibc(platform: str, expected: tuple[int, ...] | None) -> None:
    assert slim.platform_glibc(platform) == expected


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        pytest.param(["cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64"], (2, 17), id="expanded"),
        pytest.param(["cp311-cp311-manylinux_2_28_x86_64.manylinux_2_17_x86_64"], (2, 17), id="compressed"),
        pytest.param(["py3-none-any"], (), id="pure"),
        pytest.param(["cp311-cp311-linux_x86_64"], None, id="linux-tag"),
        pytest.param([], None, id="no-wheel-file"),
    ],
)  # fmt: skip
def test_wheel_tags_to_glibc(tags: list[str], expected: tuple[int, ...] | None) -> None:
    assert slim.wheel_glibc(tags) == expected


ELF_BYTES = b"\x7fELF\x02\x01\x01" + b"\0" * 40


def so_needing(*versions: str) -> bytes:
    """Stand-in shared object bytes naming these symbol versions in its string table."""
    return ELF_BYTES + b"".join(v.encode() + b"\0" for v in versions) + b"\0" * 40


def test_highest_glibc_symbol(tmp_path: Path) -> None:
    path = tmp_path / "ext.so"
    path.write_bytes(so_needing("GLIBC_2.2.5", "GLIBC_2.34", "GLIBCXX_3.4.30", "GLIBC_PRIVATE"))
    assert slim.highest_glibc_symbol(path) == (2, 34)


def test_no_glibc_symbol(tmp_path: Path) -> None:
    path = tmp_path / "ext.so"
    path.write_bytes(so_needing("GLIBCXX_3.4.30", "GOMP_4.0"))
    assert slim.highest_glibc_symbol(path) is None


def test_symbol_cut_by_a_chunk_boundary_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slim_glibc, "_SCAN_CHUNK", 64)
    path = tmp_path / "ext.so"
    data = b"x" * 60 + b"GLIBC_2.38\0" + b"y" * 200
    path.write_bytes(data)
    assert slim.highest_glibc_symbol(path) == (2, 38)


def test_glibc_needs_prefer_wheel_tags_then_read_symbols(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    # A manylinux_2_28 wheel: its tag is the promise; its (odd) symbol bytes are not read.
    write_dist(
        site,
        "tagged",
        "1.0",
        ["cp311-cp311-manylinux_2_28_x86_64"],
        {"tagged/_ext.cpython-311-x86_64-linux-gnu.so": so_needing("GLIBC_2.99")},
    )
    # A linux_x86_64 wheel (no promise): its shared objects are read.
    write_dist(
        site,
        "local-build",
        "1.0",
        ["cp311-cp311-linux_x86_64"],
        {"local_build/_c.so": so_needing("GLIBC_2.17", "GLIBC_2.38")},
    )
    write_dist(site, "pure", "1.0")
    orphan = site / "orphan" / "libx.so.1"  # no dist-info at all (conda, copied files)
    orphan.parent.mkdir()
    orphan.write_bytes(so_needing("GLIBC_2.14"))
    (site / "orphan" / "libx.so").symlink_to("libx.so.1")  # read once, not twice
    needs = sorted(slim.glibc_needs(site), key=lambda n: n.version)
    assert [(n.version, n.source) for n in needs] == [
        ((2, 14), "orphan/libx.so.1 (GLIBC_2.14)"),
        ((2, 28), "tagged-1.0 (manylinux_2_28)"),
        ((2, 38), "local_build/_c.so (GLIBC_2.38)"),
    ]  # fmt: skip
    (problem,) = slim.glibc_problems(needs, (2, 36))
    assert "needs glibc 2.38 but the image has 2.36" in problem
    assert "local_build/_c.so" in problem
    assert slim.glibc_problems(needs, (2, 38)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("glibc 2.36\n", (2, 36)),
        ("ldd (Debian GLIBC 2.36-9+deb12u4) 2.36", (2, 36)),
        ("2.41", (2, 41)),
        ("", None),
    ],
)
def test_parse_glibc_version(text: str, expected: tuple[int, ...] | None) -> None:
    assert slim.parse_glibc_version(text) == expected


# ---------------------------------------------------------------------------------------------
# Choosing the variant, the user, the devices


def slim_variants(target: str) -> list[Variant]:
    return [v for v in VARIANTS.values() if v.target == target and v.flavour == "slim"]


@pytest.mark.parametrize(
    ("python", "torch", "expected"),
    [
        pytest.param("3.11", "2.8.0+cu128", "2.8.0-cuda12.8-py3.11-slim", id="exact"),
        pytest.param("3.11", "2.10.0+cu128", "2.9.1-cuda12.8-py3.11-slim", id="newest-for-python"),
        pytest.param(
            "3.13", "2.9.1+cu128", "2.9.1-cuda12.8-py3.12-slim", id="no-python-guards-say"
        ),
        pytest.param("3.11", None, "2.9.1-cuda12.8-py3.11-slim", id="no-torch"),
    ],
)
def test_choose_variant_by_the_env(
    tmp_path: Path, python: str, torch: str | None, expected: str
) -> None:
    env = slim.inspect_host_env(make_env(tmp_path / "env", python=python, torch=torch, cuda="12.8"))
    assert slim.choose_variant(slim_variants("cuda"), env).id == expected


def test_choose_variant_refuses_two_targets(tmp_path: Path) -> None:
    env = slim.inspect_host_env(make_env(tmp_path / "env"))
    with pytest.raises(UsageError) as refused:
        slim.choose_variant([CPU_SLIM, CUDA_SLIM], env)
    assert "narrow it to one with --target" in refused.value.render()


def test_container_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUDO_UID", raising=False)
    assert slim.user_text(slim.container_user("4321:4322")) == "4321:4322"
    assert slim.user_text(slim.container_user(None)) == f"{os.getuid()}:{os.getgid()}"
    with pytest.raises(UsageError):
        slim.container_user("trainer")


def test_unreadable_for(tmp_path: Path) -> None:
    open_dir, closed_dir, group_dir = tmp_path / "open", tmp_path / "closed", tmp_path / "group"
    for path, mode in ((open_dir, 0o755), (closed_dir, 0o700), (group_dir, 0o750)):
        path.mkdir()
        path.chmod(mode)
    owner_gid = group_dir.stat().st_gid
    paths = [open_dir, closed_dir, group_dir]
    other = os.getuid() + 4321
    assert slim.unreadable_for(paths, other, [owner_gid + 1]) == [closed_dir, group_dir]
    assert slim.unreadable_for(paths, other, [owner_gid]) == [closed_dir]
    assert slim.unreadable_for(paths, 0, []) == []


@pytest.mark.parametrize("variant", [ROCM_SLIM, CUDA_SLIM], ids=["rocm", "cuda"])
def test_missing_device_nodes_are_refused(tmp_path: Path, variant: Variant) -> None:
    """The flags themselves are devbox.gpu_access's (tested there); a GPU-less host is refused."""
    with pytest.raises(GuardError) as refused:
        slim.device_access(variant, tmp_path)
    assert f"the {variant.target} image could not reach a GPU" in refused.value.render()
    assert "or use --target cpu" in refused.value.render()


def test_cpu_needs_no_devices(tmp_path: Path) -> None:
    assert slim.device_access(CPU_SLIM, tmp_path) == GpuAccess("cpu")


# ---------------------------------------------------------------------------------------------
# compose.yaml


def test_compose_document_for_cpu(tmp_path: Path) -> None:
    doc = slim.compose_document(plan(tmp_path, CPU_SLIM, GpuAccess("cpu")))
    assert doc["name"] == "bakery-2-13-0-cpu-py3-11-slim"
    service = doc["services"]["train"]
    assert service["image"] == "repo:2.13.0-cpu-py3.11-slim"
    assert service["user"] == "4321:4322"
    assert service["environment"] == {
        "HOME": "/tmp",
        "PYTHONPATH": "/opt/host-env/lib/python3.11/site-packages",
    }
    host_env, workspace = service["volumes"]
    assert (host_env["source"], host_env["target"], host_env["read_only"]) == (
        str(tmp_path / "env"),
        "/opt/host-env",
        True,
    )
    assert (workspace["target"], workspace["read_only"]) == ("/workspace", False)
    assert service["command"] == ["python", "-m", "stylelora", "smoke"]
    assert not {"devices", "group_add", "deploy"} & set(service)


def test_compose_document_for_rocm_and_cuda(tmp_path: Path) -> None:
    rocm = GpuAccess("rocm", ("/dev/kfd:/dev/kfd",), ("44",), None, ("seccomp=unconfined",))
    service = slim.compose_document(plan(tmp_path, ROCM_SLIM, rocm))["services"]["train"]
    assert (service["devices"], service["group_add"]) == (["/dev/kfd:/dev/kfd"], ["44"])
    assert service["security_opt"] == ["seccomp=unconfined"]
    service = slim.compose_document(plan(tmp_path, CUDA_SLIM, GpuAccess("cuda", gpus="all")))[
        "services"
    ]["train"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}


def test_compose_yaml_reads_back_as_the_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written with a YAML library: keys and values with ': ', quotes or newlines stay data."""
    document = {
        "name": "x",
        "services": {"train": {"environment": {"D: x": 'y: "z"\n#', "E": "- f"}, "empty": []}},
    }
    monkeypatch.setattr(slim_compose, "compose_document", lambda plan: document)
    text = slim.render_compose(plan(tmp_path, CPU_SLIM, GpuAccess("cpu")), Path("c\nx: 1.yaml"))
    assert yaml.safe_load(text) == document


def test_compose_never_replaces_a_file_unless_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[Path] = []

    def compose_config(path: Path) -> dict[str, object]:
        checked.append(path)
        return {}

    monkeypatch.setattr(engine, "compose_config", compose_config)
    target = tmp_path / "compose.yaml"
    target.write_text("mine\n", encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        slim.write_checked(target, "services: {}\n")
    assert caught.value.render() == (
        f"{target} already exists — compose never replaces a file without being asked — "
        "pass --force to replace it, or --output another file"
    )
    assert target.read_text(encoding="utf-8") == "mine\n"
    assert checked == []
    slim.write_checked(target, "services: {}\n", force=True)
    assert target.read_text(encoding="utf-8") == "services: {}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["compose.yaml"]


def test_compose_refuses_an_existing_file_before_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(slim, "check_image", lambda plan: pytest.fail("docker was asked"))
    target = tmp_path / "compose.yaml"
    target.write_text("mine\n", encoding="utf-8")
    argv = [
        "compose", "--target", "cpu", "--matrix", str(ROOT / "matrix.toml"),
        "--workspace", str(tmp_path), "--output", str(target),
    ]  # fmt: skip
    assert cli.main(argv) == EXIT_USAGE
    assert "already exists" in capsys.readouterr().err
    assert target.read_text(encoding="utf-8") == "mine\n"


# ---------------------------------------------------------------------------------------------
# The command line (refusals need no Docker: they come before any docker call)


def test_slim_needs_host_env() -> None:
    assert (
        cli.main(["run", "--slim", "--target", "cpu", "--matrix", str(ROOT / "matrix.toml")])
        == EXIT_USAGE
    )


def test_host_env_needs_slim(tmp_path: Path) -> None:
    args = ["run", "--host-env", str(make_env(tmp_path / "env")), "--target", "cpu"]
    assert cli.main([*args, "--matrix", str(ROOT / "matrix.toml")]) == EXIT_USAGE


def test_cli_refuses_a_stand_in_env_for_another_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Stand-in for a Python 3.12 environment (the real one is in tests/slim)."""
    root = make_env(tmp_path / "env", python="3.12")
    argv = ["run", "--slim", "--host-env", str(root), "--target", "cpu", "--user", "4321:4322"]
    assert cli.main([*argv, "--matrix", str(ROOT / "matrix.toml")]) == EXIT_GUARD
    assert "its Python is 3.12" in capsys.readouterr().err


def test_cli_refuses_an_env_the_container_user_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_env(tmp_path / "env")
    root.chmod(0o700)
    uid = os.getuid() + 4321
    argv = ["run", "--slim", "--host-env", str(root), "--target", "cpu", "--user", f"{uid}:{uid}"]
    assert cli.main([*argv, "--matrix", str(ROOT / "matrix.toml")]) == EXIT_GUARD
    assert f"the container user {uid}:{uid} cannot read {root}" in capsys.readouterr().err


def test_env_without_the_stack_is_refused_naming_the_missing_packages(tmp_path: Path) -> None:
    v = VARIANTS["2.13.0-cpu-py3.11-slim"]
    root = make_env(tmp_path / "env", stack=False)
    site = root / "lib" / "python3.11" / "site-packages"
    write_dist(site, "diffusers", "0.42.1")
    problems = slim.env_problems(slim.inspect_host_env(root), v)
    (problem,) = problems
    names = [n for n, _ in v.stack if n != "diffusers"]
    assert f"lacks the variant's stack package(s) {', '.join(names)}" in problem
    assert "diffusers," not in problem
    assert (
        f"pip install {' '.join(f'{n}=={ver}' for n, ver in v.stack if n != 'diffusers')}"
        in problem
    )


def test_env_with_the_stack_passes(tmp_path: Path) -> None:
    v = VARIANTS["2.13.0-cpu-py3.11-slim"]
    assert slim.env_problems(slim.inspect_host_env(make_env(tmp_path / "env")), v) == []
