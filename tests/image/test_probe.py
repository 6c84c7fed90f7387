"""GPU probing suite: the probe in the image tells the truth about this host.

Every machine this project is tested on lacks a GPU: the GPU-only cases skip with the reason,
and the permission logic is proven for real with simulated device nodes (a harmless character
device with a chosen group, passed in with --device).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra
from support.dockercli import run_container
from support.images import ImageUnderTest, as_root, helper_image, host_has_gpu

pytestmark = pytest.mark.docker

SIMULATED_GID = 4242
TEST_UID = 4321


def probe(host: testinfra.host.Host, accelerator: str) -> dict[str, Any]:
    result = host.run(f"timeout 120 bakery-probe --expect {accelerator}")
    assert result.rc in (0, 1), result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_probe_reports_the_torch_build(image: ImageUnderTest, host: testinfra.host.Host) -> None:
    report = probe(host, image.variant.accelerator)
    if image.variant.flavour == "slim":
        assert report["torch"]["version"] is None, "a slim image carries no torch of its own"
        return
    v = image.variant
    assert report["torch"]["base"] == v.torch
    if v.accelerator == "rocm":
        assert str(report["torch"]["hip"]).startswith(v.index.version)
    elif v.accelerator == "cuda":
        assert report["torch"]["cuda"] == v.index.version
    else:
        assert report["torch"]["cuda"] is None
        assert report["torch"]["hip"] is None


def test_verdict_on_a_host_without_gpu(image: ImageUnderTest, host: testinfra.host.Host) -> None:
    accelerator = image.variant.accelerator
    if accelerator != "cpu" and not host_has_gpu(accelerator):
        pytest.skip("this host has the GPU: see test_gpu_is_usable")
    if image.variant.flavour == "slim":
        pytest.skip("slim image: torch comes from a mounted host environment (slim suite)")
    report = probe(host, accelerator)
    expected = "ok" if accelerator == "cpu" else "no-gpu"
    assert report["verdict"] == expected, report["hint"]
    if accelerator == "rocm":
        assert "--device /dev/kfd" in report["hint"]
    elif accelerator == "cuda":
        assert "--gpus all" in report["hint"]


@pytest.mark.gpu
@pytest.mark.parametrize("check", ["verdict-ok", "tensor-op", "arch-in-wheel"])
def test_gpu_is_usable(image: ImageUnderTest, check: str) -> None:
    reason = host_has_gpu(image.variant.accelerator)
    if reason:
        pytest.skip(reason)
    from support.images import run_args_for_gpu  # noqa: PLC0415

    script = {
        "verdict-ok": "import json,subprocess;r=json.loads(subprocess.run(['bakery-probe'],capture_output=True,text=True).stdout);assert r['verdict']=='ok',r['hint']",
        "tensor-op": "import torch;x=torch.ones(64,64,device='cuda');assert float((x@x).sum())==64**3",
        "arch-in-wheel": "import torch;p=torch.cuda.get_device_properties(0);a=getattr(p,'gcnArchName','') or f'sm_{p.major}{p.minor}';assert a.split(':')[0] in torch.cuda.get_arch_list(),a",
    }[check]
    run_container(
        *run_args_for_gpu(image.variant.accelerator),
        image.ref,
        "python",
        "-c",
        script,
        timeout=300,
    )


@pytest.fixture(scope="module")
def simulated_node(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Path]:
    """A harmless character device (major/minor of /dev/null), group 4242, mode 0660.

    mknod and chown need root: as_root runs them in a root helper container when the suites
    run as an unprivileged user (GitHub-hosted runners)."""
    folder = tmp_path_factory.mktemp("dev")
    node = folder / "fake-kfd"
    null = os.stat("/dev/null")
    major, minor = os.major(null.st_rdev), os.minor(null.st_rdev)
    script = f"mknod {node.name} c {major} {minor} && chown 0:{SIMULATED_GID} {node.name} && chmod 660 {node.name}"
    as_root(folder, script, helper_image(request.config))
    yield node
    node.unlink()  # the folder is ours: removing the root-owned node in it needs no root


def probe_with_node(image: ImageUnderTest, node: Path, *extra: str) -> dict[str, Any]:
    result = run_container(
        "--network", "none", "--user", f"{TEST_UID}:{TEST_UID}",
        "--device", f"{node}:/dev/kfd", *extra, image.ref, "bakery-probe", "--expect", "rocm",
        check=False,
    )  # fmt: skip
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def kfd(report: dict[str, Any]) -> dict[str, Any]:
    node: dict[str, Any] = next(n for n in report["nodes"] if n["path"] == "/dev/kfd")
    return node


def test_simulated_node_without_group_is_permission_denied(
    image: ImageUnderTest, simulated_node: Path
) -> None:
    report = probe_with_node(image, simulated_node)
    node = kfd(report)
    assert node["exists"]
    assert node["char_device"]
    assert node["openable"] is False
    assert node["gid"] == SIMULATED_GID
    denied = [p for p in report["problems"] if p["verdict"] == "permission-denied"]
    assert denied, report["problems"]
    assert f"--group-add {SIMULATED_GID}" in denied[0]["hint"]


def test_simulated_node_with_numeric_group_opens(
    image: ImageUnderTest, simulated_node: Path
) -> None:
    report = probe_with_node(image, simulated_node, "--group-add", str(SIMULATED_GID))
    node = kfd(report)
    assert node["openable"] is True
    assert node["via"] == f"group {SIMULATED_GID}"
    assert not [p for p in report["problems"] if p["verdict"] == "permission-denied"]
