"""Style LoRA training for Stable Diffusion: UNet LoRA + one learned placeholder token.

Run `python -m stylelora --help`. This package never imports `bakery`: it is what the images
built by bakery exist to run, and it must work without Docker.
"""

__version__ = "0.1.0"
