"""Checkpoints and resume: exact continuation, refusals, pruning, and a real SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from stylelora_kit import REPO, style_dir, tiny_config

from stylelora import train
from stylelora.checkpoint import CHECKPOINTS_DIR, STATE_JSON, complete_steps
from stylelora.errors import OutputError, UsageError
from stylelora.metrics import METRICS_FILE, read_events
from stylelora.outputs import LORA_FILE, RUN_FILE
from stylelora.train import TrainResult, run_training


def weights(result: TrainResult) -> list[torch.Tensor]:
    trainables = result.session.trainables
    return [*trainables.lora, trainables.embedding[trainables.token_id]]


def interrupt_at(monkeypatch: pytest.MonkeyPatch, stop: int) -> None:
    """Make the loop die at step `stop` as if the user pressed Ctrl-C there."""
    real = train.optimizer_step

    def step(session: train.Session, number: int, *args: object) -> train.StepRecord:
        if number == stop:
            raise KeyboardInterrupt
        return real(session, number, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(train, "optimizer_step", step)


def test_resume_continues_bit_for_bit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = run_training(tiny_config(tmp_path / "whole", steps=5), show_progress=False)
    cut = tiny_config(tmp_path / "cut", steps=5, checkpoint_every=2, lr_warmup=3)
    whole_warm = run_training(replace(cut, output=tmp_path / "warm"), show_progress=False)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 4)
        with pytest.raises(KeyboardInterrupt):
            run_training(cut, show_progress=False)
    assert [s for s, _ in complete_steps(cut.output)] == [2]
    assert not (cut.output / RUN_FILE).exists()
    resumed = run_training(replace(cut, resume="latest"), show_progress=False)
    for got, want in zip(weights(resumed), weights(whole_warm), strict=True):
        assert torch.equal(got, want)
    assert resumed.history == whole_warm.history
    assert [r["loss"] for r in whole.history] != [r["loss"] for r in whole_warm.history]
    steps = [e["step"] for e in read_events(cut.output / METRICS_FILE) if e["event"] == "step"]
    assert steps == [1, 2, 3, 4, 5]  # step 3, logged before the interruption, is not repeated
    assert (cut.output / LORA_FILE).is_file()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        pytest.param({"lr": 2e-3}, "--lr 0.001 → 0.002", id="lr"),
        pytest.param({"rank": 8}, "--rank 4 → 8", id="rank"),
        pytest.param({"seed": 7, "style_weight": 0.5}, "--seed 0 → 7", id="two-keys"),
    ],
)
def test_resume_refuses_a_checkpoint_of_other_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, object], named: str
) -> None:
    cfg = tiny_config(tmp_path / "run", steps=3, checkpoint_every=1)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, show_progress=False)
    before = sorted(p.name for p in (cfg.output / CHECKPOINTS_DIR).iterdir())
    with pytest.raises(UsageError) as caught:
        run_training(replace(cfg, resume="latest", **change), show_progress=False)  # type: ignore[arg-type]
    line = caught.value.render()
    assert "was written with other settings" in line
    assert named in line
    if "style_weight" in change:
        assert "--style-weight 1.0 → 0.5" in line
    assert sorted(p.name for p in (cfg.output / CHECKPOINTS_DIR).iterdir()) == before


def test_a_new_run_refuses_a_folder_with_an_unfinished_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tmp_path / "run", steps=3, checkpoint_every=1)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, show_progress=False)
    with pytest.raises(OutputError) as caught:
        run_training(cfg, show_progress=False)
    assert "holds an unfinished run (metrics.jsonl, checkpoints)" in caught.value.render()
    assert "pass --resume to continue it, --overwrite to start over" in caught.value.render()
    result = run_training(replace(cfg, overwrite=True), show_progress=False)
    assert [s for s, _ in complete_steps(result.output)] == [1, 2, 3]


def test_keep_checkpoints_bounds_disk_and_partials_are_ignored(tmp_path: Path) -> None:
    run = tmp_path / "run"
    stale = run / CHECKPOINTS_DIR / ".partial-step-000009-x"
    stale.mkdir(parents=True)
    (run / CHECKPOINTS_DIR / "step-000008").mkdir()  # no state.json: not a checkpoint
    cfg = tiny_config(run, steps=5, checkpoint_every=1, keep_checkpoints=2, resume="latest")
    run_training(cfg, show_progress=False)
    assert [s for s, _ in complete_steps(run)] == [4, 5]
    assert not stale.exists()
    state = json.loads((run / CHECKPOINTS_DIR / "step-000005" / STATE_JSON).read_text())
    assert state["step"] == 5
    assert len(state["history"]) == 5
    assert state["config"]["seed"] == 0


def test_resume_of_a_missing_folder_is_one_clear_error(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", resume=str(tmp_path / "nowhere"))
    with pytest.raises(UsageError, match="is neither a checkpoint nor a run folder"):
        run_training(cfg, show_progress=False)


def cli_args(output: Path, steps: int) -> list[str]:
    cfg = tiny_config(output)
    return [
        sys.executable, "-m", "stylelora", "train", "--model", cfg.model, "--data", str(cfg.data),
        "--output", str(output), "--steps", str(steps), "--lr", "1e-3", "--embedding-lr", "5e-3",
        "--rank", "4", "--alpha", "8", "--style-weight", "1.0", "--resolution", "32",
        "--batch-size", "2", "--device", "cpu", "--mixed-precision", "no",
        "--checkpoint-every", "1",
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def wait_for_steps(path: Path, count: int, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        steps = [e for e in read_events(path) if e.get("event") == "step"]
        if len(steps) >= count:
            return
        time.sleep(0.02)  # polls a file another process appends to; the deadline bounds it
    raise AssertionError(f"{count} steps not logged in time (exit {proc.poll()})")


def test_sigkill_at_a_random_step_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    steps, out = 6, tmp_path / "run"
    kill_after = random.Random().randint(1, steps - 1)  # noqa: S311 - a test's kill point, not a secret
    print(f"killing after {kill_after} logged steps")  # shown when the test fails
    proc = subprocess.Popen(
        cli_args(out, steps), env=child_env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for_steps(out / METRICS_FILE, kill_after, proc, timeout=300)
    finally:
        proc.kill()  # SIGKILL, wherever it is: mid-step or mid-checkpoint
        proc.communicate(timeout=60)
    assert proc.returncode == -9
    assert not (out / RUN_FILE).exists()
    resumed = subprocess.run(
        [*cli_args(out, steps), "--resume"], env=child_env(), capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = run_training(tiny_config(tmp_path / "whole", steps=steps), show_progress=False)
    record = json.loads((out / RUN_FILE).read_text())
    got = [r["loss"] for r in record["losses"]]
    assert got == pytest.approx([r["loss"] for r in whole.history], rel=1e-5)
    from safetensors.torch import load_file  # noqa: PLC0415 - only this test reads the file

    saved = load_file(out / LORA_FILE)
    expected = load_file(whole.output / LORA_FILE)
    assert saved.keys() == expected.keys()
    for key, tensor in expected.items():
        torch.testing.assert_close(saved[key], tensor, rtol=1e-5, atol=1e-7)


def test_resume_accepts_the_same_paths_written_another_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """status prints the resume command with absolute paths; a relative original must match."""
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(
        Path("run"), steps=2, checkpoint_every=1, data=Path(os.path.relpath(style_dir()))
    )
    with monkeypatch.context() as patch:
        interrupt_at(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, show_progress=False)
    again = replace(cfg, output=tmp_path / "run", data=style_dir(), resume="latest")
    assert len(run_training(again, show_progress=False).history) == 2


def test_resume_refuses_a_checkpoint_of_another_process_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(tmp_path / "run", steps=2, checkpoint_every=1)
    with monkeypatch.context() as patch:
        interrupt_at(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            run_training(cfg, show_progress=False)
    state_file = cfg.output / CHECKPOINTS_DIR / "step-000001" / STATE_JSON
    state = json.loads(state_file.read_text())
    assert state["processes"] == 1
    state_file.write_text(json.dumps({**state, "processes": 2}))  # as if two processes wrote it
    with pytest.raises(UsageError, match=r"written by 2 training process.*this run has 1"):
        run_training(replace(cfg, resume="latest"), show_progress=False)
