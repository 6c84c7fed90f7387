"""A tiny random Stable-Diffusion-like pipeline and procedural style images, built offline.

The smoke run and the tests need a real diffusers folder (the same `from_pretrained` path a real
checkpoint takes) without any download, so everything here is built from code and a seed. Build it
at run time with the installed transformers: a tokenizer saved by transformers 5 has no
vocab.json/merges.txt and transformers 4 could not read it back.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from stylelora.hf import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

SPECIALS = ("<|startoftext|>", "<|endoftext|>")
WORDS = ("a", "photo", "of", "style", "painting", "in", "the", "texture", "pattern", "art")
RESOLUTION = 32  # pixels; the tiny VAE downsamples once, so latents are 16x16
MAX_LENGTH = 77


def tiny_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-style BPE vocabulary: specials, printable ASCII (+ `</w>` forms), a few whole words."""
    tokens: list[str] = list(SPECIALS)
    for code in range(33, 127):
        tokens += [chr(code), chr(code) + "</w>"]
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        pieces = [*word[:-1], word[-1] + "</w>"]
        left = pieces[0]
        for right in pieces[1:]:
            merges.append((left, right))
            left += right
            tokens.append(left)
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    return vocab, list(dict.fromkeys(merges))


def build_tokenizer() -> CLIPTokenizer:
    """A real CLIPTokenizer built in memory (transformers 5) or from temp files (transformers 4)."""
    vocab, merges = tiny_vocab()
    if int(transformers.__version__.split(".")[0]) >= 5:
        # transformers 5 silently ignores vocab_file/merges_file and builds an empty tokenizer;
        # merges must be tuples here (see facts/training.md, pitfall 2).
        return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_LENGTH)  # type: ignore[arg-type]  # stubs say list[str]; v5 needs tuples
    with tempfile.TemporaryDirectory() as tmp:  # pragma: no cover - transformers 4 only
        vocab_file, merges_file = Path(tmp, "vocab.json"), Path(tmp, "merges.txt")
        vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
        lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
        merges_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return CLIPTokenizer(
            vocab_file=str(vocab_file), merges_file=str(merges_file), model_max_length=MAX_LENGTH
        )


def build_text_encoder(vocab_size: int) -> CLIPTextModel:
    # eos must match the tokenizer: with the legacy eos id 2 the pooled output would pick the
    # highest id, which is the added placeholder (facts/training.md, pitfall 10).
    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=MAX_LENGTH,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModel(config)


def build_unet() -> UNet2DConditionModel:
    model: UNet2DConditionModel = UNet2DConditionModel(
        sample_size=RESOLUTION // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    return model


def build_vae() -> AutoencoderKL:
    model: AutoencoderKL = AutoencoderKL(
        sample_size=RESOLUTION,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
    )
    return model


def build_scheduler() -> DDIMScheduler:
    """The SD-1.x noise schedule; steps_offset=1 avoids a deprecation warning on load."""
    model: DDIMScheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return model


def build_tiny_pipeline(seed: int = 0) -> StableDiffusionPipeline:
    """Random weights from `seed`: same seed, same weights (within one torch version)."""
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    return StableDiffusionPipeline(
        vae=build_vae(),
        text_encoder=build_text_encoder(len(tokenizer)),
        tokenizer=tokenizer,
        unet=build_unet(),
        # The annotations say these are required; diffusers documents None for all three.
        scheduler=build_scheduler(),  # type: ignore[arg-type]  # a KarrasDiffusionSchedulers member
        safety_checker=None,  # type: ignore[arg-type]
        feature_extractor=None,  # type: ignore[arg-type]
        image_encoder=None,  # type: ignore[arg-type]
        requires_safety_checker=False,
    )


def write_tiny_model(folder: Path, seed: int = 0) -> Path:
    """Save the tiny pipeline as a diffusers folder (the layout a real SD checkpoint has)."""
    build_tiny_pipeline(seed).save_pretrained(folder)
    return folder


def style_image(index: int, size: tuple[int, int] = (RESOLUTION, RESOLUTION)) -> Image.Image:
    """A procedural "style": coloured stripes or checks with a little noise, from `index`."""
    rng = np.random.default_rng(index)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    period = 4 + 2 * (index % 3)
    stripes = ((xx + (yy if index % 2 else 0)) // period) % 2
    colours = rng.uniform(0, 255, size=(2, 3))
    pixels = np.where(stripes[..., None] == 1, colours[0], colours[1])
    pixels = pixels + rng.normal(0, 12, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def write_style_images(folder: Path, count: int = 4, mixed: bool = True) -> list[Path]:
    """PNG style images; with `mixed`, the last one has another size and mode (exercises conversion)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        image = style_image(index)
        if mixed and index == count - 1:
            image = style_image(index, (RESOLUTION + 8, RESOLUTION + 4)).convert("P")
        path = folder / f"style_{index:02d}.png"
        image.save(path)
        paths.append(path)
    return paths
