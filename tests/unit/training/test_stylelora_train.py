"""The training loop: seeded, learning, guarded against divergence, and the GPU-only paths on CPU."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from stylelora_kit import style_dir, tiny_config, tiny_model_dir

from stylelora import losses, train
from stylelora.data import load_style_images, to_model_range
from stylelora.errors import ModelError, TrainingError, UsageError
from stylelora.features import VGG19_LAYOUT
from stylelora.model import restore_frozen_rows
from stylelora.outputs import RUN_FILE
from stylelora.train import build_session, run_training, training_step


def history_losses(history: list[dict[str, float | int]]) -> list[tuple[float, float, float]]:
    return [(float(r["loss"]), float(r["diffusion"]), float(r["style"])) for r in history]


def test_fixed_seed_gives_identical_loss_sequences(tmp_path: Path) -> None:
    first = run_training(tiny_config(tmp_path / "a"), show_progress=False)
    again = run_training(tiny_config(tmp_path / "b"), show_progress=False)
    other = run_training(tiny_config(tmp_path / "c", seed=1), show_progress=False)
    assert history_losses(first.history) == history_losses(again.history)
    assert history_losses(first.history) != history_losses(other.history)
    lora_a = first.session.trainables.lora
    lora_b = again.session.trainables.lora
    assert all(torch.equal(a, b) for a, b in zip(lora_a, lora_b, strict=True))


def test_run_json_records_config_seed_versions_and_losses(tmp_path: Path) -> None:
    result = run_training(tiny_config(tmp_path / "out", steps=2), show_progress=False)
    record = json.loads((result.output / RUN_FILE).read_text())
    assert record["config"]["steps"] == 2
    assert record["config"]["prompt"] == "a photo of <v_style>"
    assert record["seed"] == 0
    assert record["lora"] == {"rank": 4, "alpha": 8, "tensors": 64}
    assert {"torch", "diffusers", "transformers", "peft", "safetensors", "python"} <= record[
        "versions"
    ].keys()
    assert [r["step"] for r in record["losses"]] == [1, 2]
    assert {
        "loss",
        "diffusion",
        "style",
        "style_samples",
        "grad_norm",
        "frozen_row_drift",
    } <= record["losses"][0].keys()


def test_learning_signal_on_a_fixed_batch(tmp_path: Path) -> None:
    """Same images, noise and timesteps every step: both loss terms must fall within 30 steps."""
    session = build_session(
        tiny_config(tmp_path / "out", lr=1e-2, embedding_lr=1e-2), tiny_model_dir()
    )
    batch = to_model_range(load_style_images(style_dir(), 32).pixels[:2])
    seen = []
    for _ in range(30):
        result = training_step(
            session, batch, torch.Generator().manual_seed(0), timesteps=torch.tensor([100, 300])
        )
        torch.autograd.backward(result.total)
        session.optimizer.step()
        restore_frozen_rows(session.trainables)
        session.optimizer.zero_grad(set_to_none=True)
        seen.append((result.diffusion.item(), result.style.item()))
    (diffusion_0, style_0), (diffusion_n, style_n) = seen[0], seen[-1]
    assert diffusion_n < 0.7 * diffusion_0, seen
    assert style_n < 0.97 * style_0, seen


def test_non_finite_loss_stops_with_the_step_and_both_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nan_style(*args: object, **kwargs: object) -> torch.Tensor:
        return torch.full((2,), float("nan"))

    monkeypatch.setattr(losses, "style_loss", nan_style)
    cfg = tiny_config(tmp_path / "out", timestep_cutoff=1000)
    with pytest.raises(TrainingError) as caught:
        run_training(cfg, show_progress=False)
    line = caught.value.render()
    assert line.startswith("loss is not finite at step 1 — diffusion=")
    assert "style=nan" in line
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no staging left


def test_gradient_accumulation_runs_micro_batches_per_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_step = train.training_step

    def counting_step(*args: object, **kwargs: object) -> train.StepLosses:
        calls.append(1)
        return real_step(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train, "training_step", counting_step)
    result = run_training(
        tiny_config(tmp_path / "out", steps=2, grad_accum=3, batch_size=1), show_progress=False
    )
    assert len(calls) == 6
    assert len(result.history) == 2


def test_gradient_checkpointing_changes_nothing_but_memory(tmp_path: Path) -> None:
    plain = run_training(tiny_config(tmp_path / "a", steps=2), show_progress=False)
    ckpt = run_training(
        tiny_config(tmp_path / "b", steps=2, gradient_checkpointing=True), show_progress=False
    )
    for got, want in zip(history_losses(ckpt.history), history_losses(plain.history), strict=True):
        assert got == pytest.approx(want, rel=1e-5)


def test_bf16_autocast_keeps_trainables_in_fp32(tmp_path: Path) -> None:
    """The GPU precision path, exercised on the CPU: frozen weights bf16, trainables fp32."""
    result = run_training(
        tiny_config(tmp_path / "out", steps=2, mixed_precision="bf16"), show_progress=False
    )
    session = result.session
    assert session.bf16
    assert next(session.parts.vae.parameters()).dtype == torch.bfloat16
    base = [p for n, p in session.parts.unet.named_parameters() if ".lora_" not in n]
    assert {p.dtype for p in base} == {torch.bfloat16}
    assert {p.dtype for p in session.trainables.parameters()} == {torch.float32}
    assert all(torch.isfinite(torch.tensor(history_losses(result.history))).flatten())


def random_vgg_file(path: Path) -> Path:
    """torchvision's vgg19 key layout with random weights (a real file is loaded the same way)."""
    state, channels, index = {}, 3, 0
    for item in VGG19_LAYOUT:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(int(item), channels, 3, 3) * 0.05
        state[f"features.{index}.bias"] = torch.zeros(int(item))
        channels, index = int(item), index + 2
    state["classifier.0.weight"] = torch.zeros(1)  # ignored, as in a full vgg19 state dict
    save_file(state, path)
    return path


