"""The reward interface: a batch of images and their prompts in, one score per image out.

Every reward model (pixel statistics, exact verifiers, learned scorers, HPS, CLIP...) implements
`Reward.score`. Rewards are registered by name so configs can ask for them as strings.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch


class Reward(ABC):
    """Scores images. `images` is float [B, 3, H, W] in [0, 1]; returns float32 [B] on the CPU.

    `held_out` marks rewards that are for evaluation only (the paper's out-of-domain columns);
    a training config may still use one, but the UI and evaluation tables label it as such.
    """

    name: str = "reward"
    held_out: bool = False

    @abstractmethod
    def score(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor: ...

    def __call__(self, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images [B, 3, H, W], got {tuple(images.shape)}")
        if len(prompts) != images.shape[0]:
            raise ValueError(f"{self.name}: {images.shape[0]} images but {len(prompts)} prompts")
        scores = self.score(images.detach().float().clamp(0, 1).cpu(), list(prompts))
        return scores.detach().float().cpu().reshape(images.shape[0])


_REGISTRY: dict[str, Callable[[], Reward]] = {}


def register_reward(name: str):
    """Class decorator: make a Reward constructible by name from configs."""

    def wrap(cls):
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def reward_names() -> list[str]:
    _import_builtin_rewards()
    return sorted(_REGISTRY)


def build_reward(name: str) -> Reward:
    _import_builtin_rewards()
    if name not in _REGISTRY:
        raise KeyError(f"unknown reward {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def _import_builtin_rewards() -> None:
    # Importing the modules runs their @register_reward decorators.
    from engine.rewards import image_stats, learned, verifiers  # noqa: F401
