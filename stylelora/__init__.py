"""Style LoRA training for Stable Diffusion: UNet LoRA + one learned placeholder token.

Run `python -m stylelora --help`. This package never imports `bakery`: it is what the images
built by bakery exist to run, and it must work without Docker.
"""

__version__ = "0.1.0"
# bench touch 1795972023
# bench touch 1795972030990869383
# bench touch 1795972043432752855
# bench touch 1795972048504733055
# bench touch 1795972090456166766
# bench touch 1795972102896805765
# bench touch 1795972216939482537
# bench touch 1795972219028901670
