"""The options of a run, as frozen objects validated before anything heavy is loaded."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from stylelora.errors import UsageError

StyleNorm = Literal["relative", "none"]
FeatureKind = Literal["vae", "vgg"]
Precision = Literal["auto", "no", "bf16"]
DeviceName = Literal["auto", "cpu", "cuda"]

DEFAULT_PLACEHOLDER = "<v_style>"
DEFAULT_TEMPLATE = "a photo of {token}"
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclass(frozen=True)
class TrainConfig:
    """Everything `train` (and the smoke run, through the same path) needs to know."""

    model: str
    data: Path
    output: Path
    token: str = DEFAULT_PLACEHOLDER
    init_word: str = "style"
    template: str = DEFAULT_TEMPLATE
    steps: int = 1000
    lr: float = 1e-4
    embedding_lr: float = 5e-3
    rank: int = 4
    alpha: int = 4
    style_weight: float = 0.1
    timestep_cutoff: int = 500
    style_norm: StyleNorm = "relative"
    style_layers: tuple[int, ...] = (0, 1, 2, 3)
    features: FeatureKind = "vae"
    vgg_weights: Path | None = None
    resolution: int = 512
    batch_size: int = 1
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    seed: int = 0
    mixed_precision: Precision = "auto"
    device: DeviceName = "auto"
    gradient_checkpointing: bool = False
    lr_warmup: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 3
    resume: str | None = None
    validate_every: int = 0
    validation_steps: int = 25
    overwrite: bool = False
    online: bool = False

    @property
    def prompt(self) -> str:
        """The training prompt: the template with `{token}` replaced by the placeholder."""
        return self.template.replace("{token}", self.token)

    def validate(self) -> TrainConfig:
        """Raise one UsageError naming every bad option; return self when all are fine."""
        problems = [text for bad, text in self._rules() if bad]
        if problems:
            raise UsageError("invalid options: " + "; ".join(problems), fix="see --help")
        return self

    def _rules(self) -> list[tuple[bool, str]]:
        return [
            (self.steps < 1, f"--steps must be at least 1, got {self.steps}"),
            (not self.lr > 0, f"--lr must be positive, got {self.lr}"),
            (not self.embedding_lr >= 0, f"--embedding-lr must be >= 0, got {self.embedding_lr}"),
            (self.rank < 1, f"--rank must be at least 1, got {self.rank}"),
            (not self.alpha > 0, f"--alpha must be positive, got {self.alpha}"),
            (not self.style_weight >= 0, f"--style-weight must be >= 0, got {self.style_weight}"),
            (self.timestep_cutoff < 0, "--timestep-cutoff must be >= 0"),
            (not self.style_layers, "--style-layers must name at least one layer"),
            (any(i < 0 for i in self.style_layers), "--style-layers must be >= 0"),
            (
                self.features == "vgg" and self.vgg_weights is None,
                "--features vgg needs --vgg-weights FILE",
            ),
            (
                self.resolution < 8 or self.resolution % 8 != 0,
                f"--resolution must be a multiple of 8, got {self.resolution}",
            ),
            (self.batch_size < 1, f"--batch-size must be at least 1, got {self.batch_size}"),
            (self.grad_accum < 1, f"--grad-accum must be at least 1, got {self.grad_accum}"),
            (not self.max_grad_norm > 0, "--max-grad-norm must be positive"),
            (self.lr_warmup < 0, f"--lr-warmup must be >= 0, got {self.lr_warmup}"),
            (self.checkpoint_every < 0, "--checkpoint-every must be >= 0 (0: no checkpoints)"),
            (self.keep_checkpoints < 1, "--keep-checkpoints must be at least 1"),
            (self.validate_every < 0, "--validate-every must be >= 0 (0: no validation)"),
            (self.validation_steps < 1, "--validation-steps must be at least 1"),
            (
                not self.token.strip() or " " in self.token,
                f"--token must be one word, got {self.token!r}",
            ),
            (self.token not in self.prompt, f"--template must contain {{token}} or {self.token}"),
        ]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready copy (paths as strings, tuples as lists) for run.json."""
        out = asdict(self)
        if Path(self.model).expanduser().exists():  # a local folder, not a repo id
            out["model"] = os.path.abspath(Path(self.model).expanduser())
        for key, value in out.items():
            if isinstance(value, Path):  # absolute: a resume from another folder compares equal
                out[key] = os.path.abspath(value.expanduser())
            elif isinstance(value, tuple):
                out[key] = list(value)
        out["prompt"] = self.prompt
        return out


@dataclass(frozen=True)
class SampleConfig:
    """Options of `sample`: render images from a base model plus a trained run folder."""

    model: str
    lora: Path
    output: Path
    prompt: str | None = None
    negative_prompt: str = ""
    num_images: int = 1
    steps: int = 30
    guidance: float = 7.5
    seed: int = 0
    resolution: int | None = None
    lora_scale: float = 1.0
    mixed_precision: Precision = "auto"
    device: DeviceName = "auto"
    overwrite: bool = False
    online: bool = False

    def validate(self) -> SampleConfig:
        problems = [
            text
            for bad, text in (
                (self.num_images < 1, "--num-images must be at least 1"),
                (self.steps < 1, "--steps must be at least 1"),
                (
                    self.resolution is not None and self.resolution % 8 != 0,
                    "--resolution must be a multiple of 8",
                ),
            )
            if bad
        ]
        if problems:
            raise UsageError("invalid options: " + "; ".join(problems), fix="see --help")
        return self
