"""Run folders: atomic, never clobbered, readable modes; LoRA + token survive a reload exactly."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from peft.utils import get_peft_model_state_dict
from stylelora_kit import tiny_config, tiny_model_dir

from stylelora.errors import OutputError
from stylelora.hf import StableDiffusionPipeline
from stylelora.inference import ADAPTER, load_pipeline
from stylelora.model import embedding_matrix
from stylelora.outputs import (
    EMBEDS_FILE,
    LORA_FILE,
    RUN_FILE,
    prepare_output,
    save_embedding,
    save_lora,
    write_json,
)
from stylelora.train import Session, build_session

CPU = torch.device("cpu")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def write_fake_run(staging_folder: Path) -> None:
    for name in (LORA_FILE, EMBEDS_FILE):
        (staging_folder / name).write_bytes(b"x")
        (staging_folder / name).chmod(0o600)  # what safetensors 0.8 leaves behind
    write_json({"ok": True}, staging_folder / RUN_FILE)


def make_file_target(tmp: Path) -> Path:
    (tmp / "out").write_text("not a folder")
    return tmp / "out"


def make_held_run(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / RUN_FILE).write_text("{}")
    return tmp / "out"


def make_under_a_file(tmp: Path) -> Path:
    (tmp / "file").write_text("")
    return tmp / "file" / "out"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            make_file_target, r"output path .*out is a file, not a folder", id="output-is-a-file"
        ),
        pytest.param(
            make_held_run,
            r"output folder .*out already holds a run \(run.json\) — pass --overwrite",
            id="holds-a-run",
        ),
        pytest.param(
            make_under_a_file,
            r"output folder .*file/out cannot be created — .*file is a file",
            id="parent-is-a-file",
        ),
    ],
)
def test_bad_output_is_one_clear_error(tmp_path: Path, make: object, message: str) -> None:
    with pytest.raises(OutputError) as caught:
        prepare_output(make(tmp_path), overwrite=False)  # type: ignore[operator]  # a maker function
    assert re.search(message, caught.value.render()), caught.value.render()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere whatever the mode")
def test_unwritable_output_parent_is_one_clear_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            prepare_output(tmp_path / "out", overwrite=False)
    finally:
        tmp_path.chmod(0o755)


def test_new_output_appears_only_on_commit_with_readable_modes(
    tmp_path: Path, umask_022: None
) -> None:
    staging = prepare_output(tmp_path / "out", overwrite=False)
    write_fake_run(staging.folder)
    assert not (tmp_path / "out").exists()
    assert staging.folder.parent == tmp_path
    out = staging.commit()
    assert sorted(p.name for p in out.iterdir()) == sorted([LORA_FILE, EMBEDS_FILE, RUN_FILE])
    assert mode(out) == 0o755
    assert {mode(p) for p in out.iterdir()} == {0o644}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no staging left behind


def test_modes_follow_a_stricter_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        staging = prepare_output(tmp_path / "out", overwrite=False)
        write_fake_run(staging.folder)
        out = staging.commit()
    finally:
        os.umask(old)
    assert mode(out) == 0o750
    assert {mode(p) for p in out.iterdir()} == {0o640}


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    staging = prepare_output(tmp_path / "out", overwrite=False)
    write_fake_run(staging.folder)
    staging.abort()
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_is_filled_in_place_like_a_mount(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "mounted"
    target.mkdir(mode=0o770)
    target.chmod(0o770)
    (target / "keep.txt").write_text("the user's")
    staging = prepare_output(target, overwrite=False)
    assert staging.folder.parent == target  # a mount point cannot be renamed over
    write_fake_run(staging.folder)
    staging.commit()
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [LORA_FILE, EMBEDS_FILE, RUN_FILE, "keep.txt"]
    )
    assert mode(target) == 0o770  # not ours to change
    assert mode(target / LORA_FILE) == 0o644


def test_overwrite_replaces_a_run_and_drops_its_stale_files(tmp_path: Path) -> None:
    target = make_held_run(tmp_path)
    (target / EMBEDS_FILE).write_text("old")
    staging = prepare_output(target, overwrite=True)
    (staging.folder / LORA_FILE).write_text("new")
    write_json({"new": True}, staging.folder / RUN_FILE)
    staging.commit()
    assert sorted(p.name for p in target.iterdir()) == sorted([LORA_FILE, RUN_FILE])
    assert (target / RUN_FILE).read_text().strip() == '{\n  "new": true\n}'


@pytest.fixture(scope="module")
def trained_session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """A session whose LoRA B and placeholder row hold non-trivial values."""
    session = build_session(tiny_config(tmp_path_factory.mktemp("s") / "out"), tiny_model_dir())
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in session.trainables.lora:
            param.add_(torch.randn(param.shape, generator=gen) * 0.01)
        session.trainables.embedding[session.trainables.token_id] += 0.1
    return session


def save_and_reload(session: Session, folder: Path) -> StableDiffusionPipeline:
    save_lora(session.parts.unet, folder)
    save_embedding(session.trainables.embedding[session.trainables.token_id], "<v_style>", folder)
    return load_pipeline(tiny_model_dir(), folder, CPU, torch.float32)


def test_lora_and_token_round_trip_bit_identical(trained_session: Session, tmp_path: Path) -> None:
    pipe = save_and_reload(trained_session, tmp_path)
    trained = get_peft_model_state_dict(trained_session.parts.unet)
    loaded = get_peft_model_state_dict(pipe.unet, adapter_name=ADAPTER)
    assert trained.keys() == loaded.keys()
    assert all(torch.equal(value, loaded[key]) for key, value in trained.items())
    config = pipe.unet.peft_config[ADAPTER]
    assert (config.r, config.lora_alpha) == (4, 8)
    token_id = pipe.tokenizer.convert_tokens_to_ids("<v_style>")
    assert token_id == trained_session.trainables.token_id
    row = embedding_matrix(pipe.text_encoder)[token_id]
    assert torch.equal(row, trained_session.trainables.embedding[token_id])


def test_without_adapter_metadata_alpha_is_lost(trained_session: Session, tmp_path: Path) -> None:
    """The broken variant of the round-trip check: it must see alpha fall back to the rank."""
    layers = get_peft_model_state_dict(trained_session.parts.unet)
    StableDiffusionPipeline.save_lora_weights(
        tmp_path, unet_lora_layers=layers, weight_name=LORA_FILE
    )
    save_embedding(
        trained_session.trainables.embedding[trained_session.trainables.token_id],
        "<v_style>",
        tmp_path,
    )
    pipe = load_pipeline(tiny_model_dir(), tmp_path, CPU, torch.float32)
    assert pipe.unet.peft_config[ADAPTER].lora_alpha != 8
