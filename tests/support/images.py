"""Helpers for the image suites (tests/image): which images to test, root helper, GPU presence.

Images come from --image REF or --variant ID; with neither, every matrix variant whose image
exists locally (the matrix is the only list). A variant's expectations are read from
matrix.toml, never restated here.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from bakery.devbox import gpu_access, gpu_run_args
from bakery.matrix import Variant, load_matrix
from support.ci import skip_or_fail
from support.dockercli import DOCKER_TIMEOUT, docker, run_container

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ImageUnderTest:
    ref: str
    variant: Variant
    labels: dict[str, str]

    def __str__(self) -> str:
        return self.variant.id


def as_root(folder: Path, script: str, helper_image: str) -> None:
    """Run a shell `script` as root in `folder`: directly when the tests run as root, else in a
    throwaway root container of `helper_image` with the folder mounted (hosted runners run the
    suites as an unprivileged user in the docker group; only this step needs root)."""
    if os.geteuid() == 0:
        subprocess.run(["sh", "-c", script], cwd=folder, check=True, timeout=DOCKER_TIMEOUT)
        return
    run_container(
        "--network", "none", "--user", "0:0", "-v", f"{folder}:/w", "-w", "/w",
        "--entrypoint", "sh", helper_image, "-c", script,
    )  # fmt: skip


def helper_image(config: pytest.Config) -> str:
    """An image that exists here, for as_root (the first image under test)."""
    found = [i for i in images_under_test(config) if isinstance(i, ImageUnderTest)]
    if not found:
        skip_or_fail("no image under test to run the root helper in")
    return found[0].ref


def image_labels(ref: str) -> dict[str, str] | None:
    result = docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref, check=False)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout) or {}


def images_under_test(config: pytest.Config) -> list[ImageUnderTest | str]:
    """Resolved images, or a string saying why there are none (becomes a skip reason)."""
    matrix = load_matrix(ROOT / "matrix.toml")
    by_id = {v.id: v for v in matrix.variants}
    repository = config.getoption("--repository") or matrix.project.repository
    found: list[ImageUnderTest | str] = []
    for ref in config.getoption("--image"):
        labels = image_labels(ref)
        if labels is None:
            found.append(f"image {ref} does not exist locally")
        elif labels.get("io.bakery.variant") not in by_id:
            found.append(f"image {ref} has no io.bakery.variant label naming a matrix variant")
        else:
            found.append(ImageUnderTest(ref, by_id[labels["io.bakery.variant"]], labels))
    for vid in config.getoption("--variant"):
        if vid not in by_id:
            raise pytest.UsageError(
                f"--variant {vid}: not in matrix.toml (see `python build.py list`)"
            )
        ref = by_id[vid].ref(repository)
        labels = image_labels(ref)
        found.append(
            ImageUnderTest(ref, by_id[vid], labels)
            if labels is not None
            else f"{ref} is not built (python build.py --variant {vid})"
        )
    if found:
        return found
    for v in matrix.variants:
        ref = v.ref(repository)
        labels = image_labels(ref)
        if labels is not None:
            found.append(ImageUnderTest(ref, v, labels))
    return found or ["no image of any matrix variant is built here (python build.py --target cpu)"]


def host_has_gpu(accelerator: str) -> str:
    """'' if this machine has the accelerator's device nodes, else the reason it does not
    (the product's own detection: bakery.devbox.gpu_access)."""
    if accelerator == "cpu":
        return "CPU variant: there is no GPU to use"
    return gpu_access(accelerator).missing


def run_args_for_gpu(accelerator: str) -> list[str]:
    """The accelerator's device flags on this host: the product's own logic (bakery.devbox)."""
    return gpu_run_args(accelerator)
