"""Command line: `python -m stylelora {train,sample,smoke}`.

`main` is the single place that turns a StyleloraError into one `error: ...` line on stderr and
an exit code (a traceback only with --debug). Training modules are imported inside the command
functions, after `prepare_environment`, because huggingface_hub reads its settings at import.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stylelora import __version__
from stylelora.config import SampleConfig, TrainConfig
from stylelora.env import prepare_environment
from stylelora.errors import (
    EXIT_CHECKS_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    StyleloraError,
)

log = logging.getLogger("stylelora")


def int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err


TRAIN_DEFAULTS = TrainConfig(model="", data=Path(), output=Path())
TRAIN_OPTIONS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--model", "diffusers SD folder, or a repo id in the HF cache", {"required": True}),
    ("--data", "folder of style images", {"required": True, "type": Path}),
    ("--output", "run folder to create", {"required": True, "type": Path}),
    ("--token", "placeholder token", {}),
    ("--init-word", "single-token word the placeholder starts from", {}),
    ("--template", "training prompt; {token} becomes the placeholder", {}),
    ("--steps", "optimizer steps", {"type": int}),
    ("--lr", "LoRA learning rate", {"type": float}),
    ("--embedding-lr", "placeholder-token learning rate", {"type": float}),
    ("--rank", "LoRA rank", {"type": int}),
    ("--alpha", "LoRA alpha (scale = alpha / rank)", {"type": int}),
    ("--style-weight", "weight of the style term", {"type": float}),
    ("--timestep-cutoff", "style term off above this timestep", {"type": int}),
    ("--style-norm", "Gram distance normalisation", {"choices": ["relative", "none"]}),
    ("--style-layers", "feature layers, comma-separated", {"type": int_list}),
    ("--features", "style feature extractor", {"choices": ["vae", "vgg"]}),
    ("--vgg-weights", "local VGG-19 weights (.pth or .safetensors)", {"type": Path}),
    ("--resolution", "square training size in pixels", {"type": int}),
    ("--batch-size", "images per micro-batch", {"type": int}),
    ("--grad-accum", "micro-batches per optimizer step", {"type": int}),
    ("--max-grad-norm", "gradient clipping norm", {"type": float}),
    ("--seed", "seeds LoRA init, data order, noise and timesteps", {"type": int}),
    ("--gradient-checkpointing", "less memory, more compute", {"action": "store_true"}),
    ("--lr-warmup", "steps of linear learning-rate warm-up", {"type": int}),
    ("--checkpoint-every", "write a resumable checkpoint every N steps (0: never)", {"type": int}),
    ("--keep-checkpoints", "keep only the newest K checkpoints", {"type": int}),
    (
        "--resume",
        "continue from the newest checkpoint in --output (`latest`, the default) or from DIR",
        {"nargs": "?", "const": "latest", "metavar": "DIR|latest"},
    ),
    ("--validate-every", "render validation images every N steps (0: never)", {"type": int}),
    ("--validation-steps", "inference steps of each validation image", {"type": int}),
)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(quiet=args.quiet, debug=args.debug)
    prepare_environment(online=getattr(args, "online", False))
    try:
        return int(args.command(args))
    except StyleloraError as err:
        return report_error(err.render(), err.exit_code, args.debug)
    except KeyboardInterrupt:
        return report_error("interrupted", EXIT_INTERRUPTED, args.debug)
    except Exception as err:  # the boundary: anything unexpected becomes one line too
        text = f"unexpected {type(err).__name__}: {err}"
        return report_error(
            " ".join(text.split()) + " — rerun with --debug for the traceback",
            EXIT_INTERNAL,
            args.debug,
        )


def report_error(message: str, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"error: {message}", file=sys.stderr)
    return code


def configure_logging(quiet: bool, debug: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    if not debug:
        # Library deprecation chatter is not actionable for a user of this tool.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    common.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors on stderr"
    )
    parser = argparse.ArgumentParser(
        prog="python -m stylelora",
        description="Style LoRA + placeholder-token training for Stable Diffusion.",
    )
    parser.add_argument("--version", action="version", version=f"stylelora {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    add_train_parser(commands.add_parser("train", parents=[common], help="train a style LoRA"))
    add_sample_parser(
        commands.add_parser("sample", parents=[common], help="render images with a trained run")
    )
    add_smoke_parser(
        commands.add_parser("smoke", parents=[common], help="train a tiny random model and check")
    )
    return parser


def add_train_parser(p: argparse.ArgumentParser) -> None:
    """Options from TRAIN_OPTIONS; each default comes from the TrainConfig field of that name."""
    p.set_defaults(command=cmd_train)
    for flag, help_text, keywords in TRAIN_OPTIONS:
        default = getattr(TRAIN_DEFAULTS, flag[2:].replace("-", "_"))
        shown = not keywords.get("required") and "action" not in keywords and default is not None
        extra: dict[str, Any] = {"default": default} if shown else {}
        suffix = " (default: %(default)s)" if shown else ""
        p.add_argument(flag, help=help_text + suffix, **keywords, **extra)
    add_device_options(p)


def add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mixed-precision",
        choices=["auto", "no", "bf16"],
        default="auto",
        help="auto: bf16 on GPUs that support it",
    )
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="cuda also means ROCm GPUs",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --output")
    p.add_argument(
        "--online", action="store_true", help="allow Hugging Face downloads (offline by default)"
    )


def add_sample_parser(p: argparse.ArgumentParser) -> None:
    p.set_defaults(command=cmd_sample)
    p.add_argument("--model", required=True, help="the base model the run was trained on")
    p.add_argument("--lora", required=True, type=Path, help="run folder written by train")
    p.add_argument("--prompt", help="default: the prompt the run was trained with")
    p.add_argument("--negative-prompt", default="")
    p.add_argument("--output", type=Path, help="folder for the PNGs (default LORA/samples)")
    p.add_argument("--num-images", type=int, default=1)
    p.add_argument("--steps", type=int, default=30, help="inference steps (default %(default)s)")
    p.add_argument("--guidance", type=float, default=7.5, help="(default %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resolution", type=int, help="default: the training resolution")
    p.add_argument("--lora-scale", type=float, default=1.0, help="(default %(default)s)")
    add_device_options(p)


def add_smoke_parser(p: argparse.ArgumentParser) -> None:
    p.set_defaults(command=cmd_smoke)
    p.add_argument(
        "--output", type=Path, help="keep the outputs here (default: a temp folder, removed)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --output")
    p.add_argument("--steps", type=int, default=10, help="training steps (default %(default)s)")
    p.add_argument(
        "--json",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="verdict as one JSON line (default)",
    )


def cmd_train(args: argparse.Namespace) -> int:
    from stylelora.hf import quiet_libraries  # noqa: PLC0415 - after prepare_environment
    from stylelora.train import run_training  # noqa: PLC0415 - after prepare_environment

    quiet_libraries()
    fields = set(TrainConfig.__dataclass_fields__)
    cfg = TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})
    result = run_training(cfg)
    print(train_summary(result.history, result.seconds, result.output, cfg))
    return EXIT_OK


def train_summary(
    history: list[dict[str, float | int]], seconds: float, output: Path, cfg: TrainConfig
) -> str:
    tail = history[-10:]
    mean = {k: sum(float(r[k]) for r in tail) / len(tail) for k in ("loss", "diffusion", "style")}
    return "\n".join([
        f"trained {len(history)} steps in {seconds:.1f} s ({len(history) / max(seconds, 1e-9):.2f} it/s)",
        f"final loss {mean['loss']:.4f} (diffusion {mean['diffusion']:.4f}, style {mean['style']:.4f}; mean of the last {len(tail)} steps)",
        f"wrote {output}: pytorch_lora_weights.safetensors, learned_embeds.safetensors, run.json",
        f"render with: python -m stylelora sample --model {cfg.model} --lora {output} --prompt {json.dumps(cfg.prompt)}",
    ])  # fmt: skip


def cmd_sample(args: argparse.Namespace) -> int:
    from stylelora.hf import quiet_libraries  # noqa: PLC0415 - after prepare_environment
    from stylelora.inference import run_sample  # noqa: PLC0415 - after prepare_environment

    quiet_libraries()
    fields = set(SampleConfig.__dataclass_fields__)
    values = {k: v for k, v in vars(args).items() if k in fields}
    values["output"] = args.output or args.lora / "samples"
    for path in run_sample(SampleConfig(**values)):
        print(path)
    return EXIT_OK


def cmd_smoke(args: argparse.Namespace) -> int:
    from stylelora.hf import quiet_libraries  # noqa: PLC0415 - after prepare_environment
    from stylelora.smoke import run_smoke  # noqa: PLC0415 - after prepare_environment

    quiet_libraries()
    try:
        verdict = run_smoke(args.output, overwrite=args.overwrite, steps=args.steps)
    except StyleloraError as err:  # still one JSON verdict on stdout, then the usual error line
        print(json.dumps({"ok": False, "checks": {}, "error": err.render(), "output": None}))
        raise
    print_verdict(verdict, as_json=args.json)
    return EXIT_OK if verdict["ok"] else EXIT_CHECKS_FAILED


def print_verdict(verdict: dict[str, Any], as_json: bool) -> None:
    for name, check in verdict["checks"].items():
        log.info("%s %s: %s", "ok  " if check["ok"] else "FAIL", name, check["detail"])
    log.info("smoke %s in %.1f s", "passed" if verdict["ok"] else "FAILED", verdict["seconds"])
    if as_json:
        print(json.dumps(verdict, sort_keys=True))
    else:
        print("ok" if verdict["ok"] else "FAILED")
