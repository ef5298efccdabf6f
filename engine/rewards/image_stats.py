"""Rewards computed from simple image statistics, so tests have rewards a few iterations can move.

JPEG (in)compressibility follows DDPO: the size of the image saved as JPEG (quality 95), in kB.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from engine.rewards.base import Reward, register_reward


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[B, 3, H, W] in [0, 1] -> [B, H, W, 3] uint8."""
    return (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def jpeg_kilobytes(images: torch.Tensor) -> torch.Tensor:
    sizes = []
    for array in to_uint8(images):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=95)
        sizes.append(buffer.tell() / 1000)
    return torch.tensor(sizes)


@register_reward("jpeg_compressibility")
class JpegCompressibility(Reward):
    """Minus the JPEG size in kB: smaller files (simpler images) score higher."""

    def score(self, images, prompts):
        return -jpeg_kilobytes(images)


@register_reward("jpeg_incompressibility")
class JpegIncompressibility(Reward):
    """The JPEG size in kB: more detailed images score higher."""

    def score(self, images, prompts):
        return jpeg_kilobytes(images)


@register_reward("brightness")
class Brightness(Reward):
    """Mean pixel value in [0, 1]."""

    def score(self, images, prompts):
        return images.mean(dim=(1, 2, 3))


@register_reward("saturation")
class Saturation(Reward):
    """Mean HSV saturation (max - min) / max over pixels, in [0, 1]."""

    def score(self, images, prompts):
        high, low = images.amax(1), images.amin(1)
        return ((high - low) / high.clamp_min(1e-6)).mean(dim=(1, 2))
