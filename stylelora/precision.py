"""Device and precision choice: bf16 autocast for the UNet and VAE on GPUs, fp32 elsewhere.

ROCm builds of torch present their GPUs as "cuda", so one code path serves CUDA and ROCm.
"""

from __future__ import annotations

import contextlib

import torch

from stylelora.config import DeviceName, Precision
from stylelora.errors import UsageError


def resolve_device(name: DeviceName) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            "--device cuda was asked for but torch sees no GPU", fix="use --device cpu"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_bf16(name: Precision, device: torch.device) -> bool:
    """Whether the UNet and VAE run in bf16 (the trainable tensors always stay fp32)."""
    gpu_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if name == "bf16" and device.type == "cuda" and not gpu_bf16:
        raise UsageError("this GPU does not support bf16", fix="use --mixed-precision no")
    if name == "auto":
        return gpu_bf16
    return name == "bf16"


def weight_dtype(bf16: bool) -> torch.dtype:
    return torch.bfloat16 if bf16 else torch.float32


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast when enabled; a no-op context otherwise (fp32 on CPU stays exact)."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def full_precision(device: torch.device) -> contextlib.AbstractContextManager[object]:
    """Turn autocast off for a block (Gram matrices in bf16 lose most of their digits)."""
    return torch.autocast(device_type=device.type, enabled=False)
