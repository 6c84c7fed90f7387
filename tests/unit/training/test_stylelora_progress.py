"""What a person and a machine see of a run: metrics.jsonl, validation images, OOM advice."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from stylelora_kit import preserved_environ, style_dir, tiny_config, tiny_model_dir

from stylelora import train
from stylelora.cli import main
from stylelora.errors import EXIT_MEMORY
from stylelora.metrics import METRICS_FILE, read_events
from stylelora.progress import Progress
from stylelora.train import run_training
from stylelora.validation import VALIDATION_DIR


@pytest.fixture(autouse=True)
def restore_environ() -> Iterator[None]:
    with preserved_environ():
        yield


def test_metrics_file_has_one_line_per_step_and_event(tmp_path: Path) -> None:
    result = run_training(tiny_config(tmp_path / "run", steps=3), show_progress=False)
    events = read_events(result.output / METRICS_FILE)
    assert [e["event"] for e in events] == ["start", "step", "step", "step", "end"]
    for number, event in enumerate(events[1:4], start=1):
        assert event["step"] == number
        assert {"loss", "diffusion", "style", "grad_norm", "lr", "it_s"} <= event.keys()
        assert math.isfinite(event["loss"])
        assert event["lr"] == pytest.approx(1e-3)


def test_progress_line_shows_step_loss_rate_and_time_left() -> None:
    stream = io.StringIO()
    stream.isatty = lambda: True  # type: ignore[method-assign]  # a terminal
    progress = Progress(10, stream=stream, first=4)
    progress.update(10, 0.5, 0.4, 0.1)
    progress.close()
    text = stream.getvalue()
    assert "step 10/10 | loss 0.5000 (diffusion 0.4000, style 0.1000)" in text
    assert " it/s | " in text
    assert "0m00s left" in text


def test_validation_renders_fixed_prompts_and_scores_a_held_out_image(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", steps=2, validate_every=1, validation_steps=2)
    result = run_training(cfg, show_progress=False)
    events = [e for e in read_events(result.output / METRICS_FILE) if e["event"] == "validation"]
    assert [e["step"] for e in events] == [1, 2]
    assert all(isinstance(e["heldout_style"], float) for e in events)
    assert all(math.isfinite(e["heldout_style"]) for e in events)
    assert len(result.data.paths) == 3  # the fourth image is held out
    folder = result.output / VALIDATION_DIR / "step-000002"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["plain-seed0.png", "plain-seed1.png", "token-seed0.png", "token-seed1.png"]
    assert sorted(events[-1]["images"]) == [f"{VALIDATION_DIR}/step-000002/{n}" for n in names]
    pixels = {n: np.asarray(Image.open(folder / n), dtype=np.int16) for n in names}
    assert pixels["token-seed0.png"].shape == (32, 32, 3)
    assert not np.array_equal(pixels["token-seed0.png"], pixels["plain-seed0.png"])
    assert not np.array_equal(pixels["token-seed0.png"], pixels["token-seed1.png"])


def test_validation_does_not_change_the_training_run(tmp_path: Path) -> None:
    """Same held-out split with and without rendering: identical losses (own RNGs only)."""
    quiet = run_training(
        tiny_config(tmp_path / "a", steps=3, validate_every=100), show_progress=False
    )
    busy = run_training(
        tiny_config(tmp_path / "b", steps=3, validate_every=1, validation_steps=2),
        show_progress=False,
    )
    assert [r["loss"] for r in busy.history] == [r["loss"] for r in quiet.history]


def tiny_cli(output: Path, *extra: str) -> list[str]:
    return [
        "train", "--model", str(tiny_model_dir()), "--data", str(style_dir()),
        "--output", str(output), "--resolution", "32", "--steps", "3", "--device", "cpu",
        "--mixed-precision", "no", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), id="cuda"
        ),
        pytest.param(RuntimeError("HIP out of memory. Tried to allocate 512.00 MiB"), id="hip"),
    ],
)
def test_out_of_memory_is_advice_not_a_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: RuntimeError,
) -> None:
    def no_memory(*args: object) -> train.StepRecord:
        raise error

    monkeypatch.setattr(train, "optimizer_step", no_memory)
    code = main(tiny_cli(tmp_path / "run", "--batch-size", "4", "--checkpoint-every", "5"))
    err = capsys.readouterr().err
    assert code == EXIT_MEMORY
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: the GPU ran out of memory at step 1 — ")
    assert str(error).split(".")[0] in line
    for option in (
        "--batch-size 2 --grad-accum 2 (the same effective batch)",
        "a smaller --resolution (now 32)",
        "--gradient-checkpointing",
        "--mixed-precision bf16",
        "then add --resume",
    ):
        assert option in line
    assert not (tmp_path / "run").exists()  # failed before any checkpoint: nothing left


def test_other_runtime_errors_are_not_called_out_of_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object) -> train.StepRecord:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(train, "optimizer_step", broken)
    code = main(tiny_cli(tmp_path / "run"))
    assert code != EXIT_MEMORY
    assert "out of memory" not in capsys.readouterr().err


def test_run_json_counts_the_processes(tmp_path: Path) -> None:
    result = run_training(tiny_config(tmp_path / "run", steps=1), show_progress=False)
    assert json.loads((result.output / "run.json").read_text())["processes"] == 1
