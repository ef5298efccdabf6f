"""Image preprocessing for the learned reward models, in torch on the generated tensors.

The reference implementations go through PIL and torchvision (uint8 images, PIL's antialiased
bicubic resize); here the float images stay on the reward's device and are resized with torch's
antialiased bicubic filter, which is the same filter up to rounding. No torchvision needed.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)  # CLIP's normalisation: the default when a model names none
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def reward_device() -> torch.device:
    """This process's accelerator (each training process scores its own images), else the CPU."""
    from accelerate import PartialState

    return PartialState().device


def reward_dtype(device: torch.device) -> torch.dtype:
    """Half precision on a GPU (the reference HPS/CLIP code runs under fp16 autocast), fp32 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


def _resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if tuple(images.shape[-2:]) == (height, width):
        return images
    out = F.interpolate(images, size=(height, width), mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(0, 1)  # bicubic overshoots; PIL's uint8 output cannot


def fit(images: torch.Tensor, size: int, mode: str = "crop") -> torch.Tensor:
    """[B, 3, H, W] in [0, 1] -> [B, 3, size, size].

    crop: shortest side to `size`, then the centre square (CLIP's and ImageReward's eval transform).
    pad:  longest side to `size`, then black borders to a square (HPSv2's inference transform).
    """
    height, width = images.shape[-2:]
    if mode == "crop":
        short, long = min(height, width), max(height, width)
        long = int(size * long / short)  # as torchvision's Resize(int) rounds
        new_h, new_w = (size, long) if height <= width else (long, size)
        out = _resize(images, new_h, new_w)
        top, left = int(round((new_h - size) / 2)), int(round((new_w - size) / 2))
        return out[..., top:top + size, left:left + size]
    if mode == "pad":
        scale = size / max(height, width)
        new_h, new_w = round(height * scale), round(width * scale)
        out = _resize(images, new_h, new_w)
        pad_h, pad_w = size - new_h, size - new_w
        return F.pad(out, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), value=0.0)
    raise ValueError(f"unknown fit mode {mode!r}")


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    mean = torch.tensor(mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
    return (images - mean) / std


def preprocess(images: torch.Tensor, size: int, mean, std, mode: str = "crop") -> torch.Tensor:
    return normalize(fit(images.float(), size, mode), mean, std)
