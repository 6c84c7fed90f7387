"""The command line: every bad input is one `error:` line and an exit code; train, sample, smoke."""

from __future__ import annotations

import ast
import json
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from stylelora_kit import preserved_environ, style_dir, tiny_model_dir

from stylelora import losses, model, outputs
from stylelora.cli import main
from stylelora.errors import (
    EXIT_CHECKS_FAILED,
    EXIT_DATA,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_OUTPUT,
    EXIT_TRAINING,
    EXIT_USAGE,
)

PACKAGE = Path(model.__file__).parent
TINY_TRAIN = [
    "--resolution",
    "32",
    "--batch-size",
    "2",
    "--steps",
    "2",
    "--device",
    "cpu",
    "--mixed-precision",
    "no",
]


@pytest.fixture(autouse=True)
def restore_environ() -> Iterator[None]:
    with preserved_environ():
        yield


def copy_model(tmp: Path, remove: str = "", garbage: str = "") -> str:
    folder = Path(shutil.copytree(tiny_model_dir(), tmp / "model"))
    if remove:
        target = folder / remove
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    if garbage:
        (folder / garbage).write_bytes(b"not safetensors" * 8)
    return str(folder)


def data_with(tmp: Path, name: str, content: bytes) -> str:
    folder = Path(shutil.copytree(style_dir(), tmp / "data"))
    (folder / name).write_bytes(content)
    return str(folder)


def empty_dir(tmp: Path) -> str:
    (tmp / "empty").mkdir()
    return str(tmp / "empty")


def held_output(tmp: Path) -> str:
    (tmp / "out").mkdir()
    (tmp / "out" / "run.json").write_text("{}")
    return str(tmp / "out")


Args = Callable[[Path], list[str]]


def train_args(model_dir: Callable[[Path], str] | None = None, data: Callable[[Path], str] | None = None,
               output: Callable[[Path], str] | None = None, extra: tuple[str, ...] = ()) -> Args:  # fmt: skip
    def build(tmp: Path) -> list[str]:
        return [
            "train",
            "--model", model_dir(tmp) if model_dir else str(tiny_model_dir()),
            "--data", data(tmp) if data else str(style_dir()),
            "--output", output(tmp) if output else str(tmp / "out"),
            *TINY_TRAIN, *extra,
        ]  # fmt: skip

    return build


BAD_INPUTS = [
    pytest.param(
        train_args(model_dir=lambda t: str(t / "none")),
        EXIT_MODEL,
        r"model folder .*none does not exist",
        id="model-missing",
    ),
    pytest.param(
        train_args(
            model_dir=lambda t: copy_model(t, remove="unet/diffusion_pytorch_model.safetensors")
        ),
        EXIT_MODEL,
        r"is incomplete: missing unet/ weights",
        id="model-without-unet-weights",
    ),
    pytest.param(
        train_args(model_dir=lambda t: copy_model(t, remove="scheduler")),
        EXIT_MODEL,
        r"is incomplete: missing scheduler/scheduler_config.json",
        id="model-without-scheduler",
    ),
    pytest.param(
        train_args(model_dir=lambda t: copy_model(t, garbage="text_encoder/model.safetensors")),
        EXIT_MODEL,
        r"cannot load the model in .*model — ",
        id="model-corrupt-weights",
    ),
    pytest.param(
        train_args(model_dir=lambda t: "nobody/no-such-model"),
        EXIT_MODEL,
        r"model nobody/no-such-model is neither a folder nor in the Hugging Face cache — .* — .*--online",
        id="model-not-in-cache",
    ),
    pytest.param(
        train_args(data=lambda t: str(t / "none")),
        EXIT_DATA,
        r"data folder .*none does not exist",
        id="data-missing",
    ),
    pytest.param(
        train_args(data=empty_dir),
        EXIT_DATA,
        r"data folder .* holds no images",
        id="data-empty",
    ),
    pytest.param(
        train_args(data=lambda t: data_with(t, "notes.txt", b"hi")),
        EXIT_DATA,
        r"cannot read .*notes.txt as an image — not an image",
        id="data-non-image",
    ),
    pytest.param(
        train_args(data=lambda t: data_with(t, "x.png", b"\x89PNG\r\n\x1a\n")),
        EXIT_DATA,
        r"cannot read .*x.png as an image",
        id="data-corrupt-image",
    ),
    pytest.param(
        train_args(output=held_output),
        EXIT_OUTPUT,
        r"already holds a run \(run.json\) — pass --overwrite",
        id="output-holds-run",
    ),
    pytest.param(
        train_args(output=lambda t: str(Path(data_with(t, "f.png", b"")) / "f.png")),
        EXIT_OUTPUT,
        r"output path .* is a file",
        id="output-is-a-file",
    ),
    pytest.param(
        train_args(extra=("--steps", "0", "--rank", "0")),
        EXIT_USAGE,
        r"invalid options: --steps must be at least 1, got 0; --rank must be at least 1, got 0 — see --help",
        id="bad-numbers",
    ),
    pytest.param(
        train_args(extra=("--template", "a painting")),
        EXIT_USAGE,
        r"--template must contain \{token\} or <v_style>",
        id="template-without-token",
    ),
    pytest.param(
        train_args(extra=("--resolution", "36")),
        EXIT_USAGE,
        r"--resolution must be a multiple of 8",
        id="resolution-not-multiple-of-8",
    ),
    pytest.param(
        train_args(extra=("--device", "cuda")),
        EXIT_USAGE,
        r"--device cuda was asked for but torch sees no GPU",
        id="no-gpu",
    ),
]


