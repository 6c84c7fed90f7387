"""bakery.pipsources.MAX_LOCAL and the pip-local-N stages written in Dockerfile.in agree.

The code passes at most MAX_LOCAL local pip folders as named build contexts pip-local-0..N-1
and rewrites pip.conf to /mnt/pip-local-N; the template declares the stages and the bind mounts
by hand. Every rendered Dockerfile (generated from Dockerfile.in; `generate --check` keeps them in
sync) is parsed with a real Dockerfile parser and must declare exactly MAX_LOCAL stages, and
every RUN that reads the pip configuration must mount all of them where pip.conf points.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from bakery.pipsources import MAX_LOCAL, MOUNT_ROOT

ROOT = Path(__file__).resolve().parents[2]
RENDERED = sorted((ROOT / "images").glob("*/Dockerfile"))
STAGE = re.compile(r"^\S+\s+AS\s+(pip-local-\S+)$", re.IGNORECASE)
MOUNT = re.compile(r"--mount=type=bind,from=(pip-local-[^,\s]+),target=(\S+)")


def expected_mounts(count: int) -> dict[str, str]:
    return {f"pip-local-{i}": f"{MOUNT_ROOT}-{i}" for i in range(count)}


def pip_local_problems(dockerfile: str, max_local: int) -> list[str]:
    """What disagrees between a Dockerfile's pip-local stages/mounts and `max_local`."""
    parser = DockerfileParser(fileobj=io.BytesIO())
    parser.content = dockerfile
    want = expected_mounts(max_local)
    problems: list[str] = []
    stages = [
        m.group(1)
        for i in parser.structure
        if i["instruction"] == "FROM" and (m := STAGE.match(i["value"].strip()))
    ]
    if sorted(stages) != sorted(want):
        problems.append(f"stages {sorted(stages)}, expected {sorted(want)}")
    for i in parser.structure:
        if i["instruction"] != "RUN":
            continue
        mounts = dict(MOUNT.findall(i["value"]))
        if (mounts or "id=pipconf" in i["value"]) and mounts != want:
            problems.append(f"RUN at line {i['startline'] + 1} mounts {mounts}, expected {want}")
    return problems


def test_every_variant_is_rendered() -> None:
    assert len(RENDERED) > 1, "no rendered images/*/Dockerfile: run `python build.py generate`"


@pytest.mark.parametrize("dockerfile", RENDERED, ids=lambda p: p.parent.name)
def test_rendered_dockerfile_declares_max_local_stages(dockerfile: Path) -> None:
    assert pip_local_problems(dockerfile.read_text(encoding="utf-8"), MAX_LOCAL) == []


def test_a_full_image_mounts_the_local_folders_where_pip_reads() -> None:
    """At least one RUN installs with the pip configuration (else the check above is empty)."""
    text = (ROOT / "images" / "2.13.0-cpu-py3.11" / "Dockerfile").read_text(encoding="utf-8")
    assert len(MOUNT.findall(text)) >= MAX_LOCAL


SAMPLE = (ROOT / "images" / "2.13.0-cpu-py3.11" / "Dockerfile").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("broken", "max_local", "message"),
    [
        pytest.param(SAMPLE, MAX_LOCAL + 1, "stages", id="code-allows-more-than-the-template"),
        pytest.param(SAMPLE, MAX_LOCAL - 1, "stages", id="code-allows-fewer-than-the-template"),
        pytest.param(
            SAMPLE.replace("FROM scratch AS pip-local-3\n", ""),
            MAX_LOCAL,
            "stages",
            id="template-drops-a-stage",
        ),
        pytest.param(
            SAMPLE.replace(
                "    --mount=type=bind,from=pip-local-3,target=/mnt/pip-local-3 \\\n", "", 1
            ),
            MAX_LOCAL,
            "RUN at line",
            id="a-pip-run-misses-a-mount",
        ),
        pytest.param(
            SAMPLE.replace("target=/mnt/pip-local-2", "target=/mnt/elsewhere", 1),
            MAX_LOCAL,
            "RUN at line",
            id="a-mount-is-not-where-pip-conf-points",
        ),
    ],
)
def test_disagreement_is_reported(broken: str, max_local: int, message: str) -> None:
    assert broken != SAMPLE or max_local != MAX_LOCAL  # the input really is broken
    problems = pip_local_problems(broken, max_local)
    assert problems, "a disagreement went unnoticed"
    assert any(message in p for p in problems), problems
