"""The diffusers classes stylelora uses, imported from their defining modules.

`from diffusers import X` resolves, for a type checker, to the dummy placeholder classes in
`diffusers.utils.dummy_pt_objects` (diffusers' lazy `__init__` imports those first), which have
none of the real attributes. Importing from the defining modules gives mypy the real classes.
These paths exist from diffusers 0.26 on.
"""

from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from diffusers.schedulers.scheduling_ddim import DDIMScheduler
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from diffusers.utils import logging as diffusers_logging
from diffusers.utils.state_dict_utils import convert_state_dict_to_diffusers
from transformers.utils import logging as transformers_logging

__all__ = [
    "AutoencoderKL",
    "DDIMScheduler",
    "DDPMScheduler",
    "StableDiffusionPipeline",
    "UNet2DConditionModel",
    "convert_state_dict_to_diffusers",
    "quiet_libraries",
]


def quiet_libraries() -> None:
    """No library progress bars (diffusers has no environment variable for its own)."""
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped upstream
