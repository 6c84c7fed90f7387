"""The base model and what is trainable in it: LoRA on the UNet, one token-embedding row.

Everything else (the VAE, the UNet base weights, the rest of the text encoder, every other
embedding row) stays frozen. The whole embedding matrix has to be an optimizer parameter (the
lookup has no per-row parameters), so a gradient hook zeroes every row but the placeholder's,
its param group has no weight decay, and the other rows are restored after each step (the same
three guards as diffusers' textual_inversion.py; AdamW's decoupled decay moves zero-gradient rows).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import LoraConfig
from safetensors import SafetensorError
from torch import nn
from torch.utils.hooks import RemovableHandle
from transformers import CLIPTextModel, CLIPTokenizer

from stylelora.config import LORA_TARGETS
from stylelora.errors import ModelError, UsageError
from stylelora.hf import AutoencoderKL, DDPMScheduler, UNet2DConditionModel

log = logging.getLogger(__name__)

REQUIRED_FILES = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "scheduler/scheduler_config.json",
)
WEIGHT_FOLDERS = ("unet", "vae", "text_encoder")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
LORA_WEIGHT_DECAY = 1e-2
# With --online, fetch only the diffusers layout, not the single-file checkpoints many repos carry.
SNAPSHOT_FILES = [
    "model_index.json",
    "scheduler/*",
    "tokenizer/*",
    "text_encoder/*",
    "unet/*",
    "vae/*",
]
SKIPPED_FILES = ["*.ckpt", "*.msgpack", "*.onnx", "*.h5", "*.pb"]


@dataclass
class Components:
    """The parts of a Stable Diffusion checkpoint that training uses."""

    tokenizer: CLIPTokenizer
    text_encoder: CLIPTextModel
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler: DDPMScheduler


@dataclass
class Trainables:
    """The trainable tensors and the bookkeeping that keeps the other embedding rows fixed."""

    lora: list[nn.Parameter]
    embedding: nn.Parameter
    token_id: int
    original_embedding: torch.Tensor
    initial_lora: list[torch.Tensor] = field(default_factory=list)
    hooks: list[RemovableHandle] = field(default_factory=list)

    def parameters(self) -> list[nn.Parameter]:
        return [*self.lora, self.embedding]


def resolve_model(name: str, online: bool) -> Path:
    """A local diffusers folder, or a repo id already in the Hugging Face cache."""
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        return check_model_folder(path)
    from huggingface_hub import snapshot_download  # noqa: PLC0415 - only for repo ids

    try:
        folder = snapshot_download(
            name,
            local_files_only=not online,
            allow_patterns=SNAPSHOT_FILES,
            ignore_patterns=SKIPPED_FILES,
        )
        return check_model_folder(Path(folder))
    except (OSError, ValueError) as err:  # LocalEntryNotFoundError is an OSError
        fix = "pass a local diffusers folder" + ("" if online else ", or --online to download it")
        raise ModelError(
            f"model {name} is neither a folder nor in the Hugging Face cache",
            why=_first_line(err),
            fix=fix,
        ) from err


def check_model_folder(path: Path) -> Path:
    """Fail early and clearly on a missing or incomplete diffusers folder."""
    if not path.is_dir():
        raise ModelError(
            f"model folder {path} does not exist",
            fix="pass --model DIR, a diffusers Stable Diffusion folder",
        )
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    missing += [f"{name}/ weights" for name in WEIGHT_FOLDERS if not _has_weights(path / name)]
    if not (path / "tokenizer").is_dir():
        missing.append("tokenizer/")
    if missing:
        raise ModelError(
            f"model folder {path} is incomplete: missing {', '.join(missing)}",
            fix="pass a folder written by StableDiffusionPipeline.save_pretrained",
        )
    return path


def _has_weights(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.endswith(WEIGHT_SUFFIXES) for p in folder.iterdir())


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def load_components(path: Path, device: torch.device, dtype: torch.dtype) -> Components:
    """Load each part with `from_pretrained(subfolder=...)`: tiny and real checkpoints alike."""
    try:
        tokenizer = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(path, subfolder="text_encoder")
        # Cast after loading: diffusers 0.42 deprecates torch_dtype for dtype, 0.41 lacks dtype.
        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae")
        scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler")
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, SafetensorError) as err:
        raise ModelError(f"cannot load the model in {path}", why=_first_line(err)) from err
    # fp32: the text encoder holds the trainable embedding row.
    text_encoder.to(device)  # type: ignore[arg-type]  # transformers' decorated .to() is mistyped
    for model in (unet, vae):
        model.to(device)
        if dtype != torch.float32:
            model.to(dtype)
    return Components(tokenizer, text_encoder, unet, vae, scheduler)


def add_placeholder_token(parts: Components, token: str, init_word: str) -> int:
    """Add `token`, give it the embedding of `init_word`; return its id."""
    init_ids = parts.tokenizer.encode(init_word, add_special_tokens=False)
    if len(init_ids) != 1:
        raise UsageError(
            f"--init-word {init_word!r} is {len(init_ids)} tokens, not one",
            fix="choose a single-token word",
        )
    known = len(parts.tokenizer.encode(token, add_special_tokens=False)) == 1
    if known or parts.tokenizer.add_tokens([token]) != 1:
        raise UsageError(
            f"--token {token!r} is already in the tokenizer's vocabulary", fix="choose a new token"
        )
    token_id = parts.tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int):
        raise ModelError(f"the tokenizer did not give {token!r} a single id")
    if len(parts.tokenizer) > embedding_matrix(parts.text_encoder).shape[0]:
        # mean_resizing=False: the new row is overwritten just below (facts, pitfall 8).
        parts.text_encoder.resize_token_embeddings(len(parts.tokenizer), mean_resizing=False)
    weight = embedding_matrix(parts.text_encoder)
    with torch.no_grad():
        weight[token_id] = weight[init_ids[0]]
    return token_id


def embedding_matrix(text_encoder: CLIPTextModel) -> nn.Parameter:
    """The token-embedding matrix, found the same way in transformers 4 and 5.

    transformers 5 flattened CLIPTextModel (no `.text_model`), so never go through attributes.
    """
    weight = text_encoder.get_input_embeddings().weight
    if not isinstance(weight, nn.Parameter):
        raise ModelError("the text encoder's input embeddings have no weight matrix")
    return weight


def add_lora(unet: UNet2DConditionModel, rank: int, alpha: int, seed: int) -> list[nn.Parameter]:
    """LoRA on every attention projection, in fp32 even when the UNet is bf16."""
    torch.manual_seed(seed)  # the "gaussian" init draws from the global generator
    config = LoraConfig(
        r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=list(LORA_TARGETS)
    )
    unet.add_adapter(config)
    params = [p for p in unet.parameters() if p.requires_grad]
    for param in params:
        param.data = param.data.float()
    return params


def mask_gradient(embedding: nn.Parameter, token_id: int) -> RemovableHandle:
    """Zero the gradient of every embedding row except the placeholder's."""
    mask = torch.zeros(embedding.shape[0], 1, device=embedding.device, dtype=embedding.dtype)
    mask[token_id] = 1.0
    handle: RemovableHandle = embedding.register_hook(lambda grad: grad * mask)  # type: ignore[no-untyped-call]  # torch leaves it untyped
    return handle


