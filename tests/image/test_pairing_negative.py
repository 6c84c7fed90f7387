"""The version-pairing suite must fail on a mismatched torch/torchvision pair.

The image is the real cpu image plus PyPI's torchvision 0.28.0 (a CUDA build made for PyPI's
torch 2.13.0) installed next to the local torch 2.13.0+cpu without its dependencies: exactly
the `operator torchvision::nms does not exist` breakage users hit.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from support.ci import skip_or_fail
from support.dockercli import docker, run_container
from support.images import ROOT, image_labels

from bakery import engine
from bakery.matrix import load_matrix

pytestmark = pytest.mark.docker
CPU_VARIANT = "2.13.0-cpu-py3.11"


@pytest.fixture(scope="module")
def mismatched_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    matrix = load_matrix(ROOT / "matrix.toml")
    base = f"{matrix.project.repository}:{CPU_VARIANT}"
    if image_labels(base) is None:
        skip_or_fail(f"{base} is not built (python build.py --variant {CPU_VARIANT})")
    context = tmp_path_factory.mktemp("mismatch")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(context), "torchvision==0.28.0"],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    wheel = next(context.glob("torchvision-0.28.0-*.whl")).name
    (context / "Dockerfile").write_text(
        f"FROM {base}\nUSER root\nCOPY {wheel} /tmp/\n"
        f"RUN pip install --no-deps /tmp/{wheel} && rm /tmp/{wheel}\nUSER 1000:1000\n",
        encoding="utf-8",
    )
    tag = f"bakery-test/mismatch:{uuid.uuid4().hex[:8]}"
    spec = engine.BuildSpec(
        context=context,
        dockerfile=context / "Dockerfile",
        log_path=context / "build.log",
        tags=(tag,),
    )
    engine.build_image(spec)
    yield tag
    docker("rmi", "-f", tag, check=False)


def test_pairing_suite_fails_on_the_mismatched_pair(mismatched_image: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "tests" / "image" / "test_pairing.py"),
         "--image", mismatched_image, "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=900, cwd=ROOT, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "operator torchvision::nms does not exist" in output
    assert "FAILED" in output
    assert "test_torchvision_ops_work" in output


def test_the_probe_names_the_broken_companion(mismatched_image: str) -> None:
    result = run_container("--network", "none", mismatched_image, "bakery-probe", check=False)
    assert "torchvision::nms does not exist" in result.stdout
