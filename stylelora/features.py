"""Feature extractors for the Gram style loss.

The default needs no download: the frozen VAE encoder's intermediate features (the output of
each down block's last resnet, before its downsampler). A VGG-19 is allowed only from a local
weights file (torchvision's `vgg19` state dict, or just its `features.*` part); it is built here
in plain torch with torchvision's layer indices, because torchvision is not a dependency.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import torch
import torch.utils.checkpoint
from safetensors.torch import load_file
from torch import nn

from stylelora.errors import ModelError, UsageError
from stylelora.hf import AutoencoderKL

FeatureExtractor = Callable[[torch.Tensor], list[torch.Tensor]]

VGG19_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                       512, 512, 512, 512, "M", 512, 512, 512, 512, "M")  # fmt: skip
VGG19_STYLE_RELUS = (1, 6, 11, 20, 29)  # relu1_1 ... relu5_1, the layers Gatys et al. use
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VaeFeatures:
    """Features of the frozen VAE encoder at the chosen down blocks (0 = full resolution)."""

    def __init__(self, vae: AutoencoderKL, layers: Sequence[int], checkpoint: bool = False) -> None:
        blocks = len(vae.encoder.down_blocks)
        self.layers = sorted({i for i in layers if i < blocks})
        if not self.layers:
            raise UsageError(
                f"--style-layers {list(layers)} names no VAE encoder block",
                fix=f"use 0..{blocks - 1}",
            )
        self.vae = vae
        self.checkpoint = checkpoint

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        encoder = self.vae.encoder
        hidden = encoder.conv_in(images.to(encoder.conv_in.weight.dtype))
        features = []
        for index, block in enumerate(encoder.down_blocks[: self.layers[-1] + 1]):
            for resnet in cast(nn.ModuleList, block.resnets):
                hidden = self._run(resnet, hidden)
            if index in self.layers:
                features.append(hidden)
            for downsampler in cast(nn.ModuleList | None, block.downsamplers) or []:
                hidden = downsampler(hidden)
        return features

    def _run(self, resnet: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if self.checkpoint and torch.is_grad_enabled():
            out = torch.utils.checkpoint.checkpoint(resnet, hidden, None, use_reentrant=False)
            return out  # type: ignore[no-any-return]  # checkpoint() is typed as returning Any
        return resnet(hidden, None)  # type: ignore[no-any-return]  # nn.Module.__call__ is Any


class VggFeatures(nn.Module):
    """VGG-19 `features` with torchvision's indices, so its state dict loads as is."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, layers: Sequence[int]) -> None:
        super().__init__()
        self.relus = sorted({VGG19_STYLE_RELUS[i] for i in layers if i < len(VGG19_STYLE_RELUS)})
        if not self.relus:
            raise UsageError(f"--style-layers {list(layers)} names no VGG layer", fix="use 0..4")
        self.features = nn.Sequential(*_vgg_modules(VGG19_LAYOUT)[: self.relus[-1] + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        hidden = ((images.float() + 1) / 2 - self.mean) / self.std
        features = []
        for index, module in enumerate(self.features):
            hidden = module(hidden)
            if index in self.relus:
                features.append(hidden)
        return features


def _vgg_modules(layout: Sequence[int | str]) -> list[nn.Module]:
    modules: list[nn.Module] = []
    channels = 3
    for item in layout:
        if item == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [
                nn.Conv2d(channels, int(item), kernel_size=3, padding=1),
                nn.ReLU(inplace=False),
            ]
            channels = int(item)
    return modules


def load_vgg(path: Path, layers: Sequence[int], device: torch.device) -> VggFeatures:
    """A frozen VGG-19 from a local .safetensors/.pth file; a clear error for anything else."""
    model = VggFeatures(layers)
    state = _read_state_dict(path)
    wanted = model.features.state_dict()
    found = {key: state.get(f"features.{key}", state.get(key)) for key in wanted}
    missing = [key for key, value in found.items() if value is None]
    if missing:
        raise ModelError(
            f"{path} does not hold VGG-19 weights", why=f"missing features.{missing[0]}"
        )
    try:
        model.features.load_state_dict({k: v for k, v in found.items() if v is not None})
    except RuntimeError as err:
        raise ModelError(
            f"{path} does not hold VGG-19 weights", why=str(err).splitlines()[0]
        ) from err
    return model.requires_grad_(False).eval().to(device)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UsageError(f"VGG weights file {path} does not exist", fix="pass --vgg-weights FILE")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ModelError(
            f"cannot read VGG weights from {path}", why=str(err).splitlines()[0]
        ) from err
    if not isinstance(loaded, dict):
        raise ModelError(f"{path} does not hold a state dict", fix="save model.state_dict()")
    return {str(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
