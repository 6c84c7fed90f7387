"""Reusing a passed read-back after a code-only rebuild (issue 17, goal 2), without Docker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from bakery import build, engine, verified
from bakery.build import verify
from bakery.errors import GuardError
from bakery.matrix import load_matrix

ROOT = Path(__file__).resolve().parents[2]
LOWER = ("sha256:base", "sha256:apt", "sha256:torch", "sha256:stack", "sha256:user")
COPY = "[image 11/13] COPY stylelora /opt/bakery/src/stylelora"
WORKDIR = "[image 12/13] WORKDIR /workspace"
PIP = "[image  7/13] RUN --mount=type=cache pip install -r /opt/bakery/requirements.txt"


def info(layers: tuple[str, ...], **changes: object) -> engine.ImageInfo:
    plain = engine.ImageInfo(
        id="sha256:img", repo_tags=(), size=1, labels=MappingProxyType({}),
        env=MappingProxyType({"PATH": "/opt/venv/bin"}), cmd=("bash",),
        entrypoint=("/usr/bin/tini", "--"), workdir="/workspace", user="1000:1000", layers=layers,
    )  # fmt: skip
    return replace(plain, **changes)  # type: ignore[arg-type]  # test-only field overrides


@pytest.mark.parametrize(
    ("seen", "layers", "steps_run", "reuse"),
    [
        pytest.param((*LOWER, "sha256:code1"), (*LOWER, "sha256:code2"), [COPY, WORKDIR], True, id="code-change"),
        pytest.param((*LOWER, "sha256:code1"), (*LOWER, "sha256:code1"), [], True, id="full-cache-hit"),
        pytest.param((*LOWER, "sha256:code1"), (*LOWER, "sha256:code2"), [PIP, COPY], False, id="a-pip-step-ran"),
        pytest.param(("sha256:base", "sha256:apt", "sha256:other", "sha256:stack", "sha256:user", "sha256:c"), (*LOWER, "sha256:code2"), [COPY], False, id="lower-layer-differs"),
        pytest.param((*LOWER, "sha256:code1"), (*LOWER, "sha256:extra", "sha256:code2"), [COPY], False, id="an-extra-layer-below-the-code"),
        pytest.param(None, (*LOWER, "sha256:code2"), [COPY], False, id="never-read-back"),
    ],
)  # fmt: skip
def test_reusable_only_when_only_code_steps_ran_over_read_back_layers(
    seen: tuple[str, ...] | None, layers: tuple[str, ...], steps_run: list[str], reuse: bool
) -> None:
    records = {} if seen is None else {"k": list(seen)}
    assert verified.reusable(records, "k", layers, steps_run) is reuse


def test_key_changes_with_what_the_read_back_depends_on() -> None:
    command = ["bakery-probe", "guard", "--torch", "2.13.0"]
    key = verified.verification_key("v", command, info(LOWER))
    assert key == verified.verification_key("v", command, info((*LOWER, "sha256:x")))
    changed = [
        verified.verification_key("w", command, info(LOWER)),
        verified.verification_key("v", [*command, "--companion=torchvision=0.28.0"], info(LOWER)),
        verified.verification_key("v", command, info(LOWER, env=MappingProxyType({"PYTHONPATH": "/x"}))),
        verified.verification_key("v", command, info(LOWER, user="0")),
    ]  # fmt: skip
    assert key not in changed
    assert len(set(changed)) == len(changed)


def test_records_survive_a_reload_and_a_torn_file_counts_as_none(tmp_path: Path) -> None:
    verified.remember(tmp_path, "k", LOWER)
    assert verified.load_records(tmp_path) == {"k": list(LOWER)}
    (tmp_path / verified.RECORDS).write_text('{"k": ["sha', encoding="utf-8")
    assert verified.load_records(tmp_path) == {}


def _step() -> build.BuildStep:
    v = next(v for v in load_matrix(ROOT / "matrix.toml").variants if v.id == "2.13.0-cpu-py3.11")
    return build.BuildStep(
        variant=v, dockerfile=Path("images") / v.id / "Dockerfile", image="x:1",
        torch_source="local", torch_source_reason="", build_args={}, base_context=None,
        log_path=Path("build.log"),
    )  # fmt: skip


def _outcome(steps_run: tuple[str, ...]) -> engine.BuildOutcome:
    return engine.BuildOutcome("sha256:img", 13, 13 - len(steps_run), steps_run, 1.0, Path("l"))


def test_build_reads_back_once_then_reuses_it_for_a_code_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_backs: list[str] = []
    monkeypatch.setattr(verify, "verify_image", lambda step, image_id: read_backs.append(image_id))
    step = _step()
    first = (*LOWER, "sha256:code1")
    assert verify.verify_once(step, _outcome((PIP, COPY, WORKDIR)), info(first), tmp_path)
    code_only = _outcome((COPY, WORKDIR))
    assert not verify.verify_once(step, code_only, info((*LOWER, "sha256:code2")), tmp_path)
    assert len(read_backs) == 1
    torch_changed = (*LOWER[:2], "sha256:torch2", *LOWER[3:], "sha256:code3")
    assert verify.verify_once(step, code_only, info(torch_changed), tmp_path)
    assert verify.verify_once(step, _outcome((PIP, COPY)), info(first), tmp_path)
    assert len(read_backs) == 3


def test_a_failed_read_back_is_not_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(step: build.BuildStep, image_id: str) -> None:
        raise GuardError("torch was replaced")

    monkeypatch.setattr(verify, "verify_image", refuse)
    with pytest.raises(GuardError):
        verify.verify_once(_step(), _outcome((PIP, COPY)), info(LOWER), tmp_path)
    assert verified.load_records(tmp_path) == {}