def test_vgg_features_from_a_local_file(tmp_path: Path) -> None:
    weights = random_vgg_file(tmp_path / "vgg19.safetensors")
    cfg = tiny_config(
        tmp_path / "out", steps=2, features="vgg", vgg_weights=weights, style_layers=(0, 1, 2)
    )
    result = run_training(cfg, show_progress=False)
    assert any(int(r["style_samples"]) > 0 and float(r["style"]) > 0 for r in result.history)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        pytest.param(
            lambda p: p / "absent.pth",
            UsageError,
            "VGG weights file .*absent.pth does not exist",
            id="missing",
        ),
        pytest.param(
            lambda p: (p / "junk.pth").write_bytes(b"junk") and p / "junk.pth",
            ModelError,
            "cannot read VGG weights",
            id="not-a-checkpoint",
        ),
        pytest.param(
            lambda p: (save_file({"x": torch.zeros(1)}, p / "w.safetensors"), p / "w.safetensors")[
                1
            ],
            ModelError,
            "does not hold VGG-19 weights",
            id="wrong-keys",
        ),
    ],
)
def test_bad_vgg_weights_are_one_clear_error(
    tmp_path: Path, make: object, error: type[Exception], message: str
) -> None:
    cfg = tiny_config(tmp_path / "out", steps=1, features="vgg", vgg_weights=make(tmp_path))  # type: ignore[operator]
    with pytest.raises(error, match=message):
        run_training(cfg, show_progress=False)
    assert not (tmp_path / "out").exists()


def test_v_prediction_models_train(tmp_path: Path) -> None:
    model = Path(shutil.copytree(tiny_model_dir(), tmp_path / "model"))
    config_path = model / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "prediction_type": "v_prediction"}))
    cfg = replace(tiny_config(tmp_path / "out", steps=2), model=str(model))
    result = run_training(cfg, show_progress=False)
    assert result.session.parts.scheduler.config["prediction_type"] == "v_prediction"
    assert len(result.history) == 2
