"""The two loss terms: noise-prediction MSE, and a Gram-matrix style loss on the predicted image."""

from __future__ import annotations

from typing import cast

import torch

from stylelora.config import StyleNorm
from stylelora.errors import ModelError
from stylelora.hf import DDPMScheduler

EPS = 1e-8


def predict_x0(
    noisy: torch.Tensor,
    model_output: torch.Tensor,
    timesteps: torch.Tensor,
    alphas_cumprod: torch.Tensor,
    prediction_type: str,
) -> torch.Tensor:
    """The clean latent implied by the model output, as `DDPMScheduler.step` computes it.

    Vectorised over per-sample timesteps and never clipped: a clamp would cut the gradient.
    """
    abar = alphas_cumprod.to(device=noisy.device, dtype=torch.float32)[timesteps]
    abar = abar.view(-1, *([1] * (noisy.ndim - 1)))
    sample, output = noisy.float(), model_output.float()
    if prediction_type == "epsilon":
        return (sample - (1 - abar).sqrt() * output) / abar.sqrt()
    if prediction_type == "v_prediction":
        return abar.sqrt() * sample - (1 - abar).sqrt() * output
    if prediction_type == "sample":
        return output
    raise ModelError(
        f"unsupported scheduler prediction_type {prediction_type!r}", fix="use an SD 1.x/2.x model"
    )


def diffusion_target(
    scheduler: DDPMScheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the UNet is trained to predict, by the scheduler's prediction type."""
    kind = scheduler.config["prediction_type"]
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        # IntTensor in the annotation; any integer tensor works (it is only used as an index).
        return scheduler.get_velocity(latents, noise, cast(torch.IntTensor, timesteps))
    if kind == "sample":
        return latents
    raise ModelError(
        f"unsupported scheduler prediction_type {kind!r}", fix="use an SD 1.x/2.x model"
    )


def gram(features: torch.Tensor) -> torch.Tensor:
    """Per-sample Gram matrices (B, C, C) of (B, C, H, W) features, normalised by C*H*W.

    Batched, unlike the PyTorch tutorial's `view(a*b, c*d)`, which mixes the images of a batch.
    """
    batch, channels = features.shape[:2]
    flat = features.float().reshape(batch, channels, -1)
    return flat @ flat.transpose(1, 2) / flat[0].numel()


def style_loss(
    pred: list[torch.Tensor], style: list[torch.Tensor], norm: StyleNorm
) -> torch.Tensor:
    """Per-sample style distance (B,), averaged over layers.

    "relative": ||G_p - G_s||^2 / ||G_s||^2 per layer, scale-free and about 1 for unrelated images
    (the raw Gram MSE is about 1e-5 on VAE features, facts/training.md pitfall 6);
    "none": the mean squared difference of the Gram matrices.
    """
    terms = []
    for p_feat, s_feat in zip(pred, style, strict=True):
        g_pred, g_style = gram(p_feat), gram(s_feat)
        squared = (g_pred - g_style).pow(2).sum(dim=(1, 2))
        if norm == "relative":
            terms.append(squared / (g_style.pow(2).sum(dim=(1, 2)) + EPS))
        else:
            terms.append(squared / g_style[0].numel())
    return torch.stack(terms).mean(dim=0)