@pytest.mark.parametrize(("args", "code", "message"), BAD_INPUTS)
def test_bad_input_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: Args, code: int, message: str
) -> None:
    if code == EXIT_USAGE and "cuda" in message and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(args(tmp_path)) == code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert re.search(message, errors[0]), errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() or code == EXIT_OUTPUT


def test_debug_adds_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*train_args(data=lambda t: str(t / "none"))(tmp_path), "--debug"]) == EXIT_DATA
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.rstrip().splitlines()[-1].startswith("error: data folder")


def test_non_finite_loss_exits_with_the_step_and_both_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(losses, "style_loss", lambda *a, **k: torch.full((2,), float("inf")))
    args = train_args(extra=("--timestep-cutoff", "1000"))(tmp_path)
    assert main(args) == EXIT_TRAINING
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"error: loss is not finite at step 1 — diffusion=[0-9.]+, style=inf — .*", line
    ), line
    assert list(tmp_path.iterdir()) == []


def test_train_then_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(train_args()(tmp_path)) == EXIT_OK
    out = capsys.readouterr().out
    assert "trained 2 steps" in out
    assert "python -m stylelora sample" in out
    sample = [
        "sample",
        "--model",
        str(tiny_model_dir()),
        "--lora",
        str(tmp_path / "out"),
        "--steps",
        "2",
        "--num-images",
        "2",
        "--device",
        "cpu",
    ]
    assert main(sample) == EXIT_OK
    pngs = sorted((tmp_path / "out" / "samples").iterdir())
    assert [p.name for p in pngs] == ["sample_00.png", "sample_01.png"]
    assert capsys.readouterr().out.split() == [str(p) for p in pngs]
    assert main(sample) == EXIT_OUTPUT  # a second render does not clobber the first
    assert main([*sample, "--overwrite", "--prompt", "a painting of <v_style>"]) == EXIT_OK


def test_sample_needs_a_trained_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", "--model", str(tiny_model_dir()), "--lora", str(tmp_path)]) == EXIT_MODEL
    assert re.search(
        r"run folder .* has no pytorch_lora_weights.safetensors, learned_embeds",
        capsys.readouterr().err,
    )


def smoke(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, object]]:
    code = main(["smoke", *args])
    out = capsys.readouterr().out
    return code, json.loads(out.strip().splitlines()[-1])


def test_smoke_passes_and_prints_one_json_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, verdict = smoke(capsys, "--output", str(tmp_path / "out"))
    assert verdict["ok"] is True, verdict["checks"]
    assert code == EXIT_OK
    assert set(verdict) == {"ok", "checks", "losses", "seconds", "versions", "output"}
    assert verdict["output"] == str(tmp_path / "out")
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == [
        "learned_embeds.safetensors",
        "metrics.jsonl",
        "pytorch_lora_weights.safetensors",
        "run.json",
        "sample.png",
    ]
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "out").iterdir()} == {0o644}


def test_smoke_refuses_an_output_that_holds_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, verdict = smoke(capsys, "--output", held_output(tmp_path))
    assert code == EXIT_OUTPUT
    assert verdict["ok"] is False
    assert "already holds a run" in str(verdict["error"])


def no_mask(embedding: torch.nn.Parameter, token_id: int) -> torch.utils.hooks.RemovableHandle:
    handle: torch.utils.hooks.RemovableHandle = embedding.register_hook(lambda grad: grad)  # type: ignore[no-untyped-call]
    return handle


def keep_modes(root: Path) -> None:
    """fix_modes that does nothing: safetensors' 0600 files stay 0600."""


@pytest.mark.parametrize(
    ("target", "replacement", "failing"),
    [
        pytest.param(
            model,
            ("mask_gradient", no_mask),
            {"frozen_rows_never_moved", "style_gradient"},
            id="no-gradient-mask",
        ),
        pytest.param(outputs, ("fix_modes", keep_modes), {"file_modes"}, id="no-mode-fix"),
    ],
)
def test_smoke_catches_a_deliberately_broken_build(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: object,
    replacement: tuple[str, object],
    failing: set[str],
) -> None:
    monkeypatch.setattr(target, *replacement)
    code, verdict = smoke(capsys)
    checks = verdict["checks"]
    assert isinstance(checks, dict)
    assert code == EXIT_CHECKS_FAILED
    assert verdict["ok"] is False
    assert {name for name, check in checks.items() if not check["ok"]} == failing


def test_stylelora_never_imports_bakery() -> None:
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "bakery" or n.startswith("bakery.") for n in names), path


def test_model_from_the_hugging_face_cache_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A repo id resolves to its cached snapshot with no network (the cache layout hub writes)."""
    from huggingface_hub import constants  # noqa: PLC0415 - patched for this test only

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--acme--tiny-sd"
    shutil.copytree(tiny_model_dir(), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    args = train_args(model_dir=lambda t: "acme/tiny-sd")(tmp_path)
    assert main(args) == EXIT_OK, capsys.readouterr().err
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["model_dir"] == str(repo / "snapshots" / commit)
