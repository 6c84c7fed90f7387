"""--env and --gpus where containers start; slim run/compose get up's shared-memory settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakery.cli import main
from bakery.devbox import GpuAccess
from bakery.errors import UsageError
from bakery.gpuselect import parse_env_flags, select_gpus

ROOT = Path(__file__).resolve().parents[2]
MATRIX = str(ROOT / "matrix.toml")

GOOD_ENV = [
    (["HSA_OVERRIDE_GFX_VERSION=11.0.0"], {"HSA_OVERRIDE_GFX_VERSION": "11.0.0"}),
    (["A=1", "B=x=y", "A=2"], {"A": "2", "B": "x=y"}),
    (["EMPTY="], {"EMPTY": ""}),
]
BAD_ENV = [
    ("no-equals", "HSA_OVERRIDE_GFX_VERSION", "is not KEY=VALUE"),
    ("digit-first", "1A=1", "is not KEY=VALUE"),
    ("non-ascii", "\u00c4B=1", "is not KEY=VALUE"),
    ("space", "A B=1", "is not KEY=VALUE"),
    ("newline", "A=1\nB=2", "holds a newline or NUL byte"),
]


@pytest.mark.parametrize(("values", "expected"), GOOD_ENV)
def test_env_flags(values: list[str], expected: dict[str, str]) -> None:
    assert parse_env_flags(values) == expected


@pytest.mark.parametrize(
    ("value", "message"), [b[1:] for b in BAD_ENV], ids=[b[0] for b in BAD_ENV]
)
def test_bad_env_flags_are_refused(value: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_env_flags([value])
    assert message in info.value.render()
    assert (
        repr(value) in info.value.render() or repr(value.partition("=")[2]) in info.value.render()
    )


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    (tmp_path / "dri").mkdir()
    (tmp_path / "kfd").write_text("")
    for n in (128, 129, 130):
        (tmp_path / "dri" / f"renderD{n}").write_text("")
    return tmp_path


def rocm(dev: Path) -> GpuAccess:
    devices = (f"{dev}/kfd:/dev/kfd", f"{dev}/dri:/dev/dri")
    return GpuAccess("rocm", devices, ("109",), None, ("seccomp=unconfined",))


def test_rocm_selection_passes_only_those_render_nodes(dev: Path) -> None:
    access, env = select_gpus(rocm(dev), "0,2", dev)
    assert access.devices == (
        f"{dev}/kfd:/dev/kfd",
        f"{dev}/dri/renderD128:/dev/dri/renderD128",
        f"{dev}/dri/renderD130:/dev/dri/renderD130",
    )
    assert env == {"HIP_VISIBLE_DEVICES": "0,1"}
    assert access.group_add == ("109",)
    assert access.security_options == ("seccomp=unconfined",)


def test_rocm_selection_of_a_missing_gpu_names_what_exists(dev: Path) -> None:
    with pytest.raises(UsageError) as info:
        select_gpus(rocm(dev), "3", dev)
    text = info.value.render()
    assert f"no {dev}/dri/renderD131" in text
    assert "renderD128, renderD129, renderD130" in text


@pytest.mark.parametrize("spec", ["0;rm -rf /", "a,b", "0,0", "-1"])
def test_rocm_selection_refuses_bad_lists(dev: Path, spec: str) -> None:
    with pytest.raises(UsageError):
        select_gpus(rocm(dev), spec, dev)


def test_nvidia_selection_uses_docker_device_syntax() -> None:
    access, env = select_gpus(GpuAccess("cuda", gpus="all"), "0,1")
    assert access.gpus == '"device=0,1"'
    assert env == {}
    with pytest.raises(UsageError):
        select_gpus(GpuAccess("cuda", gpus="all"), '0,1"')


def test_gpus_on_cpu_or_gpu_less_host_is_refused() -> None:
    with pytest.raises(UsageError, match="CPU image"):
        select_gpus(GpuAccess("cpu"), "0")
    with pytest.raises(UsageError, match="no /dev/kfd"):
        select_gpus(GpuAccess("rocm", missing="no /dev/kfd on this host"), "0")
    assert select_gpus(GpuAccess("cpu"), None) == (GpuAccess("cpu"), {})


def test_run_passes_env_and_the_shared_memory_of_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "run", "--matrix", MATRIX, "--variant", "2.13.0-cpu-py3.11", "--workspace", str(tmp_path),
        "--env", "HSA_OVERRIDE_GFX_VERSION=11.0.0", "--dry-run", "--", "true",
    ])  # fmt: skip
    err = capsys.readouterr().err.replace("\n", " ")
    assert code == 0, err
    assert "--env HSA_OVERRIDE_GFX_VERSION=11.0.0" in err
    assert "--shm-size 8g" in err


def test_run_with_ipc_host_drops_shm_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "run", "--matrix", MATRIX, "--variant", "2.13.0-cpu-py3.11", "--workspace", str(tmp_path),
        "--ipc-host", "--dry-run", "--", "true",
    ])  # fmt: skip
    err = capsys.readouterr().err.replace("\n", " ")
    assert code == 0, err
    assert "--ipc host" in err
    assert "--shm-size" not in err


def test_compose_gets_shm_env_and_device_ids(tmp_path: Path) -> None:
    from dataclasses import replace  # noqa: PLC0415

    from support.slim_env import CUDA_SLIM, plan  # noqa: PLC0415 - reuse the slim plan helper

    from bakery import slim  # noqa: PLC0415

    base = plan(tmp_path, CUDA_SLIM, GpuAccess("cuda", gpus='"device=0,1"'))
    service = slim.compose_document(replace(base, extra_env={"A": "1"}))["services"]["train"]
    assert service["shm_size"] == "8g"
    assert "ipc" not in service
    assert service["environment"]["A"] == "1"
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "capabilities": ["gpu"], "device_ids": ["0", "1"]}
    service = slim.compose_document(replace(base, ipc_host=True))["services"]["train"]
    assert service["ipc"] == "host"
    assert "shm_size" not in service