def setup_trainables(
    parts: Components, token_id: int, rank: int, alpha: int, seed: int
) -> Trainables:
    """Freeze everything, then add LoRA and open the one embedding row."""
    for module in (parts.unet, parts.vae, parts.text_encoder):
        module.requires_grad_(False)
    lora = add_lora(parts.unet, rank, alpha, seed)
    if not lora:
        raise ModelError(
            "the UNet has no attention projections for LoRA",
            why=f"looked for {', '.join(LORA_TARGETS)}",
        )
    embedding = embedding_matrix(parts.text_encoder)
    embedding.requires_grad_(True)
    hook = mask_gradient(embedding, token_id)
    original = embedding.detach().clone()
    initial_lora = [param.detach().clone() for param in lora]
    return Trainables(lora, embedding, token_id, original, initial_lora, [hook])


def trainable_names(parts: Components) -> set[str]:
    """Names of every parameter that requires a gradient, prefixed by its component."""
    modules = {"unet": parts.unet, "vae": parts.vae, "text_encoder": parts.text_encoder}
    return {
        f"{prefix}.{name}"
        for prefix, module in modules.items()
        for name, param in module.named_parameters()
        if param.requires_grad
    }


def make_optimizer(trainables: Trainables, lr: float, embedding_lr: float) -> torch.optim.AdamW:
    groups = [
        {"params": trainables.lora, "lr": lr, "weight_decay": LORA_WEIGHT_DECAY},
        {"params": [trainables.embedding], "lr": embedding_lr, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups)


def restore_frozen_rows(trainables: Trainables) -> float:
    """Put every non-placeholder row back; return how far they had moved (0.0 when guarded).

    Measured before the restore, so a broken guard shows up here instead of being hidden by it.
    """
    weight, token_id = trainables.embedding, trainables.token_id
    with torch.no_grad():
        moved = (weight - trainables.original_embedding).abs()
        moved[token_id] = 0.0
        drift = float(moved.max())
        learned = weight[token_id].clone()
        weight.copy_(trainables.original_embedding)
        weight[token_id] = learned
    return drift


def enable_gradient_checkpointing(parts: Components) -> None:
    """Trade compute for memory in the UNet and VAE (both use non-reentrant checkpoints)."""
    parts.unet.enable_gradient_checkpointing()
    parts.vae.enable_gradient_checkpointing()
