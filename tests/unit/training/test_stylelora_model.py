"""What is trainable, and that the placeholder row is the only embedding row that can move."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from stylelora_kit import style_dir, tiny_config, tiny_model_dir

from stylelora.data import load_style_images, to_model_range
from stylelora.errors import UsageError
from stylelora.model import embedding_matrix, restore_frozen_rows, trainable_names
from stylelora.train import Session, build_session, optimizer_step, training_step

T_SMALL = torch.tensor([100, 100])  # style term on, x0 meaningful


@pytest.fixture
def session(tmp_path: Path) -> Session:
    return build_session(tiny_config(tmp_path / "out"), tiny_model_dir())


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return to_model_range(load_style_images(style_dir(), 32).pixels[:2])


def embedding_name(session: Session) -> str:
    """The matrix's name differs between transformers 4 and 5; find it by identity."""
    matrix = embedding_matrix(session.parts.text_encoder)
    return next(
        f"text_encoder.{n}" for n, p in session.parts.text_encoder.named_parameters() if p is matrix
    )


def test_trainable_set_is_the_lora_tensors_and_the_embedding_matrix(session: Session) -> None:
    names = trainable_names(session.parts)
    lora = {n for n in names if n.startswith("unet.") and (".lora_A." in n or ".lora_B." in n)}
    assert len(lora) == 64  # 4 transformer blocks x attn1/attn2 x q/k/v/out x A/B
    assert names == lora | {embedding_name(session)}
    assert all(p.dtype == torch.float32 for p in session.trainables.lora)
    groups = session.optimizer.param_groups
    assert [g["weight_decay"] for g in groups][1] == 0.0  # AdamW decay would move frozen rows


def test_placeholder_token_is_one_new_id_starting_from_the_init_word(session: Session) -> None:
    tokenizer, token_id = session.parts.tokenizer, session.trainables.token_id
    assert tokenizer.encode("<v_style>", add_special_tokens=False) == [token_id]
    assert token_id in session.prompt_ids[0].tolist()
    (init_id,) = tokenizer.encode("style", add_special_tokens=False)
    matrix = embedding_matrix(session.parts.text_encoder)
    assert torch.equal(matrix[token_id], matrix[init_id])
    assert matrix.shape[0] == len(tokenizer)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"init_word": "photograph"}, "--init-word 'photograph' is .* tokens, not one"),
        ({"token": "style"}, "--token 'style' is already in the tokenizer's vocabulary"),
        ({"token": "<|endoftext|>"}, "--token '<|endoftext|>' is already in"),
    ],
    ids=["init-word-not-one-token", "token-is-a-known-word", "token-is-a-special-token"],
)
def test_bad_token_choices_are_refused(
    tmp_path: Path, overrides: dict[str, str], message: str
) -> None:
    cfg = tiny_config(tmp_path / "out", template="a photo of {token}", **overrides)
    with pytest.raises(UsageError, match=message):
        build_session(cfg, tiny_model_dir())


def style_gradients(
    session: Session, batch: torch.Tensor
) -> tuple[list[torch.Tensor | None], torch.Tensor]:
    result = training_step(session, batch, torch.Generator().manual_seed(0), timesteps=T_SMALL)
    assert result.style_samples == 2
    grads = torch.autograd.grad(result.style, session.trainables.parameters(), allow_unused=True)
    rows = grads[-1]
    assert rows is not None
    return list(grads[:-1]), rows


def test_style_gradient_reaches_lora_and_the_placeholder_row_only(
    session: Session, batch: torch.Tensor
) -> None:
    lora, rows = style_gradients(session, batch)
    token_id = session.trainables.token_id
    assert float(rows[token_id].abs().sum()) > 0
    others = torch.cat([rows[:token_id], rows[token_id + 1 :]])
    assert float(others.abs().sum()) == 0.0
    # LoRA B starts at zero, so at step 0 only the B tensors can receive gradient.
    reached = [g is not None and float(g.abs().sum()) > 0 for g in lora]
    assert sum(reached) == 32


def test_without_the_gradient_mask_other_rows_get_gradient(
    session: Session, batch: torch.Tensor
) -> None:
    """The broken variant: the check above must fail once the guard is removed."""
    for hook in session.trainables.hooks:
        hook.remove()
    _, rows = style_gradients(session, batch)
    token_id = session.trainables.token_id
    others = torch.cat([rows[:token_id], rows[token_id + 1 :]])
    assert float(others.abs().sum()) > 0  # "a", "photo", "of", bos and eos rows


def test_frozen_rows_do_not_move_over_optimizer_steps(session: Session) -> None:
    data = load_style_images(style_dir(), 32)
    rng = torch.Generator().manual_seed(0)
    batches = data.batches(2, rng)
    drifts = [optimizer_step(session, step, batches, rng)["frozen_row_drift"] for step in (1, 2, 3)]
    assert drifts == [0.0, 0.0, 0.0]
    tr = session.trainables
    assert not torch.equal(tr.embedding[tr.token_id], tr.original_embedding[tr.token_id])


def test_weight_decay_without_the_mask_moves_rows_and_restore_reports_it(session: Session) -> None:
    """The facts' mutation: no mask + AdamW decay; the drift, measured before restoring, shows it."""
    for hook in session.trainables.hooks:
        hook.remove()
    session.optimizer.param_groups[1]["weight_decay"] = 0.01
    data = load_style_images(style_dir(), 32)
    rng = torch.Generator().manual_seed(0)
    record = optimizer_step(session, 1, data.batches(2, rng), rng)
    assert float(record["frozen_row_drift"]) > 0
    tr = session.trainables
    keep = [i for i in range(tr.embedding.shape[0]) if i != tr.token_id]
    assert torch.equal(tr.embedding[keep], tr.original_embedding[keep])  # restored afterwards


def test_restore_puts_rows_back_and_keeps_the_placeholder(session: Session) -> None:
    tr = session.trainables
    with torch.no_grad():
        tr.embedding[0] += 0.5
        tr.embedding[tr.token_id] += 0.25
    assert restore_frozen_rows(tr) == pytest.approx(0.5)
    assert torch.equal(tr.embedding[0], tr.original_embedding[0])
    assert torch.equal(tr.embedding[tr.token_id], tr.original_embedding[tr.token_id] + 0.25)
    assert restore_frozen_rows(tr) == 0.0
