"""Two processes under `accelerate launch` (gloo on CPU) take the same steps as one process."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from stylelora_kit import REPO, tiny_config

from stylelora.checkpoint import complete_steps
from stylelora.metrics import METRICS_FILE, read_events
from stylelora.outputs import EMBEDS_FILE, LORA_FILE, RUN_FILE
from stylelora.train import run_training

STEPS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_two(output: Path) -> subprocess.CompletedProcess[str]:
    cfg = tiny_config(output)
    launcher = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(free_port()),
        "-m",
        "stylelora",
    ]
    train = [
        "train", "--model", cfg.model, "--data", str(cfg.data), "--output", str(output),
        "--steps", str(STEPS), "--lr", "1e-3", "--embedding-lr", "5e-3", "--rank", "4",
        "--alpha", "8", "--style-weight", "1.0", "--resolution", "32", "--device", "cpu",
        "--mixed-precision", "no", "--checkpoint-every", "1",
        "--batch-size", "1",  # per process: a global batch of 2
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [*launcher, *train], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="accelerate missing")
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    two = launch_two(tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    one = run_training(
        tiny_config(tmp_path / "one", steps=STEPS, batch_size=2), show_progress=False
    )
    record = json.loads((tmp_path / "two" / RUN_FILE).read_text())
    assert record["processes"] == 2
    got = [r["loss"] for r in record["losses"]]
    assert got == pytest.approx([r["loss"] for r in one.history], rel=1e-4)
    assert [r["style_samples"] for r in record["losses"]] == [
        r["style_samples"] for r in one.history
    ]
    for name in (LORA_FILE, EMBEDS_FILE):
        saved, expected = load_file(tmp_path / "two" / name), load_file(one.output / name)
        assert saved.keys() == expected.keys()
        for key, tensor in expected.items():
            # Adam divides by sqrt(v): where a gradient is ~0, float noise from the all-reduce
            # moves the update by a small fraction of --lr (1e-3); wrong data moves it by ~lr.
            torch.testing.assert_close(saved[key], tensor, rtol=1e-4, atol=1e-4)
    # Only the main process wrote: each step logged once, each checkpoint once, no strays.
    steps = [
        e["step"] for e in read_events(tmp_path / "two" / METRICS_FILE) if e["event"] == "step"
    ]
    assert steps == [1, 2, 3]
    assert [s for s, _ in complete_steps(tmp_path / "two")] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "checkpoints", EMBEDS_FILE, METRICS_FILE, LORA_FILE, RUN_FILE,
    ]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
