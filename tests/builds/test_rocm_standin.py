"""The rocm build path, proven up to pip with a STAND-IN accelerator index on loopback.

The real `+rocm6.3` wheels exist only on download.pytorch.org, unreachable here. So a stand-in
index (tests/builds/standin_index.py: tiny pure-Python wheels built at test time, served from a
`http.server` thread on 127.0.0.1) plays both download.pytorch.org/whl/rocm6.3 and PyPI, and the
real bakery CLI builds the real Dockerfile.in for a rocm variant against it
(`--torch-index-url` points the torch step at the stand-in, `--network host` lets RUN steps
reach loopback). What this proves, with real pip, BuildKit and bakery-probe:

* torch and torchvision come only from the accelerator index, even though a later stack package
  (`standin-needs-torch`, `Requires-Dist: torch>=2.0`) depends on torch, and the PyPI stand-in
  offers a CUDA torch: the stand-in server's access log shows which index served which wheel;
* the image is tagged only after bakery read the torch stack back from it;
* when a later package (`standin-clobber`) overwrites torch's files with a differently-suffixed
  build (2.9.1+cu128), the guard step fails the build, bakery says what replaced what and
  exits non-zero, and no tag is applied.

What it does not prove: anything about real ROCm wheels (size, GPU code, pytorch-triton-rocm).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.ci import require_daemon
from support.standin_index import (
    HIP_VERSION,
    PYPI_INDEX,
    ROCM_INDEX,
    StandinIndex,
    make_standin_index,
)

from bakery import base, build, cli, engine
from bakery.build import verify as read_back
from bakery.errors import EXIT_GUARD, EXIT_OK
from bakery.matrix import load_matrix

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
VARIANT = "2.9.1-rocm6.3-py3.11"
BASE_FROM = "docker.io/library/debian:bookworm-slim"
# Files an image build reads (see .dockerignore); images/ is rendered afresh in the copy.
PROJECT_FILES = (
    "matrix.toml",
    "Dockerfile.in",
    ".dockerignore",
    "bakery/probe.py",
    "bakery/data/with-build-secrets",
)
ROCM_TORCH_WHEEL = "torch-2.9.1+rocm6.3-py3-none-any.whl"
ROCM_VISION_WHEEL = "torchvision-0.24.1+rocm6.3-py3-none-any.whl"


@pytest.fixture(scope="module", autouse=True)
def docker_engine() -> engine.EngineInfo:
    require_daemon()
    return engine.check_engine()


@pytest.fixture(scope="module")
def base_tag(docker_engine: engine.EngineInfo) -> str:
    """The local Debian base (`python build.py base`), made if missing."""
    return base.bootstrap_base(base.BaseOptions()).tag


@pytest.fixture(scope="module")
def uv_wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uv wheel the image's uv-tool stage installs (Dockerfile.in pins uv==0.13.9).

    The stand-in plays PyPI with stand-in packages only; uv, a build tool rather than part of
    the stack under test, comes from a --find-links folder filled from the host's pip sources.
    """
    folder = tmp_path_factory.mktemp("uv-wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "--dest", str(folder), "uv==0.13.9"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"could not get the uv wheel: {done.stderr[-1000:]}"
    return folder


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[StandinIndex]:
    """The stand-in accelerator index + PyPI stand-in, running for one test only."""
    index = make_standin_index(tmp_path / "standin-wheels").start()
    try:
        yield index
    finally:
        index.stop()


def test_the_standin_variant_is_shipped() -> None:
    """The proof builds a variant users get, not one made up for the test."""
    shipped = {v.id for v in load_matrix(ROOT / "matrix.toml").variants}
    assert VARIANT in shipped


def standin_matrix(real: str, stack: dict[str, str]) -> str:
    """The real matrix.toml, narrowed to the shipped variant VARIANT (rocm on the base's own
    Python 3.11: no interpreter download) and the >=3.11 stack replaced by stand-in packages."""
    text = real
    for key, value in (("torch", '["2.9.1"]'), ("python", '["3.11"]'), ("flavours", '["full"]')):
        pattern = re.compile(rf"(\[targets\.rocm\]\n(?:(?!\[).*\n)*?){key} = \[[^\]]*\]")
        text, count = pattern.subn(rf"\g<1>{key} = {value}", text)
        assert count == 1, f"matrix.toml: targets.rocm.{key} not found once"
    packages = ", ".join(f'{name} = "{version}"' for name, version in stack.items())
    pattern = re.compile(r'(\[\[stack\]\]\npython = ">=3\.11"\npackages = )\{[^}]*\}')
    text, count = pattern.subn(rf"\g<1>{{ {packages} }}", text)
    assert count == 1, 'matrix.toml: the [[stack]] for python ">=3.11" not found once'
    return text


@pytest.fixture
def project_copy(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Path]]:
    """A copy of the project's build inputs with a stand-in matrix, rendered like a user would."""
    copy = tmp_path / "project"

    def make(stack: dict[str, str]) -> Path:
        for name in PROJECT_FILES:
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
        shutil.copytree(
            ROOT / "stylelora", copy / "stylelora", ignore=shutil.ignore_patterns("__pycache__")
        )
        matrix = copy / "matrix.toml"
        matrix.write_text(standin_matrix(matrix.read_text(encoding="utf-8"), stack), "utf-8")
        code = cli.main(
            ["generate", "--matrix", str(matrix), "--template", str(copy / "Dockerfile.in")]
        )
        assert code == EXIT_OK
        assert (copy / "images" / VARIANT / "Dockerfile").is_file()
        assert not list((copy / "images").glob("*-rocm6.3-py3.1[02]*")), "narrowing failed"
        return copy

    yield make
    shutil.rmtree(copy, ignore_errors=True)


