"""x0 reconstruction and the Gram style loss, checked against diffusers and against invariances."""

from __future__ import annotations

import pytest
import stylelora_kit  # noqa: F401 - puts the repository root first on sys.path
import torch

from stylelora.errors import ModelError
from stylelora.hf import DDPMScheduler
from stylelora.losses import gram, predict_x0, style_loss


def sd_scheduler(prediction_type: str = "epsilon") -> DDPMScheduler:
    """SD-1.x training schedule; clip_sample off as in SD configs (a clamp would cut gradients)."""
    scheduler: DDPMScheduler = DDPMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type=prediction_type,
    )
    return scheduler


def sample_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(4, 4, 8, 8, generator=gen)
    noise = torch.randn(4, 4, 8, 8, generator=gen)
    timesteps = torch.tensor([0, 100, 500, 999])
    return latents, noise, timesteps


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_predict_x0_inverts_add_noise_given_the_true_target(prediction_type: str) -> None:
    scheduler = sd_scheduler(prediction_type)
    latents, noise, timesteps = sample_batch()
    noisy = scheduler.add_noise(latents, noise, timesteps)  # type: ignore[arg-type]  # IntTensor in the stub
    if prediction_type == "epsilon":
        target = noise
    else:
        target = scheduler.get_velocity(latents, noise, timesteps)  # type: ignore[arg-type]
    x0 = predict_x0(noisy, target, timesteps, scheduler.alphas_cumprod, prediction_type)
    torch.testing.assert_close(x0, latents, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("t", [1, 250, 600, 999], ids=lambda t: f"t={t}")
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_predict_x0_matches_ddpm_step(prediction_type: str, t: int) -> None:
    scheduler = sd_scheduler(prediction_type)
    gen = torch.Generator().manual_seed(t)
    sample, output = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 4, 8, 8, generator=gen)
    step = scheduler.step(output, t, sample)
    assert not isinstance(step, tuple)
    expected = step.pred_original_sample
    got = predict_x0(sample, output, torch.tensor([t]), scheduler.alphas_cumprod, prediction_type)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_predict_x0_is_not_clipped_and_passes_gradient_everywhere() -> None:
    scheduler = sd_scheduler()
    latents, noise, timesteps = sample_batch()
    output = (noise * 5).requires_grad_(True)  # pushes x0 far outside [-1, 1]
    x0 = predict_x0(latents, output, timesteps, scheduler.alphas_cumprod, "epsilon")
    assert x0.abs().max() > 1.0
    torch.autograd.backward(x0.sum())
    assert output.grad is not None
    assert bool((output.grad != 0).all())


def test_predict_x0_rejects_an_unknown_prediction_type() -> None:
    latents, noise, timesteps = sample_batch()
    with pytest.raises(ModelError, match="prediction_type 'flow'"):
        predict_x0(latents, noise, timesteps, sd_scheduler().alphas_cumprod, "flow")


def features(seed: int, shape: tuple[int, ...] = (3, 6, 5, 7)) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def shuffle_positions(feats: torch.Tensor, seed: int = 9) -> torch.Tensor:
    """The same values at other places: Gram statistics must not notice."""
    batch, channels, height, width = feats.shape
    order = torch.randperm(height * width, generator=torch.Generator().manual_seed(seed))
    return feats.reshape(batch, channels, -1)[:, :, order].reshape(batch, channels, height, width)


def test_gram_is_per_sample_symmetric_and_normalised() -> None:
    feats = features(0)
    grams = gram(feats)
    assert grams.shape == (3, 6, 6)
    torch.testing.assert_close(grams, grams.transpose(1, 2))
    single = gram(feats[1:2])[0]
    torch.testing.assert_close(grams[1], single)  # a batch does not mix its images
    flat = feats[1].reshape(6, -1)
    torch.testing.assert_close(single, flat @ flat.T / flat.numel())


def test_gram_ignores_where_features_are() -> None:
    feats = features(1)
    torch.testing.assert_close(gram(shuffle_positions(feats)), gram(feats))


@pytest.mark.parametrize("norm", ["relative", "none"])
def test_style_loss_is_zero_for_the_same_style_and_positive_otherwise(norm: str) -> None:
    a, b = [features(2)], [features(3)]
    same = style_loss(a, [shuffle_positions(a[0])], norm)  # type: ignore[arg-type]  # norm is a Literal
    other = style_loss(a, b, norm)  # type: ignore[arg-type]
    assert same.shape == (3,)
    torch.testing.assert_close(same, torch.zeros(3), atol=1e-6, rtol=0)
    assert bool((other > 0).all())


def test_relative_style_loss_ignores_feature_scale() -> None:
    pred, style = [features(4), features(5, (3, 2, 4, 4))], [features(6), features(7, (3, 2, 4, 4))]
    base = style_loss(pred, style, "relative")
    scaled = style_loss([10 * p for p in pred], [10 * s for s in style], "relative")
    torch.testing.assert_close(scaled, base)
    raw = style_loss(pred, style, "none")
    raw_scaled = style_loss([10 * p for p in pred], [10 * s for s in style], "none")
    torch.testing.assert_close(raw_scaled, raw * 10**4)  # the raw term scales with features^4


def test_style_loss_gradient_reaches_the_prediction_only_through_its_features() -> None:
    pred = features(8).requires_grad_(True)
    loss = style_loss([pred], [features(9)], "relative").sum()
    torch.autograd.backward(loss)
    assert pred.grad is not None
    assert float(pred.grad.abs().sum()) > 0