@dataclass
class Run:
    code: int
    out: str
    err: str
    events: list[str]  # verify/tag calls in the order bakery made them
    image: str
    log: str  # the BuildKit log bakery wrote


@pytest.fixture
def build_with_standin(
    base_tag: str,
    standin: StandinIndex,
    uv_wheel_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[[Path], Run]]:
    """Run bakery's real build command against the stand-in; untag whatever it tagged."""
    repository = f"bakery-test/rocm-standin-{uuid.uuid4().hex[:8]}"
    image = f"{repository}:{VARIANT}"
    events: list[str] = []
    real_verify, real_tag = read_back.verify_image, engine.tag_image

    def verify(step: build.BuildStep, image_id: str) -> None:
        events.append("verify")
        real_verify(step, image_id)
        events.append("verified")

    def tag(image_id: str, ref: str) -> None:
        events.append(f"tag {ref}")
        real_tag(image_id, ref)

    # Observers only: both call through to the real functions.
    monkeypatch.setattr(read_back, "verify_image", verify)
    monkeypatch.setattr(engine, "tag_image", tag)

    def run(copy: Path) -> Run:
        assert engine.inspect_image(image) is None
        capsys.readouterr()
        code = cli.main([
            "--matrix", str(copy / "matrix.toml"), "--variant", VARIANT,
            "--index-url", standin.url(PYPI_INDEX), "--find-links", str(uv_wheel_dir),
            "--torch-index-url", standin.url(ROCM_INDEX),
            "--torch-source", "index", "--network", "host",
            # The mirror URL travels as a secret, which is not part of BuildKit's cache key: without
            # --no-cache a previous run's layers would answer and the stand-in would see no request.
            "--no-cache",
            "--base-map", f"{BASE_FROM}={base_tag}",
            "--repository", repository, "--json",
        ])  # fmt: skip
        captured = capsys.readouterr()
        logs = sorted((copy / ".bakery" / "logs").glob(f"{VARIANT}-*.log"))
        log = logs[-1].read_text(encoding="utf-8") if logs else ""
        return Run(code, captured.out, captured.err, events, image, log)

    try:
        yield run
    finally:
        engine.remove_image(image)


def in_image(image: str, *command: str) -> str:
    result = engine.run_container(image, list(command), timeout=120)
    assert result.return_code == 0, f"{command} failed in {image}: {result.stderr}"
    return result.stdout


def test_torch_comes_only_from_the_accelerator_index(
    project_copy: Callable[[dict[str, str]], Path],
    build_with_standin: Callable[[Path], Run],
    standin: StandinIndex,
) -> None:
    copy = project_copy({"standin-needs-torch": "1.0"})
    constraints = (copy / "images" / VARIANT / "constraints.txt").read_text(encoding="utf-8")
    assert "torch==2.9.1+rocm6.3\n" in constraints
    assert "torchvision==0.24.1+rocm6.3\n" in constraints

    run = build_with_standin(copy)

    assert run.code == EXIT_OK, run.err
    # The plan names the stand-in mirror as the torch step's index.
    assert f"torch from index ({standin.url(ROCM_INDEX)})" in run.err
    [record] = json.loads(run.out)
    assert record["image"] == run.image
    assert record["torch_source"] == "index"
    # Tagged only after its contents were read back, and only once.
    assert run.events == ["verify", "verified", f"tag {run.image}"]
    info = engine.inspect_image(run.image)
    assert info is not None
    assert info.id == record["image_id"]
    assert info.labels["io.bakery.torch-source"] == "index"

    # Inside the image: the ROCm stand-in torch, untouched by the later stack package.
    assert "Version: 2.9.1+rocm6.3" in in_image(run.image, "pip", "show", "torch")
    assert "Requires: torch" in in_image(run.image, "pip", "show", "standin-needs-torch")
    seen = in_image(
        run.image,
        "python",
        "-c",
        "import torch, torchvision, standin_needs_torch; "
        "print(torch.__version__, torch.version.hip, torch.version.cuda, torchvision.__version__)",
    )
    assert seen.split() == ["2.9.1+rocm6.3", HIP_VERSION, "None", "0.24.1+rocm6.3"]
    probe: dict[str, Any] = json.loads(in_image(run.image, "bakery-probe", "--expect", "rocm"))
    assert probe["torch"]["hip"].startswith("6.3.")
    assert probe["torch"]["arch_list"] == ["gfx90a", "gfx942"]
    assert probe["verdict"] == "no-gpu"  # no /dev/kfd here: the probe's honest answer

    # The stand-in server's access log: torch and torchvision were downloaded from the
    # accelerator index only; the PyPI stand-in (which offers a CUDA torch) was never asked
    # for torch, although the stack package it served depends on torch.
    downloads = standin.wheel_downloads()
    assert (ROCM_INDEX, ROCM_TORCH_WHEEL) in downloads
    assert (ROCM_INDEX, ROCM_VISION_WHEEL) in downloads
    assert (PYPI_INDEX, "standin_needs_torch-1.0-py3-none-any.whl") in downloads
    # (uv may fetch a wheel twice, for its metadata and then to install it: the set is the claim)
    assert {(i, f) for i, f in downloads if f.startswith("torch-")} == {
        (ROCM_INDEX, ROCM_TORCH_WHEEL)
    }, downloads
    # uv, unlike pip, reads the PyPI stand-in's torch listing while it resolves the stack (it
    # weighs every index); it never fetched a file from it: the exact +rocm6.3 pin excludes them.
    assert {r.path for r in standin.asked_for(PYPI_INDEX, "torch")} <= {"/simple/torch/"}
    # uv's own words in the build log: the stack step installed the later package and left the
    # ROCm torch already installed alone (no `+ torch==` or `- torch==` line of its own).
    stack_step = step_output(run.log, "-r /opt/bakery/requirements.txt")
    assert " + standin-needs-torch==1.0" in stack_step, stack_step
    assert not re.search(r" [+-] torch(vision)?==", stack_step), stack_step


def step_output(log: str, marker: str) -> str:
    """The BuildKit log lines of the one RUN step whose command contains `marker`."""
    [number] = {
        m.group(1)
        for m in re.finditer(r"^#(\d+) \[[^\]]*\] RUN .*", log, re.M)
        if marker in m.group(0)
    }
    return "\n".join(line for line in log.splitlines() if line.startswith(f"#{number} "))


def test_guard_fails_the_build_when_a_differently_suffixed_torch_slips_in(
    project_copy: Callable[[dict[str, str]], Path],
    build_with_standin: Callable[[Path], Run],
    standin: StandinIndex,
) -> None:
    copy = project_copy({"standin-needs-torch": "1.0", "standin-clobber": "1.0"})

    run = build_with_standin(copy)

    # The guard step failed the build, and bakery reports it as a guard verdict (exit 5).
    assert run.code == EXIT_GUARD, run.err
    assert "the torch guard stopped the build" in run.err
    assert "torch 2.9.1+rocm6.3 was expected but torch 2.9.1+cu128 is installed" in run.err
    assert "torch.version.hip is None, expected ROCm 6.3" in run.err
    assert run.out.strip() == ""  # no JSON result: nothing was built
    # Nothing was verified or tagged, and the tag does not exist.
    assert run.events == []
    assert engine.inspect_image(run.image) is None

    # torch itself still came only from the accelerator index: it was the later package
    # (served by the PyPI stand-in) that changed it.
    downloads = standin.wheel_downloads()
    assert {(i, f) for i, f in downloads if f.startswith("torch-")} == {
        (ROCM_INDEX, ROCM_TORCH_WHEEL)
    }, downloads
    assert (PYPI_INDEX, "standin_clobber-1.0-py3-none-any.whl") in downloads
    assert {r.path for r in standin.asked_for(PYPI_INDEX, "torch")} <= {"/simple/torch/"}
